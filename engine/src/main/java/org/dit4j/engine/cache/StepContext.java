package org.dit4j.engine.cache;

import java.util.Objects;

/**
 * Where a transformer call sits in a run: which request, which denoising step of how many, which CFG branch.
 *
 * @param requestId  identifies one generation; state is kept per request and dropped by {@link StepCache#finish}
 * @param step       0-based denoising step index, {@code 0 ≤ step < totalSteps}
 * @param totalSteps number of denoising steps of the run (the number of model calls per branch)
 * @param branch     the CFG branch of this call
 * @param sigma      the noise level of this step (informational; {@code NaN} when the pipeline does not know it)
 */
public record StepContext(String requestId, int step, int totalSteps, Branch branch, double sigma) {
    public StepContext {
        Objects.requireNonNull(requestId, "requestId");
        Objects.requireNonNull(branch, "branch");
        if (totalSteps < 1)
            throw new IllegalArgumentException("totalSteps must be at least 1, got " + totalSteps + " (request " + requestId + ")");
        if (step < 0 || step >= totalSteps)
            throw new IllegalArgumentException("step must be in [0, " + totalSteps + "), got " + step + " (request " + requestId + ")");
    }

    /** A context without a known sigma. */
    public static StepContext of(String requestId, int step, int totalSteps, Branch branch) {
        return new StepContext(requestId, step, totalSteps, branch, Double.NaN);
    }

    /**
     * The step's position in the run as the ComfyUI TeaCache node defines it: {@code step / totalSteps}
     * (its {@code current_step_index / (len(sigmas) - 1)}, where the sigma schedule has one entry more than there
     * are steps). 0 at the first step; the last step is {@code (N-1)/N}, never 1.
     */
    public double percent() { return (double) step / totalSteps; }

    /** True on the first step. */
    public boolean isFirst() { return step == 0; }

    /** True on the last step. */
    public boolean isLast() { return step == totalSteps - 1; }

    @Override public String toString() {
        return "request " + requestId + " step " + step + "/" + totalSteps + " " + branch.label();
    }
}
