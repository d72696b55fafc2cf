package org.dit4j.server.engine;

import java.util.List;

/** Runs sampler loops for the KSampler family and SamplerCustomAdvanced. */
public interface Sampling {

    /** Sampler names this engine runs, in ComfyUI's spelling (e.g. {@code euler}, {@code uni_pc}). */
    List<String> samplerNames();

    /**
     * Denoises {@code job.latent()} along {@code job.sigmas()}, calling {@code observer} after every step.
     * An empty schedule (fewer than 2 sigmas) returns the input latent unchanged, as ComfyUI does.
     */
    SampleResult sample(SampleJob job, StepObserver observer);
}
