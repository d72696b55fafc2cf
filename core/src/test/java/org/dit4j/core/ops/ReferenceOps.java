package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;

import java.util.Arrays;

/**
 * Naive, obviously-correct versions of every {@link Ops} method: plain loops in double over {@link DoubleTensor}s,
 * written straight from the formulas in the Ops Javadoc (and PyTorch's definitions). No blocking, no vectors, no
 * threads: this is what every backend is compared with.
 */
public final class ReferenceOps {
    private ReferenceOps() {}

    // ------------------------------------------------------------------ layout

    /** What PyTorch's {@code x.to(dtype)} gives for one float value, as a float (NaN stays NaN). */
    public static float castValue(float v, DType to) {
        return switch (to) {
            case F32 -> v;
            case BF16 -> DType.bf16ToFloat(DType.floatToBf16(v));
            case F16 -> DType.f16ToFloat(DType.floatToF16(v));
            case F8_E4M3 -> DType.e4m3ToFloat(DType.floatToE4M3(v));
            case F8_E5M2 -> DType.e5m2ToFloat(DType.floatToE5M2(v));
            default -> throw new IllegalArgumentException("castValue is for floating types, not " + to);
        };
    }

    public static DoubleTensor permute(DoubleTensor x, int... perm) {
        long[] dims = new long[perm.length];
        for (int i = 0; i < perm.length; i++) dims[i] = x.dim(perm[i]);
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] o = out.unravel(f), in = new int[o.length];
            for (int i = 0; i < o.length; i++) in[perm[i]] = o[i];
            out.data()[f] = x.get(in);
        }
        return out;
    }

    public static DoubleTensor slice(DoubleTensor x, int dim, int start, int end) {
        long[] dims = x.shape().dims();
        dims[dim] = end - start;
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] idx = out.unravel(f);
            idx[dim] += start;
            out.data()[f] = x.get(idx);
        }
        return out;
    }

    public static DoubleTensor concat(int dim, DoubleTensor... xs) {
        long[] dims = xs[0].shape().dims();
        dims[dim] = 0;
        for (DoubleTensor x : xs) dims[dim] += x.dim(dim);
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] idx = out.unravel(f);
            int k = 0;
            while (idx[dim] >= xs[k].dim(dim)) { idx[dim] -= xs[k].dim(dim); k++; }
            out.data()[f] = xs[k].get(idx);
        }
        return out;
    }

    /** torch.nn.functional.pad(x, pads, value): (before, after) pairs from the last dim; negative pads crop. */
    public static DoubleTensor pad(DoubleTensor x, long[] pads, double value) {
        int r = x.rank();
        long[] dims = x.shape().dims();
        int[] before = new int[r];
        for (int i = 0; i < pads.length / 2; i++) {
            int d = r - 1 - i;
            before[d] = (int) pads[2 * i];
            dims[d] += pads[2 * i] + pads[2 * i + 1];
        }
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] idx = out.unravel(f);
            boolean inside = true;
            for (int d = 0; d < r; d++) {
                idx[d] -= before[d];
                inside &= idx[d] >= 0 && idx[d] < x.dim(d);
            }
            out.data()[f] = inside ? x.get(idx) : value;
        }
        return out;
    }

    /** Nearest-neighbour upsampling of the last two dims. */
    public static DoubleTensor upsampleNearest2d(DoubleTensor x, int factor) {
        int r = x.rank();
        long[] dims = x.shape().dims();
        dims[r - 2] *= factor;
        dims[r - 1] *= factor;
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] idx = out.unravel(f);
            idx[r - 2] /= factor;
            idx[r - 1] /= factor;
            out.data()[f] = x.get(idx);
        }
        return out;
    }

    // ------------------------------------------------------------------ linear algebra

    /** y[..., n] = Σ_k x[..., k]·w[n, k] + bias[n]. */
    public static DoubleTensor linear(DoubleTensor x, DoubleTensor w, DoubleTensor bias) {
        int k = x.dim(x.rank() - 1), n = w.dim(0), m = x.numel() / Math.max(1, k);
        DoubleTensor out = new DoubleTensor(x.shape().with(-1, n), new double[m * n]);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = bias == null ? 0 : bias.data()[j];
                for (int p = 0; p < k; p++) s += x.data()[i * k + p] * w.data()[j * k + p];
                out.data()[i * n + j] = s;
            }
        return out;
    }

    /** torch.matmul for rank ≥ 2 operands with broadcast batch dims. */
    public static DoubleTensor matmul(DoubleTensor a, DoubleTensor b) {
        int ra = a.rank(), rb = b.rank();
        int m = a.dim(ra - 2), k = a.dim(ra - 1), n = b.dim(rb - 1);
        int rBatch = Math.max(ra, rb) - 2;
        long[] dims = new long[rBatch + 2];
        for (int i = 0; i < rBatch; i++) {
            int ia = i - (rBatch - (ra - 2)), ib = i - (rBatch - (rb - 2));
            long da = ia < 0 ? 1 : a.dim(ia), db = ib < 0 ? 1 : b.dim(ib);
            dims[i] = Math.max(da, db);
        }
        dims[rBatch] = m;
        dims[rBatch + 1] = n;
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int f = 0; f < out.numel(); f++) {
            int[] idx = out.unravel(f);
            int i = idx[rBatch], j = idx[rBatch + 1];
            double s = 0;
            for (int p = 0; p < k; p++) {
                int[] ia = idx.clone(), ib = idx.clone();
                ia[rBatch] = i; ia[rBatch + 1] = p;
                ib[rBatch] = p; ib[rBatch + 1] = j;
                s += a.broadcastGet(ia) * b.broadcastGet(ib);
            }
            out.data()[f] = s;
        }
        return out;
    }

    /**
     * out[b, i, h, :] = Σ_j softmax_j(scale·q[b,i,h,:]·k[b,j,h,:] + bias[b,h,i,j]) · v[b, j, h, :]; a row whose
     * logits are all −∞ gives 0.
     */
    public static DoubleTensor attention(DoubleTensor q, DoubleTensor k, DoubleTensor v, DoubleTensor bias, double scale) {
        int bsz = q.dim(0), lq = q.dim(1), heads = q.dim(2), d = q.dim(3), lk = k.dim(1), dv = v.dim(3);
        DoubleTensor out = DoubleTensor.zeros(bsz, lq, heads, dv);
        double[] logits = new double[lk];
        for (int b = 0; b < bsz; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < lq; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < lk; j++) {
                        double s = 0;
                        for (int c = 0; c < d; c++) s += q.get(b, i, h, c) * k.get(b, j, h, c);
                        s *= scale;
                        if (bias != null) s += bias.broadcastGet(new int[] {b, h, i, j});
                        logits[j] = s;
                        max = Math.max(max, s);
                    }
                    if (max == Double.NEGATIVE_INFINITY) continue;        // fully masked: zeros
                    double sum = 0;
                    for (int j = 0; j < lk; j++) { logits[j] = Math.exp(logits[j] - max); sum += logits[j]; }
                    for (int c = 0; c < dv; c++) {
                        double o = 0;
                        for (int j = 0; j < lk; j++) o += logits[j] / sum * v.get(b, j, h, c);
                        out.set(o, b, i, h, c);
                    }
                }
        return out;
    }

    /** Per-row log-sum-exp of the scaled, biased logits, [B, H, Lq] (−∞ for fully masked rows). */
    public static DoubleTensor attentionLse(DoubleTensor q, DoubleTensor k, DoubleTensor bias, double scale) {
        int bsz = q.dim(0), lq = q.dim(1), heads = q.dim(2), d = q.dim(3), lk = k.dim(1);
        DoubleTensor out = DoubleTensor.zeros(bsz, heads, lq);
        double[] logits = new double[lk];
        for (int b = 0; b < bsz; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < lq; i++) {
                    double max = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < lk; j++) {
                        double s = 0;
                        for (int c = 0; c < d; c++) s += q.get(b, i, h, c) * k.get(b, j, h, c);
                        s *= scale;
                        if (bias != null) s += bias.broadcastGet(new int[] {b, h, i, j});
                        logits[j] = s;
                        max = Math.max(max, s);
                    }
                    if (max == Double.NEGATIVE_INFINITY) { out.set(max, b, h, i); continue; }
                    double sum = 0;
                    for (int j = 0; j < lk; j++) sum += Math.exp(logits[j] - max);
                    out.set(max + Math.log(sum), b, h, i);
                }
        return out;
    }

    // ------------------------------------------------------------------ normalisation

    public static DoubleTensor layerNorm(DoubleTensor x, DoubleTensor w, DoubleTensor b, double eps) {
        int dim = x.dim(x.rank() - 1);
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int r = 0; r < x.numel() / dim; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < dim; j++) mean += x.data()[r * dim + j];
            mean /= dim;
            for (int j = 0; j < dim; j++) var += Math.pow(x.data()[r * dim + j] - mean, 2);
            var /= dim;
            for (int j = 0; j < dim; j++) {
                double y = (x.data()[r * dim + j] - mean) / Math.sqrt(var + eps);
                if (w != null) y *= w.data()[j];
                if (b != null) y += b.data()[j];
                out.data()[r * dim + j] = y;
            }
        }
        return out;
    }

    public static DoubleTensor rmsNorm(DoubleTensor x, DoubleTensor w, double eps) {
        int dim = x.dim(x.rank() - 1);
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int r = 0; r < x.numel() / dim; r++) {
            double ms = 0;
            for (int j = 0; j < dim; j++) ms += Math.pow(x.data()[r * dim + j], 2);
            ms /= dim;
            for (int j = 0; j < dim; j++)
                out.data()[r * dim + j] = x.data()[r * dim + j] / Math.sqrt(ms + eps) * (w == null ? 1 : w.data()[j]);
        }
        return out;
    }

    /** Statistics per (sample, group) over the group's channels and all positions; then per-channel affine. */
    public static DoubleTensor groupNorm(DoubleTensor x, int groups, DoubleTensor w, DoubleTensor b, double eps) {
        int n = x.dim(0), c = x.dim(1), spatial = x.numel() / (n * c), cg = c / groups;
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int s = 0; s < n; s++)
            for (int g = 0; g < groups; g++) {
                double mean = 0, var = 0;
                int count = cg * spatial;
                for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                    for (int p = 0; p < spatial; p++) mean += x.data()[(s * c + ch) * spatial + p];
                mean /= count;
                for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                    for (int p = 0; p < spatial; p++) var += Math.pow(x.data()[(s * c + ch) * spatial + p] - mean, 2);
                var /= count;
                for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                    for (int p = 0; p < spatial; p++) {
                        int i = (s * c + ch) * spatial + p;
                        double y = (x.data()[i] - mean) / Math.sqrt(var + eps);
                        out.data()[i] = y * (w == null ? 1 : w.data()[ch]) + (b == null ? 0 : b.data()[ch]);
                    }
            }
        return out;
    }

    /** Per (sample, group): [Σ(x − c), Σ(x − c)²] over the group's channels and positions; center null means 0. */
    public static DoubleTensor groupStats(DoubleTensor x, int groups, DoubleTensor center) {
        int n = x.dim(0), c = x.dim(1), spatial = x.numel() / (n * c), cg = c / groups;
        DoubleTensor out = DoubleTensor.zeros(n, groups, 2);
        for (int s = 0; s < n; s++)
            for (int g = 0; g < groups; g++) {
                double ctr = center == null ? 0 : center.get(s, g), sum = 0, sq = 0;
                for (int ch = g * cg; ch < (g + 1) * cg; ch++)
                    for (int p = 0; p < spatial; p++) {
                        double t = x.data()[(s * c + ch) * spatial + p] - ctr;
                        sum += t;
                        sq += t * t;
                    }
                out.set(sum, s, g, 0);
                out.set(sq, s, g, 1);
            }
        return out;
    }

    /** (x − mean[n, g]) / √(var[n, g] + eps) · w[c] + b[c]. */
    public static DoubleTensor groupNormWithStats(DoubleTensor x, int groups, DoubleTensor mean, DoubleTensor var, DoubleTensor w,
                                                  DoubleTensor b, double eps) {
        int n = x.dim(0), c = x.dim(1), spatial = x.numel() / (n * c), cg = c / groups;
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int s = 0; s < n; s++)
            for (int ch = 0; ch < c; ch++)
                for (int p = 0; p < spatial; p++) {
                    int i = (s * c + ch) * spatial + p, g = ch / cg;
                    double y = (x.data()[i] - mean.get(s, g)) / Math.sqrt(var.get(s, g) + eps);
                    out.data()[i] = y * (w == null ? 1 : w.data()[ch]) + (b == null ? 0 : b.data()[ch]);
                }
        return out;
    }

    // ------------------------------------------------------------------ position

    /** Adjacent-pair rotary embedding; cos/sin [L, d/2] or [B, L, d/2]. */
    public static DoubleTensor rope(DoubleTensor x, DoubleTensor cos, DoubleTensor sin) {
        int bsz = x.dim(0), len = x.dim(1), heads = x.dim(2), half = x.dim(3) / 2;
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int b = 0; b < bsz; b++)
            for (int l = 0; l < len; l++)
                for (int h = 0; h < heads; h++)
                    for (int i = 0; i < half; i++) {
                        double c = cos.rank() == 2 ? cos.get(l, i) : cos.get(b, l, i);
                        double s = sin.rank() == 2 ? sin.get(l, i) : sin.get(b, l, i);
                        double x0 = x.get(b, l, h, 2 * i), x1 = x.get(b, l, h, 2 * i + 1);
                        out.set(x0 * c - x1 * s, b, l, h, 2 * i);
                        out.set(x0 * s + x1 * c, b, l, h, 2 * i + 1);
                    }
        return out;
    }

    // ------------------------------------------------------------------ element-wise

    public interface DoubleOp2 { double apply(double a, double b); }

    /** Element-wise op with numpy broadcasting. */
    public static DoubleTensor broadcast(DoubleTensor a, DoubleTensor b, DoubleOp2 f) {
        int r = Math.max(a.rank(), b.rank());
        long[] dims = new long[r];
        for (int i = 0; i < r; i++) {
            int ia = i - (r - a.rank()), ib = i - (r - b.rank());
            dims[i] = Math.max(ia < 0 ? 1 : a.dim(ia), ib < 0 ? 1 : b.dim(ib));
        }
        DoubleTensor out = DoubleTensor.zeros(dims);
        for (int fl = 0; fl < out.numel(); fl++) {
            int[] idx = out.unravel(fl);
            out.data()[fl] = f.apply(a.broadcastGet(idx), b.broadcastGet(idx));
        }
        return out;
    }

    public static DoubleTensor add(DoubleTensor a, DoubleTensor b) { return broadcast(a, b, Double::sum); }

    public static DoubleTensor sub(DoubleTensor a, DoubleTensor b) { return broadcast(a, b, (x, y) -> x - y); }

    public static DoubleTensor mul(DoubleTensor a, DoubleTensor b) { return broadcast(a, b, (x, y) -> x * y); }

    public static DoubleTensor map(DoubleTensor x, java.util.function.DoubleUnaryOperator f) {
        return new DoubleTensor(x.shape(), Arrays.stream(x.data()).map(f).toArray());
    }

    public static DoubleTensor scale(DoubleTensor x, double s) { return map(x, v -> v * s); }

    public static DoubleTensor silu(DoubleTensor x) { return map(x, v -> v / (1 + Math.exp(-v))); }

    public static DoubleTensor gelu(DoubleTensor x, boolean tanh) {
        if (tanh) return map(x, v -> 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))));
        return map(x, v -> 0.5 * v * (1 + erf(v / Math.sqrt(2))));
    }

    public static DoubleTensor softmax(DoubleTensor x) {
        int dim = x.dim(x.rank() - 1);
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int r = 0; r < x.numel() / dim; r++) {
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int j = 0; j < dim; j++) max = Math.max(max, x.data()[r * dim + j]);
            for (int j = 0; j < dim; j++) sum += Math.exp(x.data()[r * dim + j] - max);
            for (int j = 0; j < dim; j++) out.data()[r * dim + j] = Math.exp(x.data()[r * dim + j] - max) / sum;
        }
        return out;
    }

    /** x·(1+scale)+shift with shift, scale [B, D] over x [B, L, D]. */
    public static DoubleTensor modulate(DoubleTensor x, DoubleTensor shift, DoubleTensor scale) {
        DoubleTensor out = new DoubleTensor(x.shape(), new double[x.numel()]);
        for (int f = 0; f < x.numel(); f++) {
            int[] i = x.unravel(f);
            out.data()[f] = x.data()[f] * (1 + scale.get(i[0], i[2])) + shift.get(i[0], i[2]);
        }
        return out;
    }

    /** residual + gate·y with gate [B, D] over [B, L, D]. */
    public static DoubleTensor gatedResidual(DoubleTensor residual, DoubleTensor gate, DoubleTensor y) {
        DoubleTensor out = new DoubleTensor(residual.shape(), new double[residual.numel()]);
        for (int f = 0; f < residual.numel(); f++) {
            int[] i = residual.unravel(f);
            out.data()[f] = residual.data()[f] + gate.get(i[0], i[2]) * y.data()[f];
        }
        return out;
    }

    /**
     * erf by its Maclaurin series 2/√π Σ (−1)ⁿ x^(2n+1)/(n!(2n+1)): in double for |x| < 3 (the largest term is
     * below 1e4, so cancellation costs at most 4 of 16 digits), in 50-digit decimal arithmetic up to |x| = 6 (terms
     * reach 1e14), and erf(x) = sign(x) beyond, where 1 − erf < 3e-17. Slow, but plainly the definition.
     */
    public static double erf(double x) {
        if (Double.isNaN(x)) return x;
        if (Math.abs(x) > 6) return Math.signum(x);
        if (Math.abs(x) < 3) {
            double sum = 0, term = x;
            for (int n = 0; n < 200; n++) {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
                term *= -x * x / (n + 1);
            }
            return 2 / Math.sqrt(Math.PI) * sum;
        }
        java.math.MathContext mc = new java.math.MathContext(50);
        java.math.BigDecimal bx = new java.math.BigDecimal(x), x2 = bx.multiply(bx, mc).negate();
        java.math.BigDecimal term = bx, sum = java.math.BigDecimal.ZERO;
        java.math.BigDecimal eps = new java.math.BigDecimal("1e-30");
        for (int n = 0; n < 1000; n++) {
            java.math.BigDecimal add = term.divide(java.math.BigDecimal.valueOf(2L * n + 1), mc);
            sum = sum.add(add, mc);
            if (add.abs().compareTo(eps) < 0) break;
            term = term.multiply(x2, mc).divide(java.math.BigDecimal.valueOf(n + 1), mc);
        }
        return 2 / Math.sqrt(Math.PI) * sum.doubleValue();
    }

    // ------------------------------------------------------------------ convolution

    /** torch.nn.functional.conv2d(x, w, bias, stride, padding, groups=groups). */
    public static DoubleTensor conv2d(DoubleTensor x, DoubleTensor w, DoubleTensor bias, int[] stride, int[] padding, int groups) {
        int n = x.dim(0), c = x.dim(1), h = x.dim(2), wd = x.dim(3);
        int o = w.dim(0), cg = c / groups, og = o / groups, kh = w.dim(2), kw = w.dim(3);
        int oh = (h + 2 * padding[0] - kh) / stride[0] + 1, ow = (wd + 2 * padding[1] - kw) / stride[1] + 1;
        DoubleTensor out = DoubleTensor.zeros(n, o, oh, ow);
        for (int s = 0; s < n; s++)
            for (int oc = 0; oc < o; oc++)
                for (int y = 0; y < oh; y++)
                    for (int xx = 0; xx < ow; xx++) {
                        double acc = bias == null ? 0 : bias.data()[oc];
                        int g = oc / og;
                        for (int ic = 0; ic < cg; ic++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int iy = y * stride[0] - padding[0] + i, ix = xx * stride[1] - padding[1] + j;
                                    if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                    acc += x.get(s, g * cg + ic, iy, ix) * w.get(oc, ic, i, j);
                                }
                        out.set(acc, s, oc, y, xx);
                    }
        return out;
    }

    /** torch.nn.functional.conv3d(x, w, bias, stride, padding). */
    public static DoubleTensor conv3d(DoubleTensor x, DoubleTensor w, DoubleTensor bias, int[] stride, int[] padding) {
        int n = x.dim(0), c = x.dim(1), t = x.dim(2), h = x.dim(3), wd = x.dim(4);
        int o = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
        int ot = (t + 2 * padding[0] - kt) / stride[0] + 1;
        int oh = (h + 2 * padding[1] - kh) / stride[1] + 1;
        int ow = (wd + 2 * padding[2] - kw) / stride[2] + 1;
        DoubleTensor out = DoubleTensor.zeros(n, o, ot, oh, ow);
        for (int s = 0; s < n; s++)
            for (int oc = 0; oc < o; oc++)
                for (int z = 0; z < ot; z++)
                    for (int y = 0; y < oh; y++)
                        for (int xx = 0; xx < ow; xx++) {
                            double acc = bias == null ? 0 : bias.data()[oc];
                            for (int ic = 0; ic < c; ic++)
                                for (int a = 0; a < kt; a++)
                                    for (int i = 0; i < kh; i++)
                                        for (int j = 0; j < kw; j++) {
                                            int iz = z * stride[0] - padding[0] + a;
                                            int iy = y * stride[1] - padding[1] + i;
                                            int ix = xx * stride[2] - padding[2] + j;
                                            if (iz < 0 || iz >= t || iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                                            acc += x.get(s, ic, iz, iy, ix) * w.get(oc, ic, a, i, j);
                                        }
                            out.set(acc, s, oc, z, y, xx);
                        }
        return out;
    }
}
