package org.dit4j.models.sampling;

/**
 * A flow-matching sampler over a {@link FlowShiftSchedule}: called once per step with the model's velocity
 * prediction v at the current latent, it returns the latent of the next noise level. Samplers may keep state
 * (multistep history), so steps must be made in order 0, 1, …, steps−1; {@link #reset} starts a new run.
 *
 * @param <T> the latent representation ({@link LatentAlgebra})
 */
public interface FlowSampler<T> {

    FlowShiftSchedule schedule();

    /**
     * One step: v = model output (flow velocity ε − x₀) at sample x and noise level σ_i → the latent at σ_{i+1}, a new
     * latent owned by the caller. The inputs are not consumed.
     */
    T step(T modelOutput, int stepIndex, T sample);

    /** Forgets the history of the previous run; the next step must be step 0. */
    void reset();
}
