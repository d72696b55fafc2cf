package org.dit4j.core.cpu;

import org.dit4j.core.ops.DoubleTensor;
import org.dit4j.core.ops.ReferenceOps;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.dit4j.core.testing.TensorAsserts.assertClose;
import static org.dit4j.core.testing.TestTensors.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** CPU-specific behaviour the conformance suite does not pin down. */
@SuppressWarnings("try")   // scopes opened only to release what the test allocates
class CpuBackendTest {
    private static CpuBackend one, three;

    @BeforeAll static void start() {
        one = new CpuBackend(1);
        three = new CpuBackend(3);
    }

    @AfterAll static void stop() {
        one.close();
        three.close();
    }

    @Test void nameStatesThreadsAndVectorWidth() {
        assertTrue(three.name().matches("cpu \\(3 threads, Vector API \\d+-bit\\)"), three.name());
        assertTrue(one.name().matches("cpu \\(1 thread, Vector API \\d+-bit\\)"), one.name());
    }

    @Test void resultsDoNotDependOnTheThreadCount() {
        try (Scope s = Scope.open()) {
            Random rnd = new Random(1);
            Tensor x = randn(rnd, DType.F32, 130, 70), w = randn(rnd, DType.BF16, 90, 70), b = randn(rnd, DType.F32, 90);
            assertArrayEquals(one.linear(x, w, b).toFloatArray(), three.linear(x, w, b).toFloatArray(), "linear");
            Tensor q = randn(rnd, DType.F32, 2, 70, 3, 16), k = randn(rnd, DType.F32, 2, 90, 3, 16);
            Tensor bias = randn(rnd, DType.F32, 2, 1, 70, 90);
            assertArrayEquals(one.attention(q, k, k, bias, 0.25f).toFloatArray(),
                    three.attention(q, k, k, bias, 0.25f).toFloatArray(), "attention");
            Tensor img = randn(rnd, DType.F32, 1, 6, 17, 19), kern = randn(rnd, DType.F32, 8, 3, 3, 3);
            int[] st = {1, 1}, pad = {1, 1};
            assertArrayEquals(one.conv2d(img, kern, null, st, pad, 2).toFloatArray(),
                    three.conv2d(img, kern, null, st, pad, 2).toFloatArray(), "conv2d");
            Tensor a = randn(rnd, DType.F32, 5, 40, 30), m = randn(rnd, DType.F32, 30, 50);
            assertArrayEquals(one.matmul(a, m).toFloatArray(), three.matmul(a, m).toFloatArray(), "matmul");
        }
    }

    @Test void concurrentCallersFromAForkJoinPoolGetTheSequentialResults() throws Exception {
        Random rnd = new Random(5);
        int calls = 6;
        Tensor[] xs = new Tensor[calls];
        float[][] want = new float[calls][];
        Tensor w = randn(rnd, DType.F32, 70, 100), q = randn(rnd, DType.F32, 1, 70, 2, 16);
        for (int i = 0; i < calls; i++) {
            xs[i] = randn(rnd, DType.F32, 60, 100);
            try (Tensor y = one.linear(xs[i], w, null); Tensor a = one.attention(q, q, q, null, 0.1f + i)) {
                want[i] = concat(y.toFloatArray(), a.toFloatArray());
            }
        }
        // several callers at once, themselves fork-join workers, sharing the backend's pool and scratch buffers
        try (java.util.concurrent.ForkJoinPool callers = new java.util.concurrent.ForkJoinPool(4)) {
            float[][] got = callers.submit(() -> java.util.stream.IntStream.range(0, calls).parallel().mapToObj(i -> {
                try (Tensor y = three.linear(xs[i], w, null); Tensor a = three.attention(q, q, q, null, 0.1f + i)) {
                    return concat(y.toFloatArray(), a.toFloatArray());
                }
            }).toArray(float[][]::new)).get();
            for (int i = 0; i < calls; i++) assertArrayEquals(want[i], got[i], "caller " + i);
        }
        for (Tensor x : xs) x.close();
        w.close();
        q.close();
    }

