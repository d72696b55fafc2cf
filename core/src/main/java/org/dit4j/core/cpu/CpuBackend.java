package org.dit4j.core.cpu;

import org.dit4j.core.ops.GroupNormParts;
import org.dit4j.core.ops.HostReductions;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Device;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * The executable reference backend: every {@link Ops} method on host memory, computed in f32 (reductions in
 * double), with the Vector API and a fixed pool of worker threads where the work is heavy (GEMM, attention,
 * convolution). Other backends are checked against this one.
 *
 * <p>All outputs are allocated on the calling thread (so they join its {@link org.dit4j.core.tensor.Scope});
 * worker threads only ever see plain arrays.
 */
public final class CpuBackend implements Ops {
    private static final int ELEMENTWISE_GRAIN = 1 << 14;

    private final Parallel par;

    /** A backend using every available processor. */
    public CpuBackend() { this(Runtime.getRuntime().availableProcessors()); }

    /** A backend using {@code threads} worker threads (1 = everything on the calling thread). */
    public CpuBackend(int threads) { this.par = new Parallel(threads); }

    public int threads() { return par.threads(); }

    @Override public Device device() { return Device.CPU; }

    @Override public String name() {
        return "cpu (" + par.threads() + (par.threads() == 1 ? " thread" : " threads") + ", Vector API "
                + Gemm.SPECIES.vectorBitSize() + "-bit)";
    }

    @Override public void close() { par.close(); }

    // ================================================================== memory

    @Override public Tensor empty(DType dtype, Shape shape) { return HostArrays.allocate(shape, dtype); }

    @Override public Tensor zeros(DType dtype, Shape shape) { return HostArrays.allocate(shape, dtype); }

    @Override public Tensor upload(Tensor host) { return rawCopy("upload", host); }

    @Override public Tensor toHost(Tensor x) { return rawCopy("toHost", x); }

    @Override public Tensor copy(Tensor x) { return rawCopy("copy", x); }

    private static Tensor rawCopy(String op, Tensor x) {
        requireHost(op, "x", x);
        Tensor out = HostArrays.allocate(x.shape(), x.dtype());
        MemorySegment.copy(x.segment(), 0, out.segment(), 0, x.byteSize());
        return out;
    }

    // ================================================================== layout

    @Override public Tensor cast(Tensor x, DType dtype) {
        requireHost("cast", "x", x);
        if (x.dtype() == dtype) return copy(x);
        Tensor out = HostArrays.allocate(x.shape(), dtype);
        int n = HostArrays.count(x, "cast: x");
        if (isInteger(x.dtype()) && isInteger(dtype)) {
            MemorySegment src = x.segment(), dst = out.segment();
            for (int i = 0; i < n; i++) {
                long v = switch (x.dtype()) {
                    case I32 -> src.get(HostArrays.I32, i * 4L);
                    case I64 -> src.get(HostArrays.I64, i * 8L);
                    default -> src.get(ValueLayout.JAVA_BYTE, i) != 0 ? 1 : 0;
                };
                switch (dtype) {
                    case I32 -> dst.set(HostArrays.I32, i * 4L, (int) v);
                    case I64 -> dst.set(HostArrays.I64, i * 8L, v);
                    default -> dst.set(ValueLayout.JAVA_BYTE, i, (byte) (v != 0 ? 1 : 0));
                }
            }
            return out;
        }
        MemorySegment src = x.segment(), dst = out.segment();
        par.forRange(n, ELEMENTWISE_GRAIN, (lo, hi) -> {
            float[] buf = new float[Math.min(hi - lo, 4096)];
            for (int i = lo; i < hi; i += buf.length) {
                int m = Math.min(buf.length, hi - i);
                HostArrays.decode(src, x.dtype(), i, buf, 0, m);
                HostArrays.encode(buf, 0, m, dst, dtype, i);
            }
        });
        return out;
    }

    private static boolean isInteger(DType t) { return !t.isFloating(); }

    @Override public Tensor permute(Tensor x, int... perm) {
        requireHost("permute", "x", x);
        int r = x.rank();
        if (perm.length != r)
            throw new IllegalArgumentException("permute: perm must list " + r + " dims for x " + x.shape()
                    + ", got " + Arrays.toString(perm));
        long[] in = x.shape().dims(), inStride = Layout.strides(in);
        long[] outDims = new long[r], srcStride = new long[r];
        boolean[] seen = new boolean[r];
        for (int i = 0; i < r; i++) {
            int p = perm[i] < 0 ? perm[i] + r : perm[i];
            if (p < 0 || p >= r || seen[p])
                throw new IllegalArgumentException("permute: perm " + Arrays.toString(perm)
                        + " is not a permutation of the " + r + " dims of x " + x.shape());
            seen[p] = true;
            outDims[i] = in[p];
            srcStride[i] = inStride[p];
        }
        Tensor out = HostArrays.allocate(Shape.of(outDims), x.dtype());
        Layout.copyBox(x.segment(), 0, srcStride, out.segment(), 0, Layout.strides(outDims), outDims, x.dtype().byteSize());
        return out;
    }

    @Override public Tensor slice(Tensor x, int dim, long start, long end) {
        requireHost("slice", "x", x);
        int d = normDim("slice", x, dim);
        long size = x.dim(d);
        if (start < 0 || end < start || end > size)
            throw new IllegalArgumentException("slice: range [" + start + ", " + end + ") must lie within [0, " + size
                    + "] of dim " + dim + " of x " + x.shape());
        long[] outDims = x.shape().dims();
        outDims[d] = end - start;
        long[] inStride = Layout.strides(x.shape().dims());
        Tensor out = HostArrays.allocate(Shape.of(outDims), x.dtype());
        Layout.copyBox(x.segment(), start * inStride[d], inStride, out.segment(), 0, Layout.strides(outDims), outDims,
                x.dtype().byteSize());
        return out;
    }

