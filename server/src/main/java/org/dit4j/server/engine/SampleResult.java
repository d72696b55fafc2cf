package org.dit4j.server.engine;

/** What a sampler run returns: the final latent and the last denoised prediction (SamplerCustomAdvanced's 2nd output). */
public record SampleResult(Latent output, Latent denoised) {}
