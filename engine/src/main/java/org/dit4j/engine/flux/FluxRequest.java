package org.dit4j.engine.flux;

import org.dit4j.engine.image.RgbImage;

/**
 * One generation. Zero (or NaN for floats) means "the model's default" ({@link FluxPipeline#withDefaults}).
 *
 * @param prompt         the text
 * @param negativePrompt text for true classifier-free guidance, or null
 * @param trueCfgScale   true CFG scale s: v = v_neg + s·(v_pos − v_neg) when s &gt; 1 and a negative prompt is given;
 *                       1 = off (the normal setting for the guidance-distilled Flux models)
 * @param width          image width in pixels (rounded down to a multiple of 16)
 * @param height         image height in pixels (rounded down to a multiple of 16)
 * @param steps          Euler steps
 * @param guidance       distilled guidance for dev/Kontext (ignored by schnell)
 * @param seed           seed of the torch-compatible noise generator
 * @param batch          images per prompt (one noise tensor of batch size B, as diffusers draws it)
 * @param reference      Kontext reference image, or null for text-to-image
 * @param t5Length       T5 sequence length (512 for dev/Kontext, 256 for schnell)
 */
public record FluxRequest(String prompt, String negativePrompt, float trueCfgScale, int width, int height, int steps,
                          float guidance, long seed, int batch, RgbImage reference, int t5Length) {

    /** A text-to-image request with every other setting at its default. */
    public static FluxRequest of(String prompt, long seed) {
        return new FluxRequest(prompt, null, 1f, 0, 0, 0, Float.NaN, seed, 1, null, 0);
    }

    public FluxRequest withSize(int w, int h) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, w, h, steps, guidance, seed, batch, reference, t5Length);
    }

    public FluxRequest withSteps(int n) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, n, guidance, seed, batch, reference, t5Length);
    }

    public FluxRequest withGuidance(float g) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, g, seed, batch, reference, t5Length);
    }

    public FluxRequest withBatch(int b) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, b, reference, t5Length);
    }

    public FluxRequest withReference(RgbImage ref) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, ref, t5Length);
    }

    public FluxRequest withNegative(String negative, float scale) {
        return new FluxRequest(prompt, negative, scale, width, height, steps, guidance, seed, batch, reference, t5Length);
    }

    public FluxRequest withT5Length(int n) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, reference, n);
    }

    /** Whether the request runs a second, negative-prompt evaluation per step. */
    public boolean trueCfg() { return negativePrompt != null && trueCfgScale > 1f; }
}
