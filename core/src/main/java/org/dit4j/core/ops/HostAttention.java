package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.util.Arrays;

/**
 * Backend-independent implementations of {@link Ops#attentionWithLse} and {@link Ops#mergeAttention}: inputs are copied
 * to the host, computed in double there, and the results uploaded. Correct on every backend, slow on a GPU; backends
 * override them with native kernels.
 */
final class HostAttention {
    private HostAttention() {}

    static PartialAttention attentionWithLse(Ops ops, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        checkAttention("attentionWithLse", q, k, v);
        int bsz = (int) q.dim(0), lq = (int) q.dim(1), heads = (int) q.dim(2), d = (int) q.dim(3);
        int lk = (int) k.dim(1), dv = (int) v.dim(3);
        float[] qf = floats(ops, q), kf = floats(ops, k), vf = floats(ops, v);
        float[] bf = null;
        long[] bs = new long[4];
        if (bias != null) {
            long[] target = {bsz, heads, lq, lk};
            long[] full = new long[4];
            Arrays.fill(full, 1);
            long[] bd = bias.shape().dims();
            if (bd.length > 4) throw badBias(target, bias);
            System.arraycopy(bd, 0, full, 4 - bd.length, bd.length);
            long[] st = Shape.of(full).strides();
            for (int i = 0; i < 4; i++) {
                if (full[i] != 1 && full[i] != target[i]) throw badBias(target, bias);
                bs[i] = full[i] == 1 ? 0 : st[i];
            }
            bf = floats(ops, bias);
        }
        float[] out = new float[bsz * lq * heads * dv];
        float[] lse = new float[bsz * heads * lq];
        double[] logit = new double[lk];
        for (int b = 0; b < bsz; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < lq; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < lk; j++) {
                        double s = 0;
                        int qo = ((b * lq + i) * heads + h) * d, ko = ((b * lk + j) * heads + h) * d;
                        for (int c = 0; c < d; c++) s += (double) qf[qo + c] * kf[ko + c];
                        s *= scale;
                        if (bf != null) s += bf[(int) (b * bs[0] + h * bs[1] + i * bs[2] + j * bs[3])];
                        logit[j] = s;
                        max = Math.max(max, s);
                    }
                    int li = (b * heads + h) * lq + i;
                    if (max == Double.NEGATIVE_INFINITY) { lse[li] = Float.NEGATIVE_INFINITY; continue; }
                    double sum = 0;
                    for (int j = 0; j < lk; j++) { logit[j] = Math.exp(logit[j] - max); sum += logit[j]; }
                    lse[li] = (float) (max + Math.log(sum));
                    int oo = ((b * lq + i) * heads + h) * dv;
                    for (int c = 0; c < dv; c++) {
                        double o = 0;
                        for (int j = 0; j < lk; j++) o += logit[j] * vf[((b * lk + j) * heads + h) * dv + c];
                        out[oo + c] = (float) (o / sum);
                    }
                }
        return new PartialAttention(upload(ops, out, Shape.of(bsz, lq, heads, dv), q.dtype()),
                upload(ops, lse, Shape.of(bsz, heads, lq), DType.F32));
    }

    static PartialAttention merge(Ops ops, PartialAttention a, PartialAttention b) {
        checkMerge(a, b);
        int bsz = (int) a.out().dim(0), lq = (int) a.out().dim(1), heads = (int) a.out().dim(2), dv = (int) a.out().dim(3);
        float[] oa = floats(ops, a.out()), ob = floats(ops, b.out()), la = floats(ops, a.lse()), lb = floats(ops, b.lse());
        float[] out = new float[oa.length], lse = new float[la.length];
        for (int bi = 0; bi < bsz; bi++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < lq; i++) {
                    int li = (bi * heads + h) * lq + i, oo = ((bi * lq + i) * heads + h) * dv;
                    double x = la[li], y = lb[li], m = Math.max(x, y);
                    if (m == Double.NEGATIVE_INFINITY) { lse[li] = Float.NEGATIVE_INFINITY; continue; }
                    double wa = Math.exp(x - m), wb = Math.exp(y - m), s = wa + wb;
                    lse[li] = (float) (m + Math.log(s));
                    wa /= s;
                    wb /= s;
                    for (int c = 0; c < dv; c++) out[oo + c] = (float) (wa * oa[oo + c] + wb * ob[oo + c]);
                }
        return new PartialAttention(upload(ops, out, a.out().shape(), a.out().dtype()), upload(ops, lse, a.lse().shape(), DType.F32));
    }

    /** Shape checks of attention inputs, naming the argument. */
    static void checkAttention(String op, Tensor q, Tensor k, Tensor v) {
        if (q.rank() != 4) throw new IllegalArgumentException(op + ": q must have shape [B, Lq, H, d], got " + q.shape());
        long bsz = q.dim(0), heads = q.dim(2), d = q.dim(3);
        if (k.rank() != 4 || k.dim(0) != bsz || k.dim(2) != heads || k.dim(3) != d)
            throw new IllegalArgumentException(op + ": k must have shape [B, Lk, H, d] = [" + bsz + ", Lk, " + heads + ", " + d
                    + "] (from q " + q.shape() + "), got " + k.shape());
        if (v.rank() != 4 || v.dim(0) != bsz || v.dim(1) != k.dim(1) || v.dim(2) != heads)
            throw new IllegalArgumentException(op + ": v must have shape [B, Lk, H, dv] = [" + bsz + ", " + k.dim(1) + ", "
                    + heads + ", dv] (from k " + k.shape() + "), got " + v.shape());
    }

    /** Both partial attentions must cover the same queries: equal out shapes, lse [B, H, Lq] F32. */
    static void checkMerge(PartialAttention a, PartialAttention b) {
        Shape o = a.out().shape();
        if (o.rank() != 4)
            throw new IllegalArgumentException("mergeAttention: a.out must have shape [B, Lq, H, dv], got " + o);
        if (!b.out().shape().equals(o))
            throw new IllegalArgumentException("mergeAttention: b.out must have a.out's shape " + o + ", got " + b.out().shape());
        Shape l = Shape.of(o.dim(0), o.dim(2), o.dim(1));
        if (!a.lse().shape().equals(l) || a.lse().dtype() != DType.F32)
            throw new IllegalArgumentException("mergeAttention: a.lse must be F32 " + l + " ([B, H, Lq]), got " + a.lse().dtype() + " " + a.lse().shape());
        if (!b.lse().shape().equals(l) || b.lse().dtype() != DType.F32)
            throw new IllegalArgumentException("mergeAttention: b.lse must be F32 " + l + " ([B, H, Lq]), got " + b.lse().dtype() + " " + b.lse().shape());
    }

    private static IllegalArgumentException badBias(long[] target, Tensor bias) {
        return new IllegalArgumentException("attentionWithLse: bias must broadcast to [B, H, Lq, Lk] = " + Arrays.toString(target)
                + ", got " + bias.shape());
    }

    private static float[] floats(Ops ops, Tensor t) {
        if (t.device().isCpu()) return t.toFloatArray();
        Tensor h = ops.toHost(t);
        float[] f = h.toFloatArray();
        h.close();
        return f;
    }

    private static Tensor upload(Ops ops, float[] data, Shape shape, DType dtype) {
        Tensor h = Tensor.zeros(dtype, shape);
        h.setFloats(data);
        if (ops.device().isCpu()) return h;
        Tensor d = ops.upload(h);
        h.close();
        return d;
    }
}
