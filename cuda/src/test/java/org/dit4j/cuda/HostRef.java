package org.dit4j.cuda;

import java.util.Random;

/** Naive double-precision references on flat row-major arrays, for checking the CUDA backend. */
final class HostRef {
    private HostRef() {}

    static float[] randn(long seed, int n) {
        Random r = new Random(seed);
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    /** ‖a − ref‖ / ‖ref‖; NaN anywhere gives +inf. */
    static double relL2(float[] a, float[] ref) {
        if (a.length != ref.length) throw new IllegalArgumentException("length " + a.length + " vs " + ref.length);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            if (Float.isNaN(a[i]) || Float.isNaN(ref[i])) return Double.POSITIVE_INFINITY;
            double d = (double) a[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    /** y[m, n] = x[m, k]·w[n, k]ᵀ + b[n]. */
    static float[] linear(float[] x, float[] w, float[] b, int m, int k, int n) {
        float[] y = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = b == null ? 0 : b[j];
                for (int t = 0; t < k; t++) s += (double) x[i * k + t] * w[j * k + t];
                y[i * n + j] = (float) s;
            }
        return y;
    }

    static double gelu(double x, boolean tanh) {
        if (tanh) return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
        return 0.5 * x * (1 + erf(x / Math.sqrt(2)));
    }

    /** erf to ~1e-15 (series for small |x|, continued fraction for large). */
    static double erf(double x) {
        double ax = Math.abs(x);
        double r;
        if (ax < 2.5) {
            double sum = 0, term = ax;
            for (int n = 0; n < 100; n++) {
                double add = term / (2 * n + 1);
                sum += add;
                if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
                term *= -ax * ax / (n + 1);
            }
            r = 2 / Math.sqrt(Math.PI) * sum;
        } else {
            // erfc continued fraction (Lentz)
            double tiny = 1e-300, f = ax, c = ax, d = 0;
            for (int n = 1; n < 200; n++) {
                double an = n / 2.0;
                d = ax + an * d;
                d = d == 0 ? tiny : d;
                c = ax + an / c;
                c = c == 0 ? tiny : c;
                d = 1 / d;
                double delta = c * d;
                f *= delta;
                if (Math.abs(delta - 1) < 1e-16) break;
            }
            r = 1 - Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }

    /** Attention on [B, L, H, d] arrays; bias [B, H, Lq, Lk] (full) or null. */
    static float[] attention(float[] q, float[] k, float[] v, float[] bias, int b, int lq, int lk, int h, int d, int dv, double scale) {
        float[] out = new float[b * lq * h * dv];
        double[] s = new double[lk];
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                for (int i = 0; i < lq; i++) {
                    double mx = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j < lk; j++) {
                        double acc = 0;
                        for (int t = 0; t < d; t++)
                            acc += (double) q[((bi * lq + i) * h + hi) * d + t] * k[((bi * lk + j) * h + hi) * d + t];
                        acc *= scale;
                        if (bias != null) acc += bias[((bi * h + hi) * lq + i) * lk + j];
                        s[j] = acc;
                        mx = Math.max(mx, acc);
                    }
                    double sum = 0;
                    for (int j = 0; j < lk; j++) { s[j] = mx == Double.NEGATIVE_INFINITY ? 0 : Math.exp(s[j] - mx); sum += s[j]; }
                    for (int t = 0; t < dv; t++) {
                        double acc = 0;
                        for (int j = 0; j < lk; j++) acc += s[j] * v[((bi * lk + j) * h + hi) * dv + t];
                        out[((bi * lq + i) * h + hi) * dv + t] = sum == 0 ? 0 : (float) (acc / sum);
                    }
                }
        return out;
    }

    static float[] layerNorm(float[] x, int rows, int d, float[] w, float[] b, double eps) {
        float[] y = new float[x.length];
        for (int r = 0; r < rows; r++) {
            double mean = 0, var = 0;
            for (int j = 0; j < d; j++) mean += x[r * d + j];
            mean /= d;
            for (int j = 0; j < d; j++) { double t = x[r * d + j] - mean; var += t * t; }
            var /= d;
            double rstd = 1 / Math.sqrt(var + eps);
            for (int j = 0; j < d; j++) {
                double v = (x[r * d + j] - mean) * rstd;
                if (w != null) v *= w[j];
                if (b != null) v += b[j];
                y[r * d + j] = (float) v;
            }
        }
        return y;
    }

    static float[] rmsNorm(float[] x, int rows, int d, float[] w, double eps) {
        float[] y = new float[x.length];
        for (int r = 0; r < rows; r++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += (double) x[r * d + j] * x[r * d + j];
            double inv = 1 / Math.sqrt(ss / d + eps);
            for (int j = 0; j < d; j++) y[r * d + j] = (float) (x[r * d + j] * inv * (w == null ? 1 : w[j]));
        }
        return y;
    }

    /** out = x·(1+scale)+shift; x [B, L, D], shift/scale [B, D]. */
    static float[] modulate(float[] x, float[] shift, float[] scale, int b, int l, int d) {
        float[] y = new float[x.length];
        for (int bi = 0; bi < b; bi++)
            for (int i = 0; i < l; i++)
                for (int j = 0; j < d; j++) {
                    int idx = (bi * l + i) * d + j;
                    y[idx] = (float) (x[idx] * (1.0 + scale[bi * d + j]) + shift[bi * d + j]);
                }
        return y;
    }

    /** RoPE on x [B, L, H, d]; cos/sin [L, d/2] (batchStride 0) or [B, L, d/2] (batchStride L). */
    static float[] rope(float[] x, float[] cos, float[] sin, int b, int l, int h, int d, boolean perBatch) {
        float[] y = new float[x.length];
        for (int bi = 0; bi < b; bi++)
            for (int li = 0; li < l; li++)
                for (int hi = 0; hi < h; hi++)
                    for (int i = 0; i < d / 2; i++) {
                        int base = ((bi * l + li) * h + hi) * d;
                        int ci = ((perBatch ? bi * l : 0) + li) * (d / 2) + i;
                        double x0 = x[base + 2 * i], x1 = x[base + 2 * i + 1];
                        y[base + 2 * i] = (float) (x0 * cos[ci] - x1 * sin[ci]);
                        y[base + 2 * i + 1] = (float) (x0 * sin[ci] + x1 * cos[ci]);
                    }
        return y;
    }

    static float[] groupNorm(float[] x, int n, int c, int s, int groups, float[] w, float[] b, double eps) {
        float[] y = new float[x.length];
        int cpg = c / groups;
        for (int ni = 0; ni < n; ni++)
            for (int g = 0; g < groups; g++) {
                int base = (ni * c + g * cpg) * s, len = cpg * s;
                double mean = 0, var = 0;
                for (int j = 0; j < len; j++) mean += x[base + j];
                mean /= len;
                for (int j = 0; j < len; j++) { double t = x[base + j] - mean; var += t * t; }
                var /= len;
                double rstd = 1 / Math.sqrt(var + eps);
                for (int j = 0; j < len; j++) {
                    int ch = g * cpg + j / s;
                    double v = (x[base + j] - mean) * rstd;
                    if (w != null) v *= w[ch];
                    if (b != null) v += b[ch];
                    y[base + j] = (float) v;
                }
            }
        return y;
    }

    static float[] softmax(float[] x, int rows, int d) {
        float[] y = new float[x.length];
        for (int r = 0; r < rows; r++) {
            double m = Double.NEGATIVE_INFINITY, s = 0;
            for (int j = 0; j < d; j++) m = Math.max(m, x[r * d + j]);
            for (int j = 0; j < d; j++) s += Math.exp(x[r * d + j] - m);
            for (int j = 0; j < d; j++) y[r * d + j] = (float) (Math.exp(x[r * d + j] - m) / s);
        }
        return y;
    }

    /** torch conv2d: x [N, C, H, W], w [O, C/g, kh, kw]. */
    static float[] conv2d(float[] x, float[] w, float[] bias, int n, int c, int hh, int ww, int o, int kh, int kw,
                          int sh, int sw, int ph, int pw, int groups) {
        int ho = (hh + 2 * ph - kh) / sh + 1, wo = (ww + 2 * pw - kw) / sw + 1;
        int cg = c / groups, og = o / groups;
        float[] y = new float[n * o * ho * wo];
        for (int ni = 0; ni < n; ni++)
            for (int oc = 0; oc < o; oc++) {
                int g = oc / og;
                for (int oy = 0; oy < ho; oy++)
                    for (int ox = 0; ox < wo; ox++) {
                        double s = bias == null ? 0 : bias[oc];
                        for (int ci = 0; ci < cg; ci++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int iy = oy * sh - ph + i, ix = ox * sw - pw + j;
                                    if (iy < 0 || iy >= hh || ix < 0 || ix >= ww) continue;
                                    s += (double) x[((ni * c + g * cg + ci) * hh + iy) * ww + ix] * w[((oc * cg + ci) * kh + i) * kw + j];
                                }
                        y[((ni * o + oc) * ho + oy) * wo + ox] = (float) s;
                    }
            }
        return y;
    }

    /** torch conv3d, stride/padding per (t, h, w). */
    static float[] conv3d(float[] x, float[] w, float[] bias, int n, int c, int tt, int hh, int ww, int o, int kt, int kh,
                          int kw, int[] st, int[] pd) {
        int to = (tt + 2 * pd[0] - kt) / st[0] + 1, ho = (hh + 2 * pd[1] - kh) / st[1] + 1, wo = (ww + 2 * pd[2] - kw) / st[2] + 1;
        float[] y = new float[n * o * to * ho * wo];
        for (int ni = 0; ni < n; ni++)
            for (int oc = 0; oc < o; oc++)
                for (int ot = 0; ot < to; ot++)
                    for (int oy = 0; oy < ho; oy++)
                        for (int ox = 0; ox < wo; ox++) {
                            double s = bias == null ? 0 : bias[oc];
                            for (int ci = 0; ci < c; ci++)
                                for (int u = 0; u < kt; u++)
                                    for (int i = 0; i < kh; i++)
                                        for (int j = 0; j < kw; j++) {
                                            int it = ot * st[0] - pd[0] + u, iy = oy * st[1] - pd[1] + i, ix = ox * st[2] - pd[2] + j;
                                            if (it < 0 || it >= tt || iy < 0 || iy >= hh || ix < 0 || ix >= ww) continue;
                                            s += (double) x[(((ni * c + ci) * tt + it) * hh + iy) * ww + ix]
                                                    * w[(((oc * c + ci) * kt + u) * kh + i) * kw + j];
                                        }
                            y[(((ni * o + oc) * to + ot) * ho + oy) * wo + ox] = (float) s;
                        }
        return y;
    }
}
