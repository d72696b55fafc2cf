package org.dit4j.models.sampling;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

/**
 * The flow-matching Euler update and classifier-free guidance combination (models.md §1.12), on {@link Ops}.
 * <ul>
 *   <li>{@link #step}: x_{i+1} = x_i + (σ_{i+1} − σ_i)·v, in float32 (diffusers upcasts the sample to float32 for this
 *       step; ComfyUI keeps latents in float32 throughout). The model predicts v ≈ ε − x₀.</li>
 *   <li>{@link #trueCfg}: v = v_neg + s·(v_pos − v_neg) (diffusers {@code true_cfg_scale}, ComfyUI's cfg &gt; 1).</li>
 * </ul>
 * The guidance-distilled dev and Kontext models take their guidance through the transformer's guidance embedding
 * instead and need neither negative prompt nor second evaluation.
 * <p>
 * Why {@link FlowEulerSampler} exists beside it: that is the same update as a stateful {@link FlowSampler} over a
 * {@link LatentAlgebra} on Wan's {@link FlowShiftSchedule} (a different σ computation from {@link FlowMatchSchedule}),
 * so Wan can swap it for {@link FlowUniPcSampler} and run it on host double/float arrays. This class is Flux's:
 * static, {@link Tensor}-only, on {@link FlowMatchSchedule}, with the rounding order of diffusers' float32 step.
 */
public final class FlowMatchEuler {
    private FlowMatchEuler() {}

    /**
     * One Euler step of the schedule: returns x + dt(i)·v as a new F32 tensor. x: F32 latent, v: velocity of x's shape
     * (any floating dtype; converted to F32 first).
     */
    public static Tensor step(Ops ops, FlowMatchSchedule schedule, int i, Tensor x, Tensor v) {
        return step(ops, x, v, schedule.dt(i));
    }

    /** x + dt·v in float32 (dt·v rounded first, then the sum, as {@code sample + dt * model_output}). */
    public static Tensor step(Ops ops, Tensor x, Tensor v, float dt) {
        if (x.dtype() != DType.F32)
            throw new IllegalArgumentException("the Euler step keeps the latent in F32, got x " + x);
        if (!x.shape().equals(v.shape()))
            throw new IllegalArgumentException("velocity " + v.shape() + " must have the latent's shape " + x.shape());
        try (Scope s = Scope.open()) {
            Tensor v32 = v.dtype() == DType.F32 ? v : ops.cast(v, DType.F32);
            return s.keep(ops.add(x, ops.scale(v32, dt)));
        }
    }

    /** v_neg + scale·(v_pos − v_neg), in the inputs' dtype (both must agree in shape and dtype). */
    public static Tensor trueCfg(Ops ops, Tensor pos, Tensor neg, float scale) {
        if (!pos.shape().equals(neg.shape()) || pos.dtype() != neg.dtype())
            throw new IllegalArgumentException("true CFG needs the positive and negative predictions of one shape and dtype, got "
                    + pos + " and " + neg);
        try (Scope s = Scope.open()) {
            return s.keep(ops.add(neg, ops.scale(ops.sub(pos, neg), scale)));
        }
    }
}
