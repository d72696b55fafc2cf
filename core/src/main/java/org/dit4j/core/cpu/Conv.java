package org.dit4j.core.cpu;

/**
 * Grouped 3-D convolution (2-D is the case T = kt = 1) as a GEMM per (batch, group):
 * out[n, g·Og + o, p] = Σ_k w[g·Og + o, k] · col[k, p], where col is the im2col matrix of the group's input
 * channels. The im2col matrix is never materialised: {@link Im2col} gathers it while the GEMM packs B.
 */
final class Conv {
    private Conv() {}

    /** Geometry of one convolution; spatial dims as (t, h, w). */
    record Geometry(int n, int c, int t, int h, int w, int o, int groups,
                    int kt, int kh, int kw, int st, int sh, int sw, int pt, int ph, int pw) {
        int ot() { return (t + 2 * pt - kt) / st + 1; }
        int oh() { return (h + 2 * ph - kh) / sh + 1; }
        int ow() { return (w + 2 * pw - kw) / sw + 1; }
        int cg() { return c / groups; }
        int og() { return o / groups; }
        int kernelSize() { return cg() * kt * kh * kw; }
        int outPositions() { return ot() * oh() * ow(); }
    }

    /** out [N, O, OT·OH·OW] = conv(x [N, C, T·H·W], w [O, C/groups·kt·kh·kw]) + bias. */
    static void run(Geometry g, float[] x, float[] w, float[] bias, float[] out, Parallel par) {
        int p = g.outPositions(), kk = g.kernelSize(), og = g.og(), cg = g.cg();
        boolean pointwise = g.kt() == 1 && g.kh() == 1 && g.kw() == 1 && g.st() == 1 && g.sh() == 1 && g.sw() == 1
                && g.pt() == 0 && g.ph() == 0 && g.pw() == 0;
        // zero-pad the input once, so gathering the im2col matrix needs no bounds checks
        int tp = g.t() + 2 * g.pt(), hp = g.h() + 2 * g.ph(), wp = g.w() + 2 * g.pw();
        float[] xp = pointwise || (g.pt() == 0 && g.ph() == 0 && g.pw() == 0) ? x : pad(g, x, par);
        int inVolume = tp * hp * wp;
        java.util.function.IntConsumer one = ng -> {
            int n = ng / g.groups(), grp = ng % g.groups();
            int xOff = (n * g.c() + grp * cg) * inVolume;
            Gemm.BSource col = pointwise ? Gemm.dense(xp, xOff, inVolume) : new Im2col(g, xp, xOff, tp, hp, wp);
            int cOff = (n * g.o() + grp * og) * p;
            Gemm.gemm(og, p, kk, w, grp * og * kk, kk, col, out, cOff, p, false, par);
            if (bias != null)
                for (int o = 0; o < og; o++) {
                    float bv = bias[grp * og + o];
                    int row = cOff + o * p;
                    for (int j = 0; j < p; j++) out[row + j] += bv;
                }
        };
        // many independent (batch, group) GEMMs: one task each; few: one after another, each GEMM parallel inside
        int tasks = g.n() * g.groups();
        if (tasks >= 2 * par.threads()) par.forEach(tasks, one);
        else for (int i = 0; i < tasks; i++) one.accept(i);
    }

    /** x [N·C, T, H, W] with pt/ph/pw zeros on both sides of each spatial dim. */
    private static float[] pad(Geometry g, float[] x, Parallel par) {
        int t = g.t(), h = g.h(), w = g.w(), tp = t + 2 * g.pt(), hp = h + 2 * g.ph(), wp = w + 2 * g.pw();
        float[] xp = new float[Math.multiplyExact(g.n() * g.c(), tp * hp * wp)];
        par.forRange(g.n() * g.c() * t, Math.max(1, 4096 / Math.max(1, h * w)), (lo, hi) -> {
            for (int r = lo; r < hi; r++) {
                int nc = r / t, z = r % t;
                for (int y = 0; y < h; y++)
                    System.arraycopy(x, ((nc * t + z) * h + y) * w, xp,
                            ((nc * tp + z + g.pt()) * hp + y + g.ph()) * wp + g.pw(), w);
            }
        });
        return xp;
    }

    /**
     * col[k, j] for k = ((c·kt + a)·kh + i)·kw + l and output position j = (ot·OH + oh)·OW + ow, gathered from the
     * (already padded) input of shape [C, tp, hp, wp].
     */
    private record Im2col(Geometry g, float[] x, int xOff, int tp, int hp, int wp) implements Gemm.BSource {
        @Override public void packSliver(int k0, int kc, int j0, int nr, float[] dst, int off) {
            final int NR = Gemm.NR;
            int oh = g.oh(), ow = g.ow(), plane = hp * wp, vol = tp * plane;
            int[] at = new int[nr];                  // input offset of each output position's window corner
            for (int jj = 0; jj < nr; jj++) {
                int j = j0 + jj;
                int x0 = j % ow, rest = j / ow;
                int y0 = rest % oh, z0 = rest / oh;
                at[jj] = xOff + (z0 * g.st()) * plane + (y0 * g.sh()) * wp + x0 * g.sw();
            }
            int kt = g.kt(), kh = g.kh(), kw = g.kw();
            for (int p = 0; p < kc; p++) {
                int k = k0 + p;
                int l = k % kw, r = k / kw;
                int i = r % kh; r /= kh;
                int a = r % kt, c = r / kt;
                int shift = c * vol + a * plane + i * wp + l;
                int d = off + p * NR;
                for (int jj = 0; jj < nr; jj++) dst[d + jj] = x[at[jj] + shift];
                for (int jj = nr; jj < NR; jj++) dst[d + jj] = 0f;
            }
        }
    }
}
