package org.dit4j.engine.wan;

/**
 * One Wan2.1 text-to-video generation. Zero (NaN for floats, null for the sampler) means "the default"
 * ({@link WanPipeline#withDefaults}).
 *
 * @param prompt         the text
 * @param negativePrompt the negative prompt of classifier-free guidance; null = Wan's default
 *                       ({@link WanText#DEFAULT_NEGATIVE_PROMPT}); "" = an empty prompt (diffusers' default)
 * @param width          width in pixels (rounded down to a multiple of 16; default 832)
 * @param height         height in pixels (rounded down to a multiple of 16; default 480)
 * @param frames         video frames, 4n + 1 (others are rounded as diffusers does; default 81)
 * @param steps          sampler steps (default 50)
 * @param guidance       CFG scale g: v = v_neg + g·(v_pos − v_neg); ≤ 1 runs without the negative pass (default 5.0)
 * @param shift          flow shift (default: the model's scheduler, {@link WanScheduler})
 * @param sampler        "unipc" (default, Wan's) or "euler"
 * @param seed           seed of the torch-compatible noise generator
 * @param batch          videos per prompt (one noise tensor of batch size B)
 */
public record WanRequest(String prompt, String negativePrompt, int width, int height, int frames, int steps, float guidance,
                         double shift, String sampler, long seed, int batch) {

    public static final int DEFAULT_WIDTH = 832, DEFAULT_HEIGHT = 480, DEFAULT_FRAMES = 81, DEFAULT_STEPS = 50;
    public static final float DEFAULT_GUIDANCE = 5.0f;
    /** Wan2.1's {@code sample_fps}. */
    public static final int DEFAULT_FPS = 16;

    /** A request with every other setting at its default. */
    public static WanRequest of(String prompt, long seed) {
        return new WanRequest(prompt, null, 0, 0, 0, 0, Float.NaN, Double.NaN, null, seed, 1);
    }

    public WanRequest withSize(int w, int h) {
        return new WanRequest(prompt, negativePrompt, w, h, frames, steps, guidance, shift, sampler, seed, batch);
    }

    public WanRequest withFrames(int n) {
        return new WanRequest(prompt, negativePrompt, width, height, n, steps, guidance, shift, sampler, seed, batch);
    }

    public WanRequest withSteps(int n) {
        return new WanRequest(prompt, negativePrompt, width, height, frames, n, guidance, shift, sampler, seed, batch);
    }

    public WanRequest withGuidance(float g) {
        return new WanRequest(prompt, negativePrompt, width, height, frames, steps, g, shift, sampler, seed, batch);
    }

    public WanRequest withNegative(String n) {
        return new WanRequest(prompt, n, width, height, frames, steps, guidance, shift, sampler, seed, batch);
    }

    public WanRequest withShift(double s) {
        return new WanRequest(prompt, negativePrompt, width, height, frames, steps, guidance, s, sampler, seed, batch);
    }

    public WanRequest withSampler(String s) {
        return new WanRequest(prompt, negativePrompt, width, height, frames, steps, guidance, shift, s, seed, batch);
    }

    public WanRequest withBatch(int b) {
        return new WanRequest(prompt, negativePrompt, width, height, frames, steps, guidance, shift, sampler, seed, b);
    }

    /** Whether each step runs the negative prompt too. */
    public boolean cfg() { return guidance > 1f; }
}
