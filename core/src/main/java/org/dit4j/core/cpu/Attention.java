package org.dit4j.core.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Scaled-dot-product attention on float arrays in the [B, L, H, d] layout, blocked over query rows: for every
 * (batch, head, block of QB queries) S = Q·Kᵀ with the packed GEMM, a row-wise softmax of S·scale + bias, then
 * O = P·V with the GEMM again, written straight into the [B, Lq, H, dv] output. Fully masked rows give 0.
 */
final class Attention {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int QB = 64;
    private static final Scratch SCORES = new Scratch();

    private Attention() {}

    /**
     * @param bias       null, or additive bias values addressed as {@code bias[b*bs[0] + h*bs[1] + i*bs[2] + j*bs[3]]}
     * @param biasStride strides of the bias broadcast to [B, H, Lq, Lk] (0 on broadcast dimensions)
     * @param lse        null, or [B, H, Lq] receiving each row's log-sum-exp of the scaled, biased logits (−∞ when fully masked)
     */
    static void run(float[] q, float[] k, float[] v, float[] out, int batch, int lq, int lk, int heads, int d, int dv,
                    float[] bias, long[] biasStride, float scale, float[] lse, Parallel par) {
        int qBlocks = (lq + QB - 1) / QB;
        int tasks = batch * heads * qBlocks;
        par.forEach(tasks, t -> {
            int qb = t % qBlocks, bh = t / qBlocks, h = bh % heads, b = bh / heads;
            int i0 = qb * QB, rows = Math.min(QB, lq - i0);
            float[] s = SCORES.borrow(QB * Math.max(lk, 1));
            int ldq = heads * d, ldv = heads * dv;
            // S[rows, lk] = Q_block · Kᵀ
            Gemm.gemm(rows, lk, d, q, (b * lq + i0) * ldq + h * d, ldq,
                    Gemm.transposed(k, b * lk * ldq + h * d, ldq), s, 0, lk, false, par);
            for (int r = 0; r < rows; r++) {
                long bo = bias == null ? 0 : b * biasStride[0] + h * biasStride[1] + (i0 + r) * biasStride[2];
                double l = softmaxRow(s, r * lk, lk, scale, bias, (int) bo, (int) biasStride[3]);
                if (lse != null) lse[(b * heads + h) * lq + i0 + r] = (float) l;
            }
            // O[rows, dv] = P · V
            Gemm.gemm(rows, dv, lk, s, 0, lk, Gemm.dense(v, b * lk * ldv + h * dv, ldv),
                    out, (b * lq + i0) * ldv + h * dv, ldv, false, par);
            SCORES.giveBack(s);
        });
    }

    /**
     * In place: x[j] ← softmax_j(x[j]·scale + bias[bo + j·bstep]); a row whose every logit is −∞ becomes zeros.
     * Returns the row's log-sum-exp of the logits (−∞ for a fully masked row).
     */
    static double softmaxRow(float[] x, int off, int n, float scale, float[] bias, int bo, int bstep) {
        float max = Float.NEGATIVE_INFINITY;
        if (bias == null) {
            for (int j = 0; j < n; j++) { float y = x[off + j] * scale; x[off + j] = y; max = Math.max(max, y); }
        } else if (bstep == 0) {
            float bv = bias[bo];
            for (int j = 0; j < n; j++) { float y = x[off + j] * scale + bv; x[off + j] = y; max = Math.max(max, y); }
        } else {
            for (int j = 0; j < n; j++) { float y = x[off + j] * scale + bias[bo + j]; x[off + j] = y; max = Math.max(max, y); }
        }
        if (max == Float.NEGATIVE_INFINITY) {
            java.util.Arrays.fill(x, off, off + n, 0f);
            return Double.NEGATIVE_INFINITY;
        }
        double sum = expInPlace(x, off, n, max);
        float inv = (float) (1.0 / sum);
        int j = 0;
        for (int upper = SPECIES.loopBound(n); j < upper; j += LANES)
            FloatVector.fromArray(SPECIES, x, off + j).mul(inv).intoArray(x, off + j);
        for (; j < n; j++) x[off + j] *= inv;
        return max + Math.log(sum);
    }

    /**
     * x[j] ← exp(x[j] − max) for j in [off, off+n); returns the sum (in double, in index order). Scalar Math.exp on
     * purpose: the Vector API's EXP differs between its compiled and interpreted forms in the last bits, which made
     * the reference backend's results depend on JIT timing.
     */
    static double expInPlace(float[] x, int off, int n, float max) {
        double sum = 0;
        for (int j = 0; j < n; j++) {
            float e = (float) Math.exp(x[off + j] - max);
            x[off + j] = e;
            sum += e;
        }
        return sum;
    }
}
