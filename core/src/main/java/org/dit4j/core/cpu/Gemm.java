package org.dit4j.core.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Packed, register-blocked single-precision GEMM: {@code C[M,N] (+)= A[M,K] · B[K,N]}, f32 FMA accumulation.
 *
 * <p>BLIS-style loop nest: B is packed per (NC×KC) panel into slivers of NR columns, A per (MC×KC) block into
 * slivers of MR rows; a 6×(2 vectors) micro-kernel keeps 12 accumulator vectors in registers. The right-hand
 * matrix comes from a {@link BSource}, so weights in bf16/fp8 and implicit im2col (convolution) are decoded
 * while packing, never materialised as a whole. Every element of C is summed in the same order (K ascending in
 * KC chunks) whatever the thread count, so results do not depend on the parallelism.
 */
final class Gemm {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    static final int MR = 6;
    static final int NR = 2 * LANES;
    static final int KC = 256;                 // a KC×NR sliver of B (16 KiB at 256-bit) stays in L1
    static final int MC = 120;                 // multiple of MR; an MC×KC block of A (120 KiB) stays in L2
    static final int NC = 64 * NR;             // multiple of NR; a KC×NC panel of B (1 MiB at 256-bit) in L3

    private static final ThreadLocal<float[]> PACK_A = ThreadLocal.withInitial(() -> new float[MC * KC]);
    private static final Scratch PACK_B = new Scratch();   // held while waiting for the workers: must be re-entrant
    private static final ThreadLocal<float[]> ROW = ThreadLocal.withInitial(() -> new float[KC]);
    private static final ThreadLocal<float[]> EDGE = ThreadLocal.withInitial(() -> new float[MR * NR]);

    private Gemm() {}

    /** The right-hand matrix B[K, N], packed on demand. */
    interface BSource {
        /**
         * Writes rows {@code [k0, k0+kc)} × columns {@code [j0, j0+nr)} (nr ≤ NR) as {@code kc} groups of NR floats
         * (column jj of row p at {@code dst[off + p*NR + jj]}), zero-filling columns nr..NR.
         */
        void packSliver(int k0, int kc, int j0, int nr, float[] dst, int off);
    }

    /** B[k, j] = b[off + k*ldb + j] (row-major K×N). */
    static BSource dense(float[] b, int off, int ldb) {
        return (k0, kc, j0, nr, dst, o) -> {
            for (int p = 0; p < kc; p++) {
                int src = off + (k0 + p) * ldb + j0;
                int d = o + p * NR;
                System.arraycopy(b, src, dst, d, nr);
                if (nr < NR) java.util.Arrays.fill(dst, d + nr, d + NR, 0f);
            }
        };
    }

    /** B[k, j] = b[off + j*ldb + k], i.e. B is the transpose of a row-major N×K matrix (a linear weight). */
    static BSource transposed(float[] b, int off, int ldb) {
        return (k0, kc, j0, nr, dst, o) -> {
            for (int jj = 0; jj < nr; jj++) {
                int src = off + (j0 + jj) * ldb + k0;
                for (int p = 0; p < kc; p++) dst[o + p * NR + jj] = b[src + p];
            }
            for (int jj = nr; jj < NR; jj++) for (int p = 0; p < kc; p++) dst[o + p * NR + jj] = 0f;
        };
    }

    /**
     * B[k, j] = w[j, k] for a row-major N×K matrix stored in {@code seg} as {@code dtype} (any floating type,
     * decoded while packing: bf16/fp8 weights never become a whole float copy).
     */
    static BSource transposed(java.lang.foreign.MemorySegment seg, org.dit4j.core.tensor.DType dtype, int ldb) {
        return (k0, kc, j0, nr, dst, o) -> {
            float[] row = ROW.get();
            for (int jj = 0; jj < nr; jj++) {
                HostArrays.decode(seg, dtype, (long) (j0 + jj) * ldb + k0, row, 0, kc);
                for (int p = 0; p < kc; p++) dst[o + p * NR + jj] = row[p];
            }
            for (int jj = nr; jj < NR; jj++) for (int p = 0; p < kc; p++) dst[o + p * NR + jj] = 0f;
        };
    }

