package org.dit4j.models.sampling;

import java.util.List;

/**
 * Flow-matching Euler on a {@link FlowShiftSchedule}: x_{i+1} = x_i + (σ_{i+1} − σ_i)·v, with the step size taken in
 * float32 as diffusers' {@code FlowMatchEulerDiscreteScheduler} takes it (models.md §1.12). Stateless apart from the
 * step order check.
 * <p>
 * Why {@link FlowMatchEuler} exists beside it: that is the same update as a static F32 {@code Ops} call on Flux's
 * {@link FlowMatchSchedule} (with true CFG), rounding as fl(x + fl(dt·v)). This one is a {@link FlowSampler} on Wan's
 * {@link FlowShiftSchedule}, interchangeable with {@link FlowUniPcSampler}, and its arithmetic is the
 * {@link LatentAlgebra}'s: on {@link LatentAlgebra#tensors} it evaluates the same float32 expression as {@code FlowMatchEuler.step}, but
 * {@link LatentAlgebra#FLOATS}/{@link LatentAlgebra#DOUBLES} accumulate in double (one rounding), which the host tests
 * against diffusers' scheduler use. Merging the two would need one schedule type for both models' σ computations.
 */
public final class FlowEulerSampler<T> implements FlowSampler<T> {
    private final FlowShiftSchedule schedule;
    private final LatentAlgebra<T> algebra;
    private int next;

    public FlowEulerSampler(FlowShiftSchedule schedule, LatentAlgebra<T> algebra) {
        this.schedule = schedule;
        this.algebra = algebra;
    }

    @Override public FlowShiftSchedule schedule() { return schedule; }

    @Override public T step(T modelOutput, int stepIndex, T sample) {
        algebra.checkStep();
        FlowUniPcSampler.requireOrder(stepIndex, next, schedule.steps());
        float dt = schedule.sigma(stepIndex + 1) - schedule.sigma(stepIndex);
        T out = algebra.combine(new double[] {1, dt}, List.of(sample, modelOutput));
        next = stepIndex + 1;
        return out;
    }

    @Override public void reset() { next = 0; }
}