    @Override public void writeSlice(Tensor dst, int dim, long start, Tensor src) {
        requireHost("writeSlice", "dst", dst);
        requireHost("writeSlice", "src", src);
        int d = normDim("writeSlice", dst, dim);
        boolean ok = src.rank() == dst.rank();
        for (int j = 0; ok && j < dst.rank(); j++) ok = j == d || src.dim(j) == dst.dim(j);
        if (!ok)
            throw new IllegalArgumentException("writeSlice: src must match dst " + dst.shape() + " in every dim but " + dim
                    + ", got " + src.shape());
        if (start < 0 || start + src.dim(d) > dst.dim(d))
            throw new IllegalArgumentException("writeSlice: rows [" + start + ", " + (start + src.dim(d)) + ") of dim " + dim
                    + " must lie within [0, " + dst.dim(d) + "] of dst " + dst.shape());
        Tensor s = src.dtype() == dst.dtype() ? src : cast(src, dst.dtype());
        long[] dstStride = Layout.strides(dst.shape().dims());
        long[] dims = src.shape().dims();
        Layout.copyBox(s.segment(), 0, Layout.strides(dims), dst.segment(), start * dstStride[d], dstStride, dims,
                dst.dtype().byteSize());
        if (s != src) s.close();
    }

    @Override public Tensor concat(int dim, Tensor... xs) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("concat: needs at least one tensor");
        Tensor first = xs[0];
        int d = normDim("concat", first, dim);
        long total = 0;
        for (int i = 0; i < xs.length; i++) {
            Tensor t = xs[i];
            requireHost("concat", "xs[" + i + "]", t);
            boolean ok = t.rank() == first.rank();
            for (int j = 0; ok && j < t.rank(); j++) ok = j == d || t.dim(j) == first.dim(j);
            if (!ok)
                throw new IllegalArgumentException("concat: xs[" + i + "] must match xs[0] " + first.shape()
                        + " in every dim but " + dim + ", got " + t.shape());
            total += t.dim(d);
        }
        DType dtype = first.dtype();
        long[] outDims = first.shape().dims();
        outDims[d] = total;
        long[] outStride = Layout.strides(outDims);
        Tensor out = HostArrays.allocate(Shape.of(outDims), dtype);
        long at = 0;
        for (Tensor t : xs) {
            Tensor src = t.dtype() == dtype ? t : cast(t, dtype);
            long[] dims = t.shape().dims();
            Layout.copyBox(src.segment(), 0, Layout.strides(dims), out.segment(), at * outStride[d], outStride, dims,
                    dtype.byteSize());
            if (src != t) src.close();
            at += dims[d];
        }
        return out;
    }

    @Override public Tensor pad(Tensor x, long[] pads, float value) {
        requireHost("pad", "x", x);
        int r = x.rank();
        if (pads.length % 2 != 0 || pads.length > 2 * r)
            throw new IllegalArgumentException("pad: pads must hold (before, after) pairs for at most the " + r
                    + " dims of x " + x.shape() + ", got " + Arrays.toString(pads));
        long[] in = x.shape().dims(), outDims = in.clone();
        long[] before = new long[r];
        for (int i = 0; i < pads.length / 2; i++) {
            int d = r - 1 - i;
            before[d] = pads[2 * i];
            outDims[d] = in[d] + pads[2 * i] + pads[2 * i + 1];
            if (outDims[d] < 0)
                throw new IllegalArgumentException("pad: pads " + Arrays.toString(pads) + " crop dim " + d + " of x "
                        + x.shape() + " below zero");
        }
        DType dtype = x.dtype();
        int es = dtype.byteSize();
        Tensor out = HostArrays.allocate(Shape.of(outDims), dtype);
        Layout.fill(out.segment(), 0, out.numel(), HostArrays.bitsOf(value, dtype), es);
        long[] inStride = Layout.strides(in), outStride = Layout.strides(outDims), ext = new long[r];
        long srcOff = 0, dstOff = 0;
        for (int d = 0; d < r; d++) {
            long inStart = Math.max(0, -before[d]), outStart = Math.max(0, before[d]);
            ext[d] = Math.max(0, Math.min(in[d] - inStart, outDims[d] - outStart));
            srcOff += inStart * inStride[d];
            dstOff += outStart * outStride[d];
        }
        Layout.copyBox(x.segment(), srcOff, inStride, out.segment(), dstOff, outStride, ext, es);
        return out;
    }

    @Override public Tensor upsampleNearest2d(Tensor x, int factor) {
        requireHost("upsampleNearest2d", "x", x);
        if (x.rank() < 2)
            throw new IllegalArgumentException("upsampleNearest2d: x must have rank >= 2 [..., H, W], got " + x.shape());
        if (factor < 1) throw new IllegalArgumentException("upsampleNearest2d: factor must be >= 1, got " + factor);
        int r = x.rank();
        long[] in = x.shape().dims(), outDims = in.clone();
        outDims[r - 2] *= factor;
        outDims[r - 1] *= factor;
        long[] inStride = Layout.strides(in);
        // view the output as [..., H, f, W, f]: the source repeats along both f axes
        long[] ext = new long[r + 2], src = new long[r + 2];
        for (int d = 0; d < r - 2; d++) { ext[d] = in[d]; src[d] = inStride[d]; }
        ext[r - 2] = in[r - 2]; src[r - 2] = in[r - 1];
        ext[r - 1] = factor;    src[r - 1] = 0;
        ext[r] = in[r - 1];     src[r] = 1;
        ext[r + 1] = factor;    src[r + 1] = 0;
        Tensor out = HostArrays.allocate(Shape.of(outDims), x.dtype());
        Layout.copyBox(x.segment(), 0, src, out.segment(), 0, Layout.strides(ext), ext, x.dtype().byteSize());
        return out;
    }

    // ================================================================== linear algebra

    @Override public Tensor linear(Tensor x, Tensor w, Tensor bias) {
        return result(linearFloats("linear", x, w, bias), x.shape().with(-1, w.dim(0)), x.dtype());
    }

    /** Fused on the CPU: GELU is applied to the f32 product before the single rounding to the output dtype. */
    @Override public Tensor linearGelu(Tensor x, Tensor w, Tensor bias, boolean tanh) {
        float[] y = linearFloats("linearGelu", x, w, bias);
        applyUnary(tanh ? UnOp.GELU_TANH : UnOp.GELU_ERF, y, 0);
        return result(y, x.shape().with(-1, w.dim(0)), x.dtype());
    }

    /** x·wᵀ + b in f32. */
    private float[] linearFloats(String op, Tensor x, Tensor w, Tensor bias) {
        requireFloating(op, "x", x);
        requireFloating(op, "w", w);
        if (x.rank() < 1) throw new IllegalArgumentException(op + ": x must have rank >= 1 [..., in], got " + x.shape());
        long in = x.dim(-1);
        if (w.rank() != 2 || w.dim(1) != in)
            throw new IllegalArgumentException(op + ": w must have shape [out, " + in + "] (in = x.shape[-1] of x "
                    + x.shape() + "), got " + w.shape());
        int n = Math.toIntExact(w.dim(0)), k = Math.toIntExact(in);
        float[] b = bias == null ? null : optionalVector(op, "bias", bias, n);
        HostArrays.count(w, op + ": w");
        int m = Math.toIntExact(x.shape().rows());
        float[] xa = floats(x);
        float[] out = new float[Math.multiplyExact(m, n)];
        if (m < Gemm.MR / 2) gemv(m, n, k, xa, w, out);
        else Gemm.gemm(m, n, k, xa, 0, k, Gemm.transposed(w.segment(), w.dtype(), k), out, 0, n, false, par);
        if (b != null) {
            par.forRange(m, grainRows(n), (lo, hi) -> {
                for (int i = lo; i < hi; i++) for (int j = 0; j < n; j++) out[i * n + j] += b[j];
            });
        }
        return out;
    }

    /** out[i, j] = x[i, :]·w[j, :] for a handful of rows: streams the weight once, no packing. */
    private void gemv(int m, int n, int k, float[] x, Tensor w, float[] out) {
        MemorySegment ws = w.segment();
        DType wt = w.dtype();
        par.forRange(n, 16, (lo, hi) -> {
            float[] row = new float[k];
            for (int j = lo; j < hi; j++) {
                HostArrays.decode(ws, wt, (long) j * k, row, 0, k);
                for (int i = 0; i < m; i++) out[i * n + j] = Vec.dot(x, i * k, row, 0, k);
            }
        });
    }

    @Override public Tensor matmul(Tensor a, Tensor b) {
        requireFloating("matmul", "a", a);
        requireFloating("matmul", "b", b);
        if (a.rank() < 2 || b.rank() < 2)
            throw new IllegalArgumentException("matmul: a and b must have rank >= 2 ([..., M, K] and [..., K, N]), got "
                    + a.shape() + " and " + b.shape());
        int m = a.shape().dimInt(-2), k = a.shape().dimInt(-1), n = b.shape().dimInt(-1);
        if (b.dim(-2) != k)
            throw new IllegalArgumentException("matmul: b must have shape [..., " + k + ", N] (K = a.shape[-1] of a "
                    + a.shape() + "), got " + b.shape());
        long[] batchA = Arrays.copyOf(a.shape().dims(), a.rank() - 2), batchB = Arrays.copyOf(b.shape().dims(), b.rank() - 2);
        long[] batch = broadcastDims("matmul", "a", batchA, "b", batchB);
        long[] sa = broadcastStrides(batchA, batch), sb = broadcastStrides(batchB, batch);
        int batches = Math.toIntExact(Shape.of(batch).numel());
        float[] aa = floats(a), ba = floats(b);
        float[] out = new float[Math.multiplyExact(batches, m * n)];
        long[] outStride = Layout.strides(batch);
        java.util.function.IntConsumer one = t -> {
            long ao = 0, bo = 0, rest = t;
            for (int d = 0; d < batch.length; d++) {
                long idx = rest / outStride[d];
                rest %= outStride[d];
                ao += idx * sa[d];
                bo += idx * sb[d];
            }
            Gemm.gemm(m, n, k, aa, (int) (ao * m * k), k, Gemm.dense(ba, (int) (bo * k * n), n),
                    out, t * m * n, n, false, par);
        };
        if (batches >= 2 * par.threads()) par.forEach(batches, one);
        else for (int t = 0; t < batches; t++) one.accept(t);
        long[] outDims = Arrays.copyOf(batch, batch.length + 2);
        outDims[batch.length] = m;
        outDims[batch.length + 1] = n;
        return result(out, Shape.of(outDims), a.dtype());
    }

    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        return attention(q, k, v, bias, scale, null);
    }

    @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        float[][] lse = new float[1][];
        Tensor out = attention(q, k, v, bias, scale, lse);
        return new PartialAttention(out, result(lse[0], Shape.of(q.dim(0), q.dim(2), q.dim(1)), DType.F32));
    }

    /** Attention; when {@code lseOut} is given, lseOut[0] receives the rows' log-sum-exp [B, H, Lq]. */
    private Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale, float[][] lseOut) {
        requireFloating("attention", "q", q);
        requireFloating("attention", "k", k);
        requireFloating("attention", "v", v);
        if (q.rank() != 4) throw new IllegalArgumentException("attention: q must have shape [B, Lq, H, d], got " + q.shape());
        int batch = q.shape().dimInt(0), lq = q.shape().dimInt(1), heads = q.shape().dimInt(2), d = q.shape().dimInt(3);
        if (k.rank() != 4 || k.dim(0) != batch || k.dim(2) != heads || k.dim(3) != d)
            throw new IllegalArgumentException("attention: k must have shape [B, Lk, H, d] = [" + batch + ", Lk, " + heads
                    + ", " + d + "] (from q " + q.shape() + "), got " + k.shape());
        int lk = k.shape().dimInt(1);
        if (v.rank() != 4 || v.dim(0) != batch || v.dim(1) != lk || v.dim(2) != heads)
            throw new IllegalArgumentException("attention: v must have shape [B, Lk, H, dv] = [" + batch + ", " + lk + ", "
                    + heads + ", dv] (from k " + k.shape() + "), got " + v.shape());
        int dv = v.shape().dimInt(3);
        float[] b = null;
        long[] bs = new long[4];
        if (bias != null) {
            requireFloating("attention", "bias", bias);
            long[] target = {batch, heads, lq, lk};
            if (bias.rank() > 4)
                throw new IllegalArgumentException("attention: bias must broadcast to [B, H, Lq, Lk] = "
                        + Arrays.toString(target) + ", got " + bias.shape());
            long[] bd = bias.shape().dims();
            long[] full = new long[4];
            Arrays.fill(full, 1);
            System.arraycopy(bd, 0, full, 4 - bd.length, bd.length);
            for (int i = 0; i < 4; i++)
                if (full[i] != 1 && full[i] != target[i])
                    throw new IllegalArgumentException("attention: bias must broadcast to [B, H, Lq, Lk] = "
                            + Arrays.toString(target) + ", got " + bias.shape());
            long[] st = Layout.strides(full);
            for (int i = 0; i < 4; i++) bs[i] = full[i] == 1 ? 0 : st[i];
            b = floats(bias);
        }
        float[] out = new float[Math.multiplyExact(batch * lq, heads * dv)];
        float[] lse = lseOut == null ? null : new float[Math.multiplyExact(batch * heads, lq)];
        if (lseOut != null) lseOut[0] = lse;
        Attention.run(floats(q), floats(k), floats(v), out,
                batch, lq, lk, heads, d, dv, b, bs, scale, lse, par);
        return result(out, Shape.of(batch, lq, heads, dv), q.dtype());
    }

    @Override public PartialAttention mergeAttention(PartialAttention a, PartialAttention b) {
        requireFloating("mergeAttention", "a.out", a.out());
        requireFloating("mergeAttention", "b.out", b.out());
        requireFloating("mergeAttention", "a.lse", a.lse());
        requireFloating("mergeAttention", "b.lse", b.lse());
        Shape o = a.out().shape();
        if (o.rank() != 4 || !b.out().shape().equals(o))
            throw new IllegalArgumentException("mergeAttention: a.out and b.out must both be [B, Lq, H, dv], got " + o + " and " + b.out().shape());
        int batch = o.dimInt(0), lq = o.dimInt(1), heads = o.dimInt(2), dv = o.dimInt(3);
        Shape ls = Shape.of(batch, heads, lq);
        if (!a.lse().shape().equals(ls) || !b.lse().shape().equals(ls) || a.lse().dtype() != DType.F32 || b.lse().dtype() != DType.F32)
            throw new IllegalArgumentException("mergeAttention: a.lse and b.lse must be F32 " + ls + " ([B, H, Lq] of out " + o
                    + "), got " + a.lse().dtype() + " " + a.lse().shape() + " and " + b.lse().dtype() + " " + b.lse().shape());
        float[] oa = floats(a.out()), ob = floats(b.out()), la = floats(a.lse()), lb = floats(b.lse());
        float[] lse = new float[la.length];
        par.forRange(batch * lq, grainRows(heads * dv), (lo, hi) -> {
            for (int row = lo; row < hi; row++) {
                int bi = row / lq, i = row % lq;
                for (int h = 0; h < heads; h++) {
                    int li = (bi * heads + h) * lq + i, oo = (row * heads + h) * dv;
                    double x = la[li], y = lb[li], m = Math.max(x, y);
                    if (m == Double.NEGATIVE_INFINITY) {
                        lse[li] = Float.NEGATIVE_INFINITY;
                        Arrays.fill(oa, oo, oo + dv, 0f);
                        continue;
                    }
                    double wa = Math.exp(x - m), wb = Math.exp(y - m), sum = wa + wb;
                    lse[li] = (float) (m + Math.log(sum));
                    float fa = (float) (wa / sum), fb = (float) (wb / sum);
                    for (int c = 0; c < dv; c++) oa[oo + c] = fa * oa[oo + c] + fb * ob[oo + c];
                }
            }
        });
        return new PartialAttention(result(oa, o, a.out().dtype()), result(lse, ls, DType.F32));
    }

    // ================================================================== normalisation

    @Override public Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, float eps) {
        requireFloating("layerNorm", "x", x);
        int dim = lastDim("layerNorm", x);
        float[] w = optionalVector("layerNorm", "weight", weight, dim);
        float[] b = optionalVector("layerNorm", "bias", bias, dim);
        float[] a = floats(x);
        layerNormRows(a, dim, w, b, eps);
        return result(a, x.shape(), x.dtype());
    }

    /** In place over rows of length dim: (x−μ)/√(σ²+eps)·w + b, statistics in double. */
    private void layerNormRows(float[] a, int dim, float[] w, float[] b, float eps) {
        int rows = a.length / Math.max(1, dim);
        par.forRange(rows, grainRows(dim), (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                int o = r * dim;
                double sum = 0;
                for (int j = 0; j < dim; j++) sum += a[o + j];
                double mean = sum / dim, sq = 0;
                for (int j = 0; j < dim; j++) { double c = a[o + j] - mean; sq += c * c; }
                double inv = 1.0 / Math.sqrt(sq / dim + eps);
                for (int j = 0; j < dim; j++) {
                    float y = (float) ((a[o + j] - mean) * inv);
                    if (w != null) y *= w[j];
                    if (b != null) y += b[j];
                    a[o + j] = y;
                }
            }
        });
    }

    /** Fused on the CPU: one pass, no rounding of the normalised values to the activation dtype in between. */
    @Override public Tensor layerNormModulate(Tensor x, Tensor shift, Tensor scale, float eps) {
        requireFloating("layerNormModulate", "x", x);
        int[] bld = requireBLD("layerNormModulate", "x", x);
        Shape bd = Shape.of(bld[0], bld[2]);
        requireShape("layerNormModulate", "shift", shift, bd);
        requireShape("layerNormModulate", "scale", scale, bd);
        float[] a = floats(x);
        layerNormRows(a, bld[2], null, null, eps);
        modulateRows(a, bld, floats(shift), floats(scale));
        return result(a, x.shape(), x.dtype());
    }

    @Override public Tensor rmsNorm(Tensor x, Tensor weight, float eps) {
        requireFloating("rmsNorm", "x", x);
        int dim = lastDim("rmsNorm", x);
        float[] w = optionalVector("rmsNorm", "weight", weight, dim);
        float[] a = floats(x);
        rmsNormRows(a, dim, w, eps);
        return result(a, x.shape(), x.dtype());
    }

    /** In place over rows of length dim: x·rsqrt(mean(x²)+eps)·w, the mean in double. */
    private void rmsNormRows(float[] a, int dim, float[] w, float eps) {
        int rows = a.length / Math.max(1, dim);
        par.forRange(rows, grainRows(dim), (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                int o = r * dim;
                double sq = 0;
                for (int j = 0; j < dim; j++) sq += (double) a[o + j] * a[o + j];
                float inv = (float) (1.0 / Math.sqrt(sq / dim + eps));
                if (w != null) for (int j = 0; j < dim; j++) a[o + j] = a[o + j] * inv * w[j];
                else for (int j = 0; j < dim; j++) a[o + j] = a[o + j] * inv;
            }
        });
    }

    @Override public Tensor groupNorm(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        requireFloating("groupNorm", "x", x);
        if (x.rank() < 2) throw new IllegalArgumentException("groupNorm: x must have shape [N, C, ...], got " + x.shape());
        int n = x.shape().dimInt(0), c = x.shape().dimInt(1);
        if (groups < 1 || c % groups != 0)
            throw new IllegalArgumentException("groupNorm: groups (" + groups + ") must divide the " + c
                    + " channels of x " + x.shape());
        float[] w = optionalVector("groupNorm", "weight", weight, c);
        float[] b = optionalVector("groupNorm", "bias", bias, c);
        float[] a = floats(x);
        int spatial = n * c == 0 ? 0 : a.length / (n * c);
        int cg = c / groups, size = cg * spatial;
        par.forEach(n * groups, ng -> {
            int o = ng * size, c0 = (ng % groups) * cg;
            double sum = 0;
            for (int j = 0; j < size; j++) sum += a[o + j];
            double mean = sum / size, sq = 0;
            for (int j = 0; j < size; j++) { double t = a[o + j] - mean; sq += t * t; }
            double inv = 1.0 / Math.sqrt(sq / size + eps);
            for (int ch = 0; ch < cg; ch++) {
                float wc = w == null ? 1f : w[c0 + ch], bc = b == null ? 0f : b[c0 + ch];
                int base = o + ch * spatial;
                for (int j = 0; j < spatial; j++) a[base + j] = (float) ((a[base + j] - mean) * inv) * wc + bc;
            }
        });
        return result(a, x.shape(), x.dtype());
    }

    /** Sums in double per (sample, group), then rounded once to F32. */
    @Override public Tensor groupStats(Tensor x, int groups, Tensor center) {
        requireFloating("groupStats", "x", x);
        if (center != null) requireHost("groupStats", "center", center);
        long[] ncs = GroupNormParts.checkGroups("groupStats", x, groups);
        int n = (int) ncs[0], c = (int) ncs[1], spatial = (int) ncs[2];
        GroupNormParts.checkStats("groupStats", "center", center, n, groups, true);
        float[] a = floats(x), cen = center == null ? null : floats(center);
        int size = c / groups * spatial;
        float[] out = new float[n * groups * 2];
        par.forEach(n * groups, ng -> {
            int o = ng * size;
            double ctr = cen == null ? 0 : cen[ng], sum = 0, sq = 0;
            for (int j = 0; j < size; j++) {
                double t = a[o + j] - ctr;
                sum += t;
                sq += t * t;
            }
            out[2 * ng] = (float) sum;
            out[2 * ng + 1] = (float) sq;
        });
        return result(out, Shape.of(n, groups, 2), DType.F32);
    }

    /** {@link #groupNorm}'s arithmetic with the given mean and variance. */
    @Override public Tensor groupNormWithStats(Tensor x, int groups, Tensor mean, Tensor var, Tensor weight, Tensor bias, float eps) {
        requireFloating("groupNormWithStats", "x", x);
        long[] ncs = GroupNormParts.checkGroups("groupNormWithStats", x, groups);
        int n = (int) ncs[0], c = (int) ncs[1], spatial = (int) ncs[2];
        requireHost("groupNormWithStats", "mean", mean);
        requireHost("groupNormWithStats", "var", var);
        GroupNormParts.checkStats("groupNormWithStats", "mean", mean, n, groups, false);
        GroupNormParts.checkStats("groupNormWithStats", "var", var, n, groups, false);
        float[] w = optionalVector("groupNormWithStats", "weight", weight, c);
        float[] b = optionalVector("groupNormWithStats", "bias", bias, c);
        float[] a = floats(x), mu = floats(mean), va = floats(var);
        int cg = c / groups;
        par.forEach(n * groups, ng -> {
            int o = ng * cg * spatial, c0 = (ng % groups) * cg;
            double m = mu[ng], inv = 1.0 / Math.sqrt((double) va[ng] + eps);
            for (int ch = 0; ch < cg; ch++) {
                float wc = w == null ? 1f : w[c0 + ch], bc = b == null ? 0f : b[c0 + ch];
                int base = o + ch * spatial;
                for (int j = 0; j < spatial; j++) a[base + j] = (float) ((a[base + j] - m) * inv) * wc + bc;
            }
        });
        return result(a, x.shape(), x.dtype());
    }

    // ================================================================== position

    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin) {
        checkRope("rope", x, cos, sin);
        float[] a = floats(x);
        ropeRows(a, x.shape(), floats(cos), floats(sin), cos.rank() == 3);
        return result(a, x.shape(), x.dtype());
    }

    /** Fused on the CPU: the normalised head vectors are rotated before the single rounding to the output dtype. */
    @Override public Tensor rmsNormRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        checkRope("rmsNormRope", x, cos, sin);
        float[] wa = optionalVector("rmsNormRope", "w", w, x.shape().dimInt(3));
        float[] a = floats(x);
        rmsNormRows(a, x.shape().dimInt(3), wa, eps);
        ropeRows(a, x.shape(), floats(cos), floats(sin), cos.rank() == 3);
        return result(a, x.shape(), x.dtype());
    }

    private static void checkRope(String op, Tensor x, Tensor cos, Tensor sin) {
        requireFloating(op, "x", x);
        if (x.rank() != 4 || x.dim(3) % 2 != 0)
            throw new IllegalArgumentException(op + ": x must have shape [B, L, H, d] with even d, got " + x.shape());
        Shape perPos = Shape.of(x.dim(1), x.dim(3) / 2), perBatch = Shape.of(x.dim(0), x.dim(1), x.dim(3) / 2);
        requireFloating(op, "cos", cos);
        if (!cos.shape().equals(perPos) && !cos.shape().equals(perBatch))
            throw new IllegalArgumentException(op + ": cos must have shape " + perPos + " or " + perBatch + " (from x "
                    + x.shape() + "), got " + cos.shape());
        requireShape(op, "sin", sin, cos.shape());
    }

    /** In place on [B, L, H, d]: adjacent pairs rotated by cos/sin of shape [L, d/2] or (batched) [B, L, d/2]. */
    private void ropeRows(float[] a, Shape shape, float[] c, float[] s, boolean batched) {
        int batch = shape.dimInt(0), len = shape.dimInt(1), heads = shape.dimInt(2), d = shape.dimInt(3), half = d / 2;
        par.forRange(batch * len, grainRows(heads * d), (lo, hi) -> {
            for (int bl = lo; bl < hi; bl++) {
                int cs = (batched ? bl : bl % len) * half;
                for (int h = 0; h < heads; h++) {
                    int o = (bl * heads + h) * d;
                    for (int i = 0; i < half; i++) {
                        float x0 = a[o + 2 * i], x1 = a[o + 2 * i + 1], ci = c[cs + i], si = s[cs + i];
                        a[o + 2 * i] = x0 * ci - x1 * si;
                        a[o + 2 * i + 1] = x0 * si + x1 * ci;
                    }
                }
            }
        });
    }

    // ================================================================== element-wise

    private enum BinOp { ADD, SUB, MUL }

    @Override public Tensor add(Tensor a, Tensor b) { return binary("add", BinOp.ADD, a, b); }

    @Override public Tensor sub(Tensor a, Tensor b) { return binary("sub", BinOp.SUB, a, b); }

    @Override public Tensor mul(Tensor a, Tensor b) { return binary("mul", BinOp.MUL, a, b); }

    private Tensor binary(String op, BinOp kind, Tensor a, Tensor b) {
        requireFloating(op, "a", a);
        requireFloating(op, "b", b);
        long[] outDims = broadcastDims(op, "a", a.shape().dims(), "b", b.shape().dims());
        float[] x = floats(a), y = floats(b);
        Shape outShape = Shape.of(outDims);
        float[] out = new float[HostArrays.count(outShape, op + ": result")];
        // collapse dims so the inner loop is as long as possible
        long[] sa = broadcastStrides(a.shape().dims(), outDims), sb = broadcastStrides(b.shape().dims(), outDims);
        int r = outDims.length;
        long[] ext = new long[Math.max(r, 1)], xa = new long[Math.max(r, 1)], xb = new long[Math.max(r, 1)];
        int m = 0;
        for (int d = 0; d < r; d++) {
            if (outDims[d] == 1) continue;
            if (m > 0 && xa[m - 1] == sa[d] * outDims[d] && xb[m - 1] == sb[d] * outDims[d]) {
                ext[m - 1] *= outDims[d]; xa[m - 1] = sa[d]; xb[m - 1] = sb[d];
            } else { ext[m] = outDims[d]; xa[m] = sa[d]; xb[m] = sb[d]; m++; }
        }
        if (m == 0) { ext[0] = 1; xa[0] = 1; xb[0] = 1; m = 1; }
        final int dims = m;
        int inner = (int) ext[m - 1], ia = (int) xa[m - 1], ib = (int) xb[m - 1];
        int outer = out.length / Math.max(1, inner);
        // work items: (row, column chunk), so one long row (same shapes collapse to one) still spreads over threads
        int pieces = Math.max(1, (inner + ELEMENTWISE_GRAIN - 1) / ELEMENTWISE_GRAIN), piece = (inner + pieces - 1) / pieces;
        par.forRange(outer * pieces, Math.max(1, grainRows(inner) / pieces), (lo, hi) -> {
            for (int item = lo; item < hi; item++) {
                int row = item / pieces, j0 = (item % pieces) * piece, j1 = Math.min(inner, j0 + piece);
                long ao = 0, bo = 0, rest = row;
                for (int d = dims - 2; d >= 0; d--) {
                    long idx = rest % ext[d];
                    rest /= ext[d];
                    ao += idx * xa[d];
                    bo += idx * xb[d];
                }
                int o = row * inner, pa = (int) ao, pb = (int) bo;
                switch (kind) {
                    case ADD -> { for (int j = j0; j < j1; j++) out[o + j] = x[pa + j * ia] + y[pb + j * ib]; }
                    case SUB -> { for (int j = j0; j < j1; j++) out[o + j] = x[pa + j * ia] - y[pb + j * ib]; }
                    case MUL -> { for (int j = j0; j < j1; j++) out[o + j] = x[pa + j * ia] * y[pb + j * ib]; }
                }
            }
        });
        return result(out, outShape, a.dtype());
    }

    private enum UnOp { SCALE, SILU, GELU_TANH, GELU_ERF }

    @Override public Tensor scale(Tensor x, float s) { return unary("scale", UnOp.SCALE, x, s); }

    @Override public Tensor silu(Tensor x) { return unary("silu", UnOp.SILU, x, 0); }

    @Override public Tensor gelu(Tensor x, boolean tanh) { return unary("gelu", tanh ? UnOp.GELU_TANH : UnOp.GELU_ERF, x, 0); }

    private Tensor unary(String op, UnOp kind, Tensor x, float s) {
        requireFloating(op, "x", x);
        float[] a = floats(x);
        applyUnary(kind, a, s);
        return result(a, x.shape(), x.dtype());
    }

    private void applyUnary(UnOp kind, float[] a, float s) {
        par.forRange(a.length, ELEMENTWISE_GRAIN, (lo, hi) -> {
            switch (kind) {
                case SCALE -> { for (int i = lo; i < hi; i++) a[i] *= s; }
                case SILU -> { for (int i = lo; i < hi; i++) a[i] = (float) (a[i] / (1 + Math.exp(-a[i]))); }
                case GELU_TANH -> { for (int i = lo; i < hi; i++) a[i] = geluTanh(a[i]); }
                case GELU_ERF -> { for (int i = lo; i < hi; i++) a[i] = (float) (0.5 * a[i] * (1 + Erf.erf(a[i] * SQRT_HALF))); }
            }
        });
    }

    private static final double SQRT_HALF = Math.sqrt(0.5);
    private static final double SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

    /** 0.5x(1+tanh(u)) = x·σ(2u), u = √(2/π)(x+0.044715x³): the same value without a tanh call, in double. */
    private static float geluTanh(float v) {
        double x = v;
        return (float) (x / (1 + Math.exp(-2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))));
    }

    @Override public Tensor softmax(Tensor x) {
        requireFloating("softmax", "x", x);
        int dim = lastDim("softmax", x);
        float[] a = floats(x);
        int rows = a.length / Math.max(1, dim);
        par.forRange(rows, grainRows(dim), (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                int o = r * dim;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < dim; j++) max = Math.max(max, a[o + j]);
                double sum = 0;
                for (int j = 0; j < dim; j++) { double e = Math.exp((double) a[o + j] - max); a[o + j] = (float) e; sum += e; }
                double inv = 1.0 / sum;
                for (int j = 0; j < dim; j++) a[o + j] = (float) (a[o + j] * inv);
            }
        });
        return result(a, x.shape(), x.dtype());
    }

    /**
     * {@link Ops#absSums} without copies: chunks of {@link HostReductions#CHUNK} elements reduced in parallel into one
     * double partial each, the partials added in chunk order — the same bits as the default on any thread count.
     */
    @Override public double[] absSums(Tensor a, Tensor b) {
        HostReductions.checkAbsSums(a, b);
        requireHost("absSums", "a", a);
        requireHost("absSums", "b", b);
        long n = a.numel();
        int chunks = Math.toIntExact((n + HostReductions.CHUNK - 1) / HostReductions.CHUNK);
        double[] diff = new double[chunks], ref = new double[chunks];
        MemorySegment sa = a.segment(), sb = b.segment();
        par.forRange(chunks, 16, (lo, hi) -> {
            float[] x = new float[HostReductions.CHUNK], y = new float[HostReductions.CHUNK];
            double[] part = new double[2];
            for (int c = lo; c < hi; c++) {
                long first = (long) c * HostReductions.CHUNK;
                int m = (int) Math.min(HostReductions.CHUNK, n - first);
                HostArrays.decode(sa, a.dtype(), first, x, 0, m);
                HostArrays.decode(sb, b.dtype(), first, y, 0, m);
                HostReductions.absSumsChunk(x, y, m, a.dtype(), part);
                diff[c] = part[0];
                ref[c] = part[1];
            }
        });
        double d = 0, r = 0;
        for (int c = 0; c < chunks; c++) {
            d += diff[c];
            r += ref[c];
        }
        return new double[] {d, r};
    }

    @Override public Tensor modulate(Tensor x, Tensor shift, Tensor scale) {
        requireFloating("modulate", "x", x);
        int[] bld = requireBLD("modulate", "x", x);
        Shape bd = Shape.of(bld[0], bld[2]);
        requireShape("modulate", "shift", shift, bd);
        requireShape("modulate", "scale", scale, bd);
        float[] a = floats(x);
        modulateRows(a, bld, floats(shift), floats(scale));
        return result(a, x.shape(), x.dtype());
    }

    /** In place on [B, L, D]: x·(1+scale[b])+shift[b]. */
    private void modulateRows(float[] a, int[] bld, float[] sh, float[] sc) {
        int len = bld[1], d = bld[2];
        par.forRange(bld[0] * len, grainRows(d), (lo, hi) -> {
            for (int row = lo; row < hi; row++) {
                int o = row * d, p = (row / Math.max(1, len)) * d;
                for (int j = 0; j < d; j++) a[o + j] = a[o + j] * (1 + sc[p + j]) + sh[p + j];
            }
        });
    }

    @Override public Tensor gatedResidual(Tensor residual, Tensor gate, Tensor y) {
        requireFloating("gatedResidual", "residual", residual);
        int[] bld = requireBLD("gatedResidual", "residual", residual);
        requireShape("gatedResidual", "gate", gate, Shape.of(bld[0], bld[2]));
        requireShape("gatedResidual", "y", y, residual.shape());
        float[] r = floats(residual), g = floats(gate), v = floats(y);
        int len = bld[1], d = bld[2];
        par.forRange(bld[0] * len, grainRows(d), (lo, hi) -> {
            for (int row = lo; row < hi; row++) {
                int o = row * d, p = (row / Math.max(1, len)) * d;
                for (int j = 0; j < d; j++) r[o + j] = r[o + j] + g[p + j] * v[o + j];
            }
        });
        return result(r, residual.shape(), residual.dtype());
    }

    // ================================================================== convolution

    @Override public Tensor conv2d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding, int groups) {
        requireFloating("conv2d", "x", x);
        requireFloating("conv2d", "w", w);
        if (x.rank() != 4) throw new IllegalArgumentException("conv2d: x must have shape [N, C, H, W], got " + x.shape());
        int c = x.shape().dimInt(1);
        if (groups < 1 || c % groups != 0)
            throw new IllegalArgumentException("conv2d: groups (" + groups + ") must divide the " + c + " channels of x " + x.shape());
        if (w.rank() != 4 || w.dim(1) != c / groups || w.dim(0) % groups != 0)
            throw new IllegalArgumentException("conv2d: w must have shape [O, C/groups, kh, kw] = [O, " + (c / groups)
                    + ", kh, kw] with O divisible by groups=" + groups + " (x " + x.shape() + "), got " + w.shape());
        int[] s = spatial("conv2d", "stride", stride, 2, 1), p = spatial("conv2d", "padding", padding, 2, 0);
        Conv.Geometry g = new Conv.Geometry(x.shape().dimInt(0), c, 1, x.shape().dimInt(2), x.shape().dimInt(3),
                w.shape().dimInt(0), groups, 1, w.shape().dimInt(2), w.shape().dimInt(3), 1, s[0], s[1], 0, p[0], p[1]);
        return conv("conv2d", g, x, w, bias, Shape.of(g.n(), g.o(), g.oh(), g.ow()));
    }

    @Override public Tensor conv3d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding) {
        requireFloating("conv3d", "x", x);
        requireFloating("conv3d", "w", w);
        if (x.rank() != 5) throw new IllegalArgumentException("conv3d: x must have shape [N, C, T, H, W], got " + x.shape());
        int c = x.shape().dimInt(1);
        if (w.rank() != 5 || w.dim(1) != c)
            throw new IllegalArgumentException("conv3d: w must have shape [O, " + c + ", kt, kh, kw] (C from x "
                    + x.shape() + "), got " + w.shape());
        int[] s = spatial("conv3d", "stride", stride, 3, 1), p = spatial("conv3d", "padding", padding, 3, 0);
        Conv.Geometry g = new Conv.Geometry(x.shape().dimInt(0), c, x.shape().dimInt(2), x.shape().dimInt(3),
                x.shape().dimInt(4), w.shape().dimInt(0), 1, w.shape().dimInt(2), w.shape().dimInt(3),
                w.shape().dimInt(4), s[0], s[1], s[2], p[0], p[1], p[2]);
        return conv("conv3d", g, x, w, bias, Shape.of(g.n(), g.o(), g.ot(), g.oh(), g.ow()));
    }

    private Tensor conv(String op, Conv.Geometry g, Tensor x, Tensor w, Tensor bias, Shape outShape) {
        if (g.t() + 2 * g.pt() < g.kt() || g.h() + 2 * g.ph() < g.kh() || g.w() + 2 * g.pw() < g.kw())
            throw new IllegalArgumentException(op + ": kernel " + w.shape() + " is larger than the padded input x "
                    + x.shape());
        float[] b = optionalVector(op, "bias", bias, g.o());
        float[] out = new float[HostArrays.count(outShape, op + ": result")];
        Conv.run(g, floats(x), floats(w), b, out, par);
        return result(out, outShape, x.dtype());
    }

    // ================================================================== conversions

    private static final int CONVERT_CHUNK = 1 << 16;

    /** All elements of a host tensor as floats, decoded in parallel chunks when large. */
    private float[] floats(Tensor t) {
        float[] out = new float[HostArrays.count(t, "tensor")];
        MemorySegment seg = t.segment();
        int chunks = (out.length + CONVERT_CHUNK - 1) / CONVERT_CHUNK;
        par.forRange(chunks, 1, (lo, hi) -> {
            int from = lo * CONVERT_CHUNK, to = Math.min(out.length, hi * CONVERT_CHUNK);
            HostArrays.decode(seg, t.dtype(), from, out, from, to - from);
        });
        return out;
    }

    /** A new tensor of {@code dtype} holding {@code data}, encoded in parallel chunks when large. */
    private Tensor result(float[] data, Shape shape, DType dtype) {
        if (data.length != shape.numel())
            throw new IllegalStateException("internal: " + data.length + " values for shape " + shape);
        Tensor t = HostArrays.allocate(shape, dtype);
        MemorySegment seg = t.segment();
        int chunks = (data.length + CONVERT_CHUNK - 1) / CONVERT_CHUNK;
        par.forRange(chunks, 1, (lo, hi) -> {
            int from = lo * CONVERT_CHUNK, to = Math.min(data.length, hi * CONVERT_CHUNK);
            HostArrays.encode(data, from, to - from, seg, dtype, from);
        });
        return t;
    }

    // ================================================================== argument checks

    private static void requireHost(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " must not be null");
        if (!t.device().isCpu())
            throw new IllegalArgumentException(op + ": " + name + " " + t.shape() + " lives on " + t.device()
                    + "; the CPU backend needs host tensors (copy it with its backend's toHost)");
    }

    private static void requireFloating(String op, String name, Tensor t) {
        requireHost(op, name, t);
        if (!t.dtype().isFloating())
            throw new IllegalArgumentException(op + ": " + name + " must be a floating tensor (F32, BF16, F16, F8), got "
                    + t.dtype() + " " + t.shape());
    }

    private static void requireShape(String op, String name, Tensor t, Shape expected) {
        requireFloating(op, name, t);
        if (!t.shape().equals(expected))
            throw new IllegalArgumentException(op + ": " + name + " must have shape " + expected + ", got " + t.shape());
    }

    private static float[] optionalVector(String op, String name, Tensor t, int size) {
        if (t == null) return null;
        requireShape(op, name, t, Shape.of(size));
        return HostArrays.toFloats(t);
    }

    private static int lastDim(String op, Tensor x) {
        if (x.rank() < 1) throw new IllegalArgumentException(op + ": x must have rank >= 1, got a scalar " + x.shape());
        return x.shape().dimInt(-1);
    }

    private static int[] requireBLD(String op, String name, Tensor t) {
        if (t.rank() != 3) throw new IllegalArgumentException(op + ": " + name + " must have shape [B, L, D], got " + t.shape());
        return new int[] {t.shape().dimInt(0), t.shape().dimInt(1), t.shape().dimInt(2)};
    }

    private static int normDim(String op, Tensor x, int dim) {
        int r = x.rank();
        int d = dim < 0 ? dim + r : dim;
        if (d < 0 || d >= r)
            throw new IllegalArgumentException(op + ": dim " + dim + " is out of range for x " + x.shape());
        return d;
    }

    private static int[] spatial(String op, String name, int[] v, int n, int min) {
        if (v == null || (v.length != 1 && v.length != n))
            throw new IllegalArgumentException(op + ": " + name + " must have 1 or " + n + " entries, got "
                    + (v == null ? "null" : Arrays.toString(v)));
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = v.length == 1 ? v[0] : v[i];
            if (out[i] < min)
                throw new IllegalArgumentException(op + ": " + name + " entries must be >= " + min + ", got " + Arrays.toString(v));
        }
        return out;
    }

    /** numpy broadcasting of two shapes. */
    private static long[] broadcastDims(String op, String na, long[] a, String nb, long[] b) {
        int r = Math.max(a.length, b.length);
        long[] out = new long[r];
        for (int i = 0; i < r; i++) {
            long da = i < r - a.length ? 1 : a[i - (r - a.length)];
            long db = i < r - b.length ? 1 : b[i - (r - b.length)];
            if (da != db && da != 1 && db != 1)
                throw new IllegalArgumentException(op + ": shapes of " + na + " " + Arrays.toString(a) + " and " + nb + " "
                        + Arrays.toString(b) + " do not broadcast (dim " + i + ": " + da + " vs " + db + ")");
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    /** Strides of {@code in} (right-aligned) over the broadcast shape {@code out}; 0 where {@code in} repeats. */
    private static long[] broadcastStrides(long[] in, long[] out) {
        long[] st = Layout.strides(in), s = new long[out.length];
        int shift = out.length - in.length;
        for (int i = 0; i < in.length; i++) s[i + shift] = in[i] == 1 && out[i + shift] != 1 ? 0 : st[i];
        return s;
    }

    private static int grainRows(int rowLength) { return Math.max(1, ELEMENTWISE_GRAIN / Math.max(1, rowLength)); }
}
