package org.dit4j.server.engine;

import org.dit4j.server.preview.LatentFormat;

/** Receives sampler progress; the server turns it into WebSocket {@code progress} events and checks for interrupts. */
@FunctionalInterface
public interface StepObserver {

    /**
     * Called after step {@code step} (0-based) of {@code total} sampler steps has finished.
     * Throws {@link InterruptedRun} when the prompt was interrupted; the engine must stop there.
     */
    void stepDone(int step, int total);

    /**
     * {@link #stepDone(int, int)} with the step's denoised prediction x0 (ComfyUI's sampler callback), in the model's
     * latent space ({@code format}'s, after process_in), shaped {@code shape} ([B, C, H, W] or [B, C, T, H, W]), for
     * preview images. Engines that have x0 call this one; the array must not be modified afterwards.
     */
    default void stepDone(int step, int total, LatentFormat format, float[] x0, long[] shape) { stepDone(step, total); }

    StepObserver NONE = (step, total) -> {};
}
