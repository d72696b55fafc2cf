package org.dit4j.core.ops;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** {@link Ops#absSums}: the default (host) implementation and the CPU backend's against a plain double loop. */
class AbsSumsTest {

    static float[] random(long seed, int n) {
        Random r = new Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * 3);
        return v;
    }

    /** Σ|round(a−b)|, Σ|b| in one double loop, element order. */
    static double[] naive(float[] a, float[] b, DType dtype) {
        double d = 0, r = 0;
        for (int i = 0; i < a.length; i++) {
            float diff = a[i] - b[i];
            if (dtype == DType.BF16) diff = DType.bf16ToFloat(DType.floatToBf16(diff));
            d += Math.abs(diff);
            r += Math.abs(b[i]);
        }
        return new double[] {d, r};
    }

    @Test void cpuAndDefaultAgreeBitForBitAndMatchTheNaiveSums() {
        // 3 chunks and a partial one; 4 threads so the CPU backend really splits the chunks
        int n = 3 * HostReductions.CHUNK + 123;
        try (CpuBackend cpu = new CpuBackend(4); Scope s = Scope.open()) {
            Ops viaDefault = new ForwardingOps(cpu) {
                @Override public double[] absSums(Tensor a, Tensor b) { return HostReductions.absSums(this, a, b); }
            };
            for (DType dt : new DType[] {DType.F32, DType.BF16}) {
                Tensor a = Tensor.of(dt, random(1, n), n), b = Tensor.of(dt, random(2, n), n);
                double[] c = cpu.absSums(a, b), d = viaDefault.absSums(a, b);
                assertArrayEquals(d, c, 0.0, dt + ": CPU backend and default must give the same bits");
                // the inputs as stored (bf16-rounded for BF16)
                double[] ref = naive(a.toFloatArray(), b.toFloatArray(), dt);
                assertEquals(ref[0], c[0], 1e-12 * ref[0], dt + " Σ|a−b|");
                assertEquals(ref[1], c[1], 1e-12 * ref[1], dt + " Σ|b|");
                assertTrue(c[0] > 0 && c[1] > 0);
            }
        }
    }

    @Test void bf16DifferencesAreRoundedToBf16() {
        try (CpuBackend cpu = new CpuBackend(1); Scope s = Scope.open()) {
            // both bf16 values; their difference 1 + 3·2^-9 needs 9 fraction bits and rounds to 1 + 2^-7 in bf16
            float a = 1f + 0x1p-7f, b = 0x1p-9f;
            float f32diff = a - b, bf16diff = DType.bf16ToFloat(DType.floatToBf16(f32diff));
            assertTrue(f32diff != bf16diff, "the test values must need rounding");
            double[] r = cpu.absSums(Tensor.of(DType.BF16, new float[] {a}, 1), Tensor.of(DType.BF16, new float[] {b}, 1));
            assertEquals(bf16diff, r[0], 0.0);
            assertEquals(b, r[1], 0.0);
            double[] f = cpu.absSums(Tensor.of(new float[] {a}, 1), Tensor.of(new float[] {b}, 1));
            assertEquals(f32diff, f[0], 0.0, "F32 keeps the f32 difference");
        }
    }

    @Test void shapeMismatchNamesBothShapes() {
        try (CpuBackend cpu = new CpuBackend(1); Scope s = Scope.open()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> cpu.absSums(Tensor.zeros(DType.F32, 2, 3), Tensor.zeros(DType.F32, 3, 2)));
            assertTrue(e.getMessage().contains("[2, 3]") && e.getMessage().contains("[3, 2]"), e.getMessage());
        }
    }
}
