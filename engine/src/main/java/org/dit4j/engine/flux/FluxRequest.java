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
 * @param prompts        one prompt per image of the batch (a batch of different prompts: with data parallelism each
 *                       group of GPUs draws its own images), or null when every image uses {@code prompt}
 */
public record FluxRequest(String prompt, String negativePrompt, float trueCfgScale, int width, int height, int steps,
                          float guidance, long seed, int batch, RgbImage reference, int t5Length, java.util.List<String> prompts) {

    public FluxRequest {
        if (prompts != null) {
            prompts = java.util.List.copyOf(prompts);
            if (prompts.isEmpty()) throw new IllegalArgumentException("a list of prompts needs at least one prompt");
            if (batch != prompts.size())
                throw new IllegalArgumentException("a request with " + prompts.size() + " prompts draws one image per prompt, so its batch is "
                        + prompts.size() + ", not " + batch + "; use one prompt with --batch for several images of it");
            if (!prompts.getFirst().equals(prompt))
                throw new IllegalArgumentException("the request's prompt must be the first of its prompts");
        }
    }

    /** A request whose every image uses {@code prompt}. */
    public FluxRequest(String prompt, String negativePrompt, float trueCfgScale, int width, int height, int steps, float guidance,
                       long seed, int batch, RgbImage reference, int t5Length) {
        this(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, reference, t5Length, null);
    }

    /**
     * One image per prompt, in order (batch = prompts.size()): image i uses prompts[i] and the i-th noise of the batch
     * drawn from the seed, as a batch of one prompt does.
     */
    public FluxRequest withPrompts(java.util.List<String> ps) {
        if (ps == null || ps.isEmpty()) throw new IllegalArgumentException("withPrompts needs at least one prompt");
        return new FluxRequest(ps.getFirst(), negativePrompt, trueCfgScale, width, height, steps, guidance, seed, ps.size(), reference,
                t5Length, ps.size() == 1 ? null : ps);
    }

    /** The prompt of image {@code i} of the batch. */
    public String promptOf(int i) {
        if (i < 0 || i >= batch) throw new IndexOutOfBoundsException("image " + i + " of a batch of " + batch);
        return prompts == null ? prompt : prompts.get(i);
    }

    /** This request with every image using {@code p} (drops a list of prompts; the batch is kept). */
    public FluxRequest withPrompt(String p) {
        return new FluxRequest(p, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, reference, t5Length, null);
    }

    /** A text-to-image request with every other setting at its default. */
    public static FluxRequest of(String prompt, long seed) {
        return new FluxRequest(prompt, null, 1f, 0, 0, 0, Float.NaN, seed, 1, null, 0);
    }

    public FluxRequest withSize(int w, int h) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, w, h, steps, guidance, seed, batch, reference, t5Length, prompts);
    }

    public FluxRequest withSteps(int n) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, n, guidance, seed, batch, reference, t5Length, prompts);
    }

    public FluxRequest withGuidance(float g) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, g, seed, batch, reference, t5Length, prompts);
    }

    public FluxRequest withBatch(int b) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, b, reference, t5Length, b == batch ? prompts : null);
    }

    public FluxRequest withReference(RgbImage ref) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, ref, t5Length, prompts);
    }

    public FluxRequest withNegative(String negative, float scale) {
        return new FluxRequest(prompt, negative, scale, width, height, steps, guidance, seed, batch, reference, t5Length, prompts);
    }

    public FluxRequest withT5Length(int n) {
        return new FluxRequest(prompt, negativePrompt, trueCfgScale, width, height, steps, guidance, seed, batch, reference, n, prompts);
    }

    /** Whether the request runs a second, negative-prompt evaluation per step. */
    public boolean trueCfg() { return negativePrompt != null && trueCfgScale > 1f; }
}
