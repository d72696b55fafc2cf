package org.dit4j.server.engine;

import java.util.Arrays;
import java.util.Objects;

/**
 * One sampler run, with everything ComfyUI's {@code comfy.sample} would receive, already resolved by the server:
 * the sigma schedule (scheduler, denoise, start/end step applied), the noise source and the guidance mode.
 *
 * @param model      patched model
 * @param positive   conditioning to follow
 * @param negative   conditioning to move away from; null for BasicGuider (no unconditional pass)
 * @param cfg        classifier-free guidance scale; with cfg == 1 the engine skips the unconditional pass as ComfyUI does
 * @param sampler    sampler name (one of {@link Sampling#samplerNames()})
 * @param sigmas     the schedule, descending, float32 as ComfyUI computes it; length steps + 1
 * @param noiseSeed  seed of the initial noise (torch.randn on CPU in ComfyUI)
 * @param addNoise   false: start from the latent without noise (KSamplerAdvanced add_noise=disable, DisableNoise)
 * @param latent     the input latent (zeros for text-to-image)
 */
public record SampleJob(ModelRef model, Conditioning positive, Conditioning negative, double cfg, String sampler,
                        float[] sigmas, long noiseSeed, boolean addNoise, Latent latent) {

    public SampleJob {
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(positive, "positive");
        Objects.requireNonNull(sampler, "sampler");
        Objects.requireNonNull(sigmas, "sigmas");
        Objects.requireNonNull(latent, "latent");
        sigmas = sigmas.clone();
    }

    @Override public float[] sigmas() { return sigmas.clone(); }

    /** Number of sampler steps (transformer evaluations for euler). */
    public int steps() { return Math.max(0, sigmas.length - 1); }

    @Override public String toString() {
        return "SampleJob[" + model + ", cfg=" + cfg + ", " + sampler + ", sigmas=" + Arrays.toString(sigmas) + ", seed=" + noiseSeed + "]";
    }
}
