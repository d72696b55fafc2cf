package org.dit4j.core.testing;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

import java.util.Random;

/** Seeded random host tensors for tests. */
public final class TestTensors {
    private TestTensors() {}

    /** Standard-normal values times {@code std}, stored (rounded) as {@code dtype}. */
    public static Tensor randn(Random rnd, DType dtype, double std, long... dims) {
        Tensor t = Tensor.zeros(dtype, dims);
        float[] v = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * std);
        t.setFloats(v);
        return t;
    }

    public static Tensor randn(Random rnd, DType dtype, long... dims) { return randn(rnd, dtype, 1.0, dims); }

    /** Uniform values in [lo, hi), stored as {@code dtype}. */
    public static Tensor uniform(Random rnd, DType dtype, double lo, double hi, long... dims) {
        Tensor t = Tensor.zeros(dtype, dims);
        float[] v = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < v.length; i++) v[i] = (float) (lo + (hi - lo) * rnd.nextDouble());
        t.setFloats(v);
        return t;
    }
}