    private static float[] concat(float[] a, float[] b) {
        float[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    @Test void attentionBeyondOneQueryBlockAndOneKeyPanel() {
        try (Scope s = Scope.open()) {
            Random rnd = new Random(2);
            Tensor q = randn(rnd, DType.F32, 1, 130, 2, 32), k = randn(rnd, DType.F32, 1, 300, 2, 32);
            Tensor v = randn(rnd, DType.F32, 1, 300, 2, 24);
            assertClose("attention Lq=130 Lk=300", three.attention(q, k, v, null, 0.2f),
                    ReferenceOps.attention(DoubleTensor.of(q), DoubleTensor.of(k), DoubleTensor.of(v), null, 0.2), 1e-5);
        }
    }

    @Test void fullyMaskedAttentionGivesZerosAndASingleOpenKeyCopiesItsValue() {
        try (Scope s = Scope.open()) {
            Random rnd = new Random(3);
            int lk = 9;
            Tensor q = randn(rnd, DType.F32, 1, 4, 2, 8), k = randn(rnd, DType.F32, 1, lk, 2, 8), v = randn(rnd, DType.F32, 1, lk, 2, 8);
            float[] all = new float[lk];
            java.util.Arrays.fill(all, Float.NEGATIVE_INFINITY);
            Tensor masked = three.attention(q, k, v, Tensor.of(all, lk), 1f);
            for (float f : masked.toFloatArray()) assertEquals(0f, f, "every row is masked");
            all[5] = 0f;
            Tensor only5 = three.attention(q, k, v, Tensor.of(all, lk), 1f);
            for (int i = 0; i < 4; i++)
                for (int h = 0; h < 2; h++)
                    for (int c = 0; c < 8; c++)
                        assertEquals(v.getFloat((5 * 2 + h) * 8 + c), only5.getFloat((i * 2 + h) * 8 + c), 1e-6,
                                "only key 5 is visible");
        }
    }

    @Test void castToAndFromIntegerTypesTruncatesLikeTorch() {
        try (Scope s = Scope.open()) {
            Tensor f = Tensor.of(new float[] {2.7f, -2.7f, 0.5f, -0.5f, 1e6f, 0f}, 6);
            Tensor i = three.cast(f, DType.I32);
            assertArrayEquals(new float[] {2, -2, 0, 0, 1e6f, 0}, i.toFloatArray());
            Tensor l = three.cast(i, DType.I64);
            assertEquals(DType.I64, l.dtype());
            assertArrayEquals(new float[] {2, -2, 0, 0, 1e6f, 0}, l.toFloatArray());
            Tensor bool = three.cast(f, DType.BOOL);
            assertArrayEquals(new float[] {1, 1, 1, 1, 1, 0}, bool.toFloatArray());
            Tensor back = three.cast(three.cast(i, DType.BF16), DType.F32);
            assertArrayEquals(new float[] {2, -2, 0, 0, DType.bf16ToFloat(DType.floatToBf16(1e6f)), 0}, back.toFloatArray());
        }
    }

    @Test void scopeReleasesResultsAndKeepHandsThemOut() {
        Tensor kept;
        Tensor dropped;
        try (Scope outer = Scope.open()) {
            Tensor x = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
            Tensor zero = Tensor.of(new float[] {0, 0}, 1, 2);
            try (Scope inner = Scope.open()) {
                dropped = three.silu(x);
                Tensor h = three.layerNormModulate(x.view(1, 2, 2), zero, zero, 1e-6f);
                assertEquals(2, inner.size(), "only the two results are tracked, not the fused op's intermediate");
                kept = inner.keep(three.add(h, h));
            }
            assertTrue(dropped.isReleased(), "a result left in a closed scope is released");
            assertFalse(kept.isReleased(), "a kept result moves to the enclosing scope");
            assertEquals(4, kept.numel());
            assertThrows(IllegalStateException.class, () -> dropped.getFloat(0));
        }
        assertTrue(kept.isReleased(), "the enclosing scope releases what was kept into it");
        Tensor free = three.scale(Tensor.of(new float[] {1}, 1), 2f);   // no scope: the caller owns it
        assertEquals(2f, free.getFloat(0));
        free.close();
        assertTrue(free.isReleased());
    }

    @Test void erfIsAccurateEverywhere() {
        // known values of erf
        assertEquals(0.1124629160182849, Erf.erf(0.1), 1e-15);
        assertEquals(0.5204998778130465, Erf.erf(0.5), 1e-15);
        assertEquals(0.8427007929497149, Erf.erf(1.0), 1e-15);
        assertEquals(0.9953222650189527, Erf.erf(2.0), 1e-15);
        assertEquals(0.9999779095030014, Erf.erf(3.0), 1e-15);
        assertEquals(-0.8427007929497149, Erf.erf(-1.0), 1e-15);
        assertEquals(0.0, Erf.erf(0.0));
        assertEquals(1.0, Erf.erf(Double.POSITIVE_INFINITY));
        assertEquals(-1.0, Erf.erf(Double.NEGATIVE_INFINITY));
        assertTrue(Double.isNaN(Erf.erf(Double.NaN)));
        double worst = 0;
        for (int i = 0; i <= 300; i++) {
            double x = -8 + 16.0 * i / 300 + 1e-3;
            worst = Math.max(worst, Math.abs(Erf.erf(x) - ReferenceOps.erf(x)));
        }
        assertTrue(worst < 1e-13, "max |erf - series| = " + worst);
    }

    @Test void gemvAndGemmPathsAgree() {
        try (Scope s = Scope.open()) {
            Random rnd = new Random(4);
            Tensor x = randn(rnd, DType.F32, 8, 100), w = randn(rnd, DType.F8_E4M3, 0.5, 37, 100);
            Tensor all = three.linear(x, w, null);                       // packed GEMM (8 rows)
            Tensor first = three.linear(x.narrowOuter(0, 2), w, null);   // streaming path (2 rows)
            float[] a = all.toFloatArray(), f = first.toFloatArray();
            for (int i = 0; i < f.length; i++) assertEquals(a[i], f[i], 1e-4 * (1 + Math.abs(a[i])), "element " + i);
        }
    }
}