    /**
     * C[M,N] (+)= A·B with A[i, k] = a[aOff + i*lda + k] and C[i, j] = c[cOff + i*ldc + j].
     * {@code accumulate} adds to C instead of overwriting it. Parallel over blocks of C when {@code par} allows.
     */
    static void gemm(int m, int n, int k, float[] a, int aOff, int lda, BSource b,
                     float[] c, int cOff, int ldc, boolean accumulate, Parallel par) {
        if (m == 0 || n == 0) return;
        if (k == 0) {
            if (!accumulate) for (int i = 0; i < m; i++) java.util.Arrays.fill(c, cOff + i * ldc, cOff + i * ldc + n, 0f);
            return;
        }
        boolean parallel = par != null && par.isParallel();
        for (int jc = 0; jc < n; jc += NC) {
            int nc = Math.min(NC, n - jc);
            int slivers = (nc + NR - 1) / NR;
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                final float[] bpack = PACK_B.borrow(slivers * NR * KC);
                final int jc0 = jc, pc0 = pc;
                Parallel.RangeBody packB = (lo, hi) -> {
                    for (int s = lo; s < hi; s++) {
                        int j0 = jc0 + s * NR;
                        b.packSliver(pc0, kc, j0, Math.min(NR, jc0 + nc - j0), bpack, s * NR * kc);
                    }
                };
                if (parallel) par.forRange(slivers, 4, packB); else packB.run(0, slivers);

                boolean acc = accumulate || pc > 0;
                int mBlocks = (m + MC - 1) / MC;
                // enough tasks to balance the threads; each still spans >= 8 slivers so re-packing A stays cheap
                int parts = 1;
                if (parallel) parts = Math.max(1, Math.min(slivers / 8, (8 * par.threads() + mBlocks - 1) / mBlocks));
                final int nParts = parts;
                Parallel.RangeBody body = (lo, hi) -> {
                    for (int t = lo; t < hi; t++) {
                        int ib = t / nParts, part = t % nParts;
                        int s0 = (int) ((long) slivers * part / nParts), s1 = (int) ((long) slivers * (part + 1) / nParts);
                        if (s0 == s1) continue;
                        int i0 = ib * MC, mc = Math.min(MC, m - i0);
                        float[] ap = PACK_A.get();
                        packA(a, aOff + i0 * lda + pc0, lda, mc, kc, ap);
                        macro(mc, kc, ap, bpack, s0, s1, jc0, nc, c, cOff + i0 * ldc, ldc, acc);
                    }
                };
                try {
                    if (parallel) par.forRange(mBlocks * nParts, 1, body); else body.run(0, mBlocks * nParts);
                } finally {
                    PACK_B.giveBack(bpack);
                }
            }
        }
    }

    /** Packs an mc×kc block of A into MR-row slivers (rows past mc are zero). */
    private static void packA(float[] a, int off, int lda, int mc, int kc, float[] ap) {
        int o = 0;
        for (int i0 = 0; i0 < mc; i0 += MR) {
            int mr = Math.min(MR, mc - i0);
            for (int ii = 0; ii < mr; ii++) {
                int src = off + (i0 + ii) * lda;
                for (int p = 0; p < kc; p++) ap[o + p * MR + ii] = a[src + p];
            }
            for (int ii = mr; ii < MR; ii++) for (int p = 0; p < kc; p++) ap[o + p * MR + ii] = 0f;
            o += MR * kc;
        }
    }

    /** All micro-tiles of one packed A block against packed B slivers [s0, s1). */
    private static void macro(int mc, int kc, float[] ap, float[] bp, int s0, int s1, int jc, int nc,
                              float[] c, int cOff, int ldc, boolean acc) {
        for (int s = s0; s < s1; s++) {
            int jr = s * NR;
            int nr = Math.min(NR, nc - jr);
            int bo = s * NR * kc;
            for (int i0 = 0, ao = 0; i0 < mc; i0 += MR, ao += MR * kc) {
                int mr = Math.min(MR, mc - i0);
                int co = cOff + i0 * ldc + jc + jr;
                if (mr == MR && nr == NR) {
                    kernel(kc, ap, ao, bp, bo, c, co, ldc, acc);
                } else {
                    float[] edge = EDGE.get();
                    kernel(kc, ap, ao, bp, bo, edge, 0, NR, false);
                    for (int ii = 0; ii < mr; ii++) {
                        int row = co + ii * ldc;
                        if (acc) for (int jj = 0; jj < nr; jj++) c[row + jj] += edge[ii * NR + jj];
                        else System.arraycopy(edge, ii * NR, c, row, nr);
                    }
                }
            }
        }
    }

    /**
     * The 6×(2·LANES) register tile: C[0..6, 0..NR) (+)= Ap(6×kc) · Bp(kc×NR). The k loop is unrolled by two by
     * hand: C2 does not unroll it on its own, and the unrolled form runs about twice as fast.
     */
    private static void kernel(int kc, float[] a, int ao, float[] b, int bo, float[] c, int co, int ldc, boolean acc) {
        // accumulators start from C (accumulate) or zero; no helper methods take vectors, so nothing gets boxed
        FloatVector c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
        if (acc) {
            c00 = FloatVector.fromArray(SPECIES, c, co);           c01 = FloatVector.fromArray(SPECIES, c, co + LANES);
            c10 = FloatVector.fromArray(SPECIES, c, co + ldc);     c11 = FloatVector.fromArray(SPECIES, c, co + ldc + LANES);
            c20 = FloatVector.fromArray(SPECIES, c, co + 2 * ldc); c21 = FloatVector.fromArray(SPECIES, c, co + 2 * ldc + LANES);
            c30 = FloatVector.fromArray(SPECIES, c, co + 3 * ldc); c31 = FloatVector.fromArray(SPECIES, c, co + 3 * ldc + LANES);
            c40 = FloatVector.fromArray(SPECIES, c, co + 4 * ldc); c41 = FloatVector.fromArray(SPECIES, c, co + 4 * ldc + LANES);
            c50 = FloatVector.fromArray(SPECIES, c, co + 5 * ldc); c51 = FloatVector.fromArray(SPECIES, c, co + 5 * ldc + LANES);
        } else {
            c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = FloatVector.zero(SPECIES);
        }
        int p = 0;
        for (; p + 1 < kc; p += 2) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bo);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bo + LANES);
            FloatVector x = FloatVector.broadcast(SPECIES, a[ao]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(SPECIES, a[ao + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(SPECIES, a[ao + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(SPECIES, a[ao + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(SPECIES, a[ao + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(SPECIES, a[ao + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            b0 = FloatVector.fromArray(SPECIES, b, bo + NR);
            b1 = FloatVector.fromArray(SPECIES, b, bo + NR + LANES);
            x = FloatVector.broadcast(SPECIES, a[ao + 6]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(SPECIES, a[ao + 7]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(SPECIES, a[ao + 8]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(SPECIES, a[ao + 9]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(SPECIES, a[ao + 10]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(SPECIES, a[ao + 11]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
            ao += 2 * MR;
            bo += 2 * NR;
        }
        if (p < kc) {
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, bo);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, bo + LANES);
            FloatVector x = FloatVector.broadcast(SPECIES, a[ao]);
            c00 = x.fma(b0, c00); c01 = x.fma(b1, c01);
            x = FloatVector.broadcast(SPECIES, a[ao + 1]);
            c10 = x.fma(b0, c10); c11 = x.fma(b1, c11);
            x = FloatVector.broadcast(SPECIES, a[ao + 2]);
            c20 = x.fma(b0, c20); c21 = x.fma(b1, c21);
            x = FloatVector.broadcast(SPECIES, a[ao + 3]);
            c30 = x.fma(b0, c30); c31 = x.fma(b1, c31);
            x = FloatVector.broadcast(SPECIES, a[ao + 4]);
            c40 = x.fma(b0, c40); c41 = x.fma(b1, c41);
            x = FloatVector.broadcast(SPECIES, a[ao + 5]);
            c50 = x.fma(b0, c50); c51 = x.fma(b1, c51);
        }
        c00.intoArray(c, co);           c01.intoArray(c, co + LANES);
        c10.intoArray(c, co + ldc);     c11.intoArray(c, co + ldc + LANES);
        c20.intoArray(c, co + 2 * ldc); c21.intoArray(c, co + 2 * ldc + LANES);
        c30.intoArray(c, co + 3 * ldc); c31.intoArray(c, co + 3 * ldc + LANES);
        c40.intoArray(c, co + 4 * ldc); c41.intoArray(c, co + 4 * ldc + LANES);
        c50.intoArray(c, co + 5 * ldc); c51.intoArray(c, co + 5 * ldc + LANES);
    }
}
