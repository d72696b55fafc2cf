package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * Backend-independent implementation of {@link Ops#absSums}: both tensors are read on the host (copied there off the
 * CPU) and reduced in fixed chunks of {@link #CHUNK} elements — a double partial sum per chunk, the partials added in
 * chunk order — so every backend that follows the same chunking (the CPU backend does, on any number of threads) gets
 * the same bits.
 */
public final class HostReductions {
    /** Elements per partial sum. */
    public static final int CHUNK = 4096;

    private HostReductions() {}

    static double[] absSums(Ops ops, Tensor a, Tensor b) {
        checkAbsSums(a, b);
        Tensor ha = a.device().isCpu() ? a : ops.toHost(a);
        Tensor hb = b.device().isCpu() ? b : ops.toHost(b);
        try {
            long n = a.numel();
            Tensor fa = ha.view(n), fb = hb.view(n);
            double diff = 0, ref = 0;
            double[] part = new double[2];
            for (long s = 0; s < n; s += CHUNK) {
                long e = Math.min(n, s + CHUNK);
                float[] x = fa.narrowOuter(s, e).toFloatArray(), y = fb.narrowOuter(s, e).toFloatArray();
                absSumsChunk(x, y, x.length, a.dtype(), part);
                diff += part[0];
                ref += part[1];
            }
            return new double[] {diff, ref};
        } finally {
            if (ha != a) ha.close();
            if (hb != b) hb.close();
        }
    }

    /** The argument checks of {@link Ops#absSums}; the message names the argument and what to pass. */
    public static void checkAbsSums(Tensor a, Tensor b) {
        if (a == null || b == null) throw new IllegalArgumentException("absSums: a and b must not be null");
        if (!a.shape().equals(b.shape()))
            throw new IllegalArgumentException("absSums: a " + a.shape() + " and b " + b.shape()
                    + " must have the same shape (the current signal and its reference)");
        if (!a.dtype().isFloating() || !b.dtype().isFloating())
            throw new IllegalArgumentException("absSums: a and b must be floating tensors, got " + a.dtype() + " and " + b.dtype());
    }

    /**
     * One chunk: out[0] = Σ|round(x_i − y_i)|, out[1] = Σ|y_i| over i &lt; n, in double, where round takes the f32
     * difference to {@code dtype} (as PyTorch's {@code a - b} on tensors of that dtype does).
     */
    public static void absSumsChunk(float[] x, float[] y, int n, DType dtype, double[] out) {
        double d = 0, r = 0;
        for (int i = 0; i < n; i++) {
            d += Math.abs(round(x[i] - y[i], dtype));
            r += Math.abs(y[i]);
        }
        out[0] = d;
        out[1] = r;
    }

    private static float round(float v, DType dtype) {
        return switch (dtype) {
            case BF16 -> DType.bf16ToFloat(DType.floatToBf16(v));
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(v));
            case F8_E4M3 -> DType.e4m3ToFloat(DType.floatToE4M3(v));
            case F8_E5M2 -> DType.e5m2ToFloat(DType.floatToE5M2(v));
            default -> v;
        };
    }
}
