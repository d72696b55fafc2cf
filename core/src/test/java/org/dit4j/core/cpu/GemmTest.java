package org.dit4j.core.cpu;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The packed GEMM at sizes that are not multiples of its tiles, against a plain double triple loop. */
class GemmTest {
    private static Parallel three;

    @BeforeAll static void start() { three = new Parallel(3); }

    @AfterAll static void stop() { three.close(); }

    private static float[] random(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rnd.nextGaussian();
        return v;
    }

    /** C = A·B (+ C0) in double; B given as [K, N] ({@code transposed} false) or [N, K]. */
    private static double[] naive(int m, int n, int k, float[] a, float[] b, boolean transposed, float[] c0) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = c0 == null ? 0 : c0[i * n + j];
                for (int p = 0; p < k; p++) s += (double) a[i * k + p] * (transposed ? b[j * k + p] : b[p * n + j]);
                c[i * n + j] = s;
            }
        return c;
    }

    private static void assertNear(String what, double[] want, float[] got, int k) {
        double num = 0, den = 0, maxErr = 0;
        for (int i = 0; i < want.length; i++) {
            double d = got[i] - want[i];
            num += d * d;
            den += want[i] * want[i];
            maxErr = Math.max(maxErr, Math.abs(d));
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30));
        // f32 accumulation of k products of unit-variance values: error grows like sqrt(k)·2^-24
        double tol = 4e-7 * Math.sqrt(Math.max(k, 1)) + 1e-7;
        assertTrue(rel <= tol, what + ": rel-L2 error " + rel + " > " + tol + " (max abs " + maxErr + ")");
    }

    @Test void tailsInEveryDimension() {
        Random rnd = new Random(1);
        int[] ms = {1, 5, 6, 7, 13, Gemm.MC - 1, Gemm.MC + 7};
        int[] ns = {1, Gemm.NR - 1, Gemm.NR, Gemm.NR + 1, 3 * Gemm.NR + 5};
        int[] ks = {1, 2, Gemm.KC - 1, Gemm.KC + 3};
        for (int m : ms)
            for (int n : ns)
                for (int k : ks) {
                    float[] a = random(rnd, m * k), b = random(rnd, k * n);
                    for (boolean transposed : new boolean[] {false, true}) {
                        Gemm.BSource src = transposed ? Gemm.transposed(b, 0, k) : Gemm.dense(b, 0, n);
                        float[] c1 = new float[m * n], c3 = new float[m * n];
                        Gemm.gemm(m, n, k, a, 0, k, src, c1, 0, n, false, null);
                        Gemm.gemm(m, n, k, a, 0, k, src, c3, 0, n, false, three);
                        String what = "gemm M=" + m + " N=" + n + " K=" + k + (transposed ? " (B transposed)" : "");
                        assertNear(what, naive(m, n, k, a, b, transposed, null), c1, k);
                        assertArrayEquals(c1, c3, what + ": 1 and 3 threads must give identical bits");
                    }
                }
    }

    @Test void widePanelsAndAccumulation() {
        Random rnd = new Random(2);
        int m = 9, n = Gemm.NC + 21, k = 2 * Gemm.KC + 7;
        float[] a = random(rnd, m * k), b = random(rnd, k * n), c0 = random(rnd, m * n);
        float[] c = c0.clone();
        Gemm.gemm(m, n, k, a, 0, k, Gemm.dense(b, 0, n), c, 0, n, true, three);
        assertNear("gemm accumulate over several KC and NC blocks", naive(m, n, k, a, b, false, c0), c, k);
    }

    @Test void stridedOperandsAndOffsets() {
        Random rnd = new Random(3);
        int m = 7, n = 19, k = 11, lda = 15, ldb = 23, ldc = 31;
        float[] a = random(rnd, 5 + m * lda), b = random(rnd, 3 + k * ldb), c = new float[2 + m * ldc];
        Gemm.gemm(m, n, k, a, 5, lda, Gemm.dense(b, 3, ldb), c, 2, ldc, false, null);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) s += (double) a[5 + i * lda + p] * b[3 + p * ldb + j];
                assertTrue(Math.abs(c[2 + i * ldc + j] - s) < 1e-5, "C[" + i + "," + j + "] = " + c[2 + i * ldc + j] + ", expected " + s);
            }
        for (int i = 0; i < m; i++)   // the gaps between rows of C are untouched
            for (int j = n; j < ldc && 2 + i * ldc + j < c.length; j++) assertTrue(c[2 + i * ldc + j] == 0f, "wrote outside C");
    }

    @Test void emptyInnerDimensionGivesZeros() {
        float[] c = {1, 2, 3, 4};
        Gemm.gemm(2, 2, 0, new float[0], 0, 0, Gemm.dense(new float[0], 0, 2), c, 0, 2, false, null);
        assertArrayEquals(new float[4], c);
    }
}
