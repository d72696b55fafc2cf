package org.dit4j.models.sampling;

import java.util.List;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

/**
 * The only arithmetic a flow sampler needs: linear combinations of latents of one shape. Implementations for host
 * arrays (double and float) and for F32 tensors of a backend let one sampler implementation drive all three.
 *
 * @param <T> the latent representation
 */
public interface LatentAlgebra<T> {

    /** Σ c_k·x_k as a new latent; x_k must all have the same shape. */
    T combine(double[] c, List<T> x);

    /** Frees a latent this algebra created (no-op for arrays). */
    default void release(T x) {}

    /** Called at the start of every sampler step; throws when the latents it creates could not outlive the step. */
    default void checkStep() {}

    /** Host double arrays: each value Σ c_k·x_k evaluated in double, left to right. */
    LatentAlgebra<double[]> DOUBLES = (c, x) -> {
        int n = requireSameLength(c, x, a -> a.length);
        double[] out = new double[n];
        for (int k = 0; k < c.length; k++) {
            double ck = c[k];
            double[] xk = x.get(k);
            for (int j = 0; j < n; j++) out[j] += ck * xk[j];
        }
        return out;
    };

    /** Host float arrays: each value accumulated in double and rounded to float once. */
    LatentAlgebra<float[]> FLOATS = (c, x) -> {
        int n = requireSameLength(c, x, a -> a.length);
        double[] acc = new double[n];
        for (int k = 0; k < c.length; k++) {
            double ck = c[k];
            float[] xk = x.get(k);
            for (int j = 0; j < n; j++) acc[j] += ck * xk[j];
        }
        float[] out = new float[n];
        for (int j = 0; j < n; j++) out[j] = (float) acc[j];
        return out;
    };

    /**
     * F32 tensors of {@code ops} (model outputs of another dtype are converted first). The sampler keeps latents from
     * one step to the next, so its steps must run with no {@link Scope} open: latents it returns belong to the caller.
     */
    static LatentAlgebra<Tensor> tensors(Ops ops) {
        return new LatentAlgebra<>() {
            @Override public Tensor combine(double[] c, List<Tensor> x) {
                requireSameLength(c, x, t -> Math.toIntExact(Math.min(Integer.MAX_VALUE, t.numel())));
                try (Scope s = Scope.open()) {
                    Tensor acc = null;
                    for (int k = 0; k < c.length; k++) {
                        Tensor xk = x.get(k);
                        if (!xk.shape().equals(x.get(0).shape()))
                            throw new IllegalArgumentException("latents of a sampler step must share one shape, got " + x.get(0).shape()
                                    + " and " + xk.shape());
                        if (xk.dtype() != DType.F32) xk = ops.cast(xk, DType.F32);
                        Tensor term = ops.scale(xk, (float) c[k]);
                        acc = acc == null ? term : ops.add(acc, term);
                    }
                    return s.keep(acc);
                }
            }

            @Override public void release(Tensor x) { x.close(); }

            @Override public void checkStep() {
                if (Scope.current() != null)
                    throw new IllegalStateException("call the sampler's step with no Scope open: it keeps latents across steps "
                            + "and hands its result to the caller (close the step's scope first, keeping the model output)");
            }
        };
    }

    private static <T> int requireSameLength(double[] c, List<T> x, java.util.function.ToIntFunction<T> length) {
        if (c.length != x.size() || c.length == 0)
            throw new IllegalArgumentException(c.length + " coefficients for " + x.size() + " latents");
        int n = length.applyAsInt(x.get(0));
        for (T t : x) {
            if (length.applyAsInt(t) != n)
                throw new IllegalArgumentException("latents of a sampler step must have one size, got " + n + " and "
                        + length.applyAsInt(t));
        }
        return n;
    }
}
