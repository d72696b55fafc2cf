// im2col for convolution as a GEMM. The column matrix is row-major [C*kt*kh*kw, P] where P counts the output
// positions of one chunk of output rows; zero padding. x points at the first channel of one image (and group).

// 2-D: col[(c*kh + i)*kw + j][(oy - y0)*Wo + ox] = x[c][oy*sh - ph + i][ox*sw - pw + j], oy in [y0, y0 + rows).
template <typename T>
__device__ __forceinline__ void im2col2d_impl(T* col, const T* x, i64 C, i64 H, i64 W, int kh, int kw, int sh, int sw,
                                              int ph, int pw, i64 Wo, i64 y0, i64 rows) {
    i64 P = rows * Wo;
    i64 n = C * kh * kw * P;
    GRID_LOOP(idx, n) {
        i64 p = idx % P, k = idx / P;
        int j = (int)(k % kw);
        i64 t = k / kw;
        int i = (int)(t % kh);
        i64 c = t / kh;
        i64 oy = y0 + p / Wo, ox = p % Wo;
        i64 iy = oy * sh - ph + i, ix = ox * sw - pw + j;
        col[idx] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? x[(c * H + iy) * W + ix] : (T)0;
    }
}

extern "C" __global__ void im2col2d_2(u16* col, const u16* x, i64 C, i64 H, i64 W, int kh, int kw, int sh, int sw,
                                      int ph, int pw, i64 Wo, i64 y0, i64 rows) {
    im2col2d_impl(col, x, C, H, W, kh, kw, sh, sw, ph, pw, Wo, y0, rows);
}
extern "C" __global__ void im2col2d_4(u32* col, const u32* x, i64 C, i64 H, i64 W, int kh, int kw, int sh, int sw,
                                      int ph, int pw, i64 Wo, i64 y0, i64 rows) {
    im2col2d_impl(col, x, C, H, W, kh, kw, sh, sw, ph, pw, Wo, y0, rows);
}

// 3-D: output positions are (ot, oy, ox) flattened; one chunk covers flat output positions [q0, q0 + P).
// g = {C, T, H, W, kt, kh, kw, st, sh, sw, pt, ph, pw, To, Ho, Wo}
struct Conv3 { i64 C, T, H, W, kt, kh, kw, st, sh, sw, pt, ph, pw, To, Ho, Wo; };

template <typename T>
__device__ __forceinline__ void im2col3d_impl(T* col, const T* x, Conv3 g, i64 q0, i64 P) {
    i64 n = g.C * g.kt * g.kh * g.kw * P;
    GRID_LOOP(idx, n) {
        i64 p = idx % P, k = idx / P;
        i64 j = k % g.kw; k /= g.kw;
        i64 i = k % g.kh; k /= g.kh;
        i64 u = k % g.kt;
        i64 c = k / g.kt;
        i64 q = q0 + p;
        i64 ox = q % g.Wo, oy = (q / g.Wo) % g.Ho, ot = q / (g.Wo * g.Ho);
        i64 it = ot * g.st - g.pt + u, iy = oy * g.sh - g.ph + i, ix = ox * g.sw - g.pw + j;
        bool ok = it >= 0 && it < g.T && iy >= 0 && iy < g.H && ix >= 0 && ix < g.W;
        col[idx] = ok ? x[((c * g.T + it) * g.H + iy) * g.W + ix] : (T)0;
    }
}

extern "C" __global__ void im2col3d_2(u16* col, const u16* x, Conv3 g, i64 q0, i64 P) { im2col3d_impl(col, x, g, q0, P); }
extern "C" __global__ void im2col3d_4(u32* col, const u32* x, Conv3 g, i64 q0, i64 P) { im2col3d_impl(col, x, g, q0, P); }
