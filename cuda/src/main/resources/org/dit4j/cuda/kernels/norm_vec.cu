// Vectorised normalisations for the common case: x, out, and the optional w/b/shift/scale all of one activation
// type, 16-byte aligned, rows a whole number of vectors. The row stays in registers: one read, one write.

#define LN_MAXV 4

// LayerNorm (+ affine, + adaLN modulation) of rows of Dv vectors; one block per row; Dv <= blockDim.x * LN_MAXV.
// shift/scale: [B, D] with B = rows / L (null = none); w, b: [D] (null = none).
template <int DT, bool SF = false>
__device__ __forceinline__ void layer_norm_vec_impl(void* out, const void* x, i64 Dv, float eps, const void* w, const void* b,
                                                    const void* shift, const void* scale, i64 L) {
    constexpr int N = Vec<DT>::N;
    __shared__ float sh[32];
    const i64 row = blockIdx.x;
    const i64 base = row * Dv;
    const float D = (float)(Dv * N);
    float xs[LN_MAXV][N];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        i64 j = threadIdx.x + (i64)k * blockDim.x;
        if (j < Dv) {
            vld<DT>(x, base + j, xs[k]);
#pragma unroll
            for (int i = 0; i < N; i++) s += xs[k][i];
        }
    }
    const float mean = block_sum(s, sh) / D;
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        i64 j = threadIdx.x + (i64)k * blockDim.x;
        if (j < Dv) {
#pragma unroll
            for (int i = 0; i < N; i++) { float d = xs[k][i] - mean; v += d * d; }
        }
    }
    const float rstd = rsqrtf(block_sum(v, sh) / D + eps);
    const i64 mb = shift != 0 ? (row / L) * Dv : 0;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        i64 j = threadIdx.x + (i64)k * blockDim.x;
        if (j < Dv) {
            float y[N], t[N];
#pragma unroll
            for (int i = 0; i < N; i++) y[i] = (xs[k][i] - mean) * rstd;
            if (w != 0) { sld<DT, SF>(w, j, t); for (int i = 0; i < N; i++) y[i] *= t[i]; }
            if (b != 0) { sld<DT, SF>(b, j, t); for (int i = 0; i < N; i++) y[i] += t[i]; }
            if (shift != 0) {
                float sc[N];
                sld<DT, SF>(scale, mb + j, sc);
                sld<DT, SF>(shift, mb + j, t);
#pragma unroll
                for (int i = 0; i < N; i++) y[i] = y[i] * (1.f + sc[i]) + t[i];
            }
            vst<DT>(out, base + j, y);
        }
    }
}

// LayerNorm (+ affine, + adaLN modulation) with one warp per row: each lane keeps vpl <= LNW_MAXV 16-byte vectors of
// the row in registers (Dv = 32 * vpl); warp-shuffle reductions only, so a block of 8 warps normalises 8 rows with no
// block-wide barrier. Same arguments and numerics (two passes over the registers, f32) as layer_norm_vec.
#define LNW_MAXV 16

template <int DT, bool SF = false>
__device__ __forceinline__ void layer_norm_warp_impl(void* out, const void* x, i64 rows, int vpl, float eps, const void* w,
                                                     const void* b, const void* shift, const void* scale, i64 L) {
    constexpr int N = Vec<DT>::N;
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const i64 Dv = 32 * (i64)vpl;
    const i64 base = row * Dv;
    const float D = (float)(Dv * N);
    U4 raw[LNW_MAXV];
#pragma unroll
    for (int k = 0; k < LNW_MAXV; k++)
        if (k < vpl) raw[k] = ((const U4*)x)[base + lane + 32 * k];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LNW_MAXV; k++) {
        if (k < vpl) {
            float f[N];
            unpack<DT>(raw[k], f);
#pragma unroll
            for (int i = 0; i < N; i++) s += f[i];
        }
    }
    const float mean = warp_sum(s) / D;
    float v = 0.f;
#pragma unroll
    for (int k = 0; k < LNW_MAXV; k++) {
        if (k < vpl) {
            float f[N];
            unpack<DT>(raw[k], f);
#pragma unroll
            for (int i = 0; i < N; i++) { float d = f[i] - mean; v += d * d; }
        }
    }
    const float rstd = rsqrtf(warp_sum(v) / D + eps);
    const i64 mb = shift != 0 ? (row / L) * Dv : 0;
#pragma unroll
    for (int k = 0; k < LNW_MAXV; k++) {
        if (k < vpl) {
            const i64 j = lane + 32 * k;
            float y[N], t[N];
            unpack<DT>(raw[k], y);
#pragma unroll
            for (int i = 0; i < N; i++) y[i] = (y[i] - mean) * rstd;
            if (w != 0) { sld<DT, SF>(w, j, t); for (int i = 0; i < N; i++) y[i] *= t[i]; }
            if (b != 0) { sld<DT, SF>(b, j, t); for (int i = 0; i < N; i++) y[i] += t[i]; }
            if (shift != 0) {
                float sc[N];
                sld<DT, SF>(scale, mb + j, sc);
                sld<DT, SF>(shift, mb + j, t);
#pragma unroll
                for (int i = 0; i < N; i++) y[i] = y[i] * (1.f + sc[i]) + t[i];
            }
            vst<DT>(out, base + j, y);
        }
    }
}

// RMSNorm of rows of Dv 16-byte vectors (D = Dv * N values, one block per row, each thread keeping up to LN_MAXV
// vectors in registers; Dv <= blockDim.x * LN_MAXV), weight w [D] of the activation type or null, optionally followed
// by RoPE (adjacent pairs) per head of hd values (hd a multiple of N) for x viewed as [B, L, H, hd]: pair p of head
// position i takes cos/sin[(b * cosBatch + l) * hd/2 + p], row = b * L + l. Wan's q/k norm spans all heads of a token.
// The normalised value is rounded to the activation type before RoPE, as the unfused rmsNorm + rope path stores it.
template <int DT>
__device__ __forceinline__ void rms_row_vec_impl(void* out, const void* x, i64 Dv, float eps, const void* w,
                                                 const float* cos, const float* sin, i64 hd, i64 L, i64 cosBatch) {
    constexpr int N = Vec<DT>::N;
    __shared__ float sh[32];
    const i64 row = blockIdx.x;
    const i64 base = row * Dv;
    float xs[LN_MAXV][N];
    float s = 0.f;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        i64 j = threadIdx.x + (i64)k * blockDim.x;
        if (j < Dv) {
            vld<DT>(x, base + j, xs[k]);
#pragma unroll
            for (int i = 0; i < N; i++) s += xs[k][i] * xs[k][i];
        }
    }
    const float r = rsqrtf(block_sum(s, sh) / (float)(Dv * N) + eps);
    const i64 cbase = cos != 0 ? ((row / L) * cosBatch + row % L) * (hd / 2) : 0;
#pragma unroll
    for (int k = 0; k < LN_MAXV; k++) {
        i64 j = threadIdx.x + (i64)k * blockDim.x;
        if (j < Dv) {
            float y[N], t[N];
#pragma unroll
            for (int i = 0; i < N; i++) y[i] = xs[k][i] * r;
            if (w != 0) { vld<DT>(w, j, t); for (int i = 0; i < N; i++) y[i] *= t[i]; }
            if (cos != 0) {
                const i64 c0 = cbase + ((j * N) % hd) / 2;
#pragma unroll
                for (int p = 0; p < N / 2; p++) {
                    float x0 = ldf_round(y[2 * p], DT), x1 = ldf_round(y[2 * p + 1], DT);
                    float c = cos[c0 + p], sn = sin[c0 + p];
                    y[2 * p] = x0 * c - x1 * sn;
                    y[2 * p + 1] = x0 * sn + x1 * c;
                }
            }
            vst<DT>(out, base + j, y);
        }
    }
}

// RMSNorm over head vectors of E*32 elements (one warp per row, E consecutive elements per lane), optionally
// followed by RoPE (adjacent pairs) for x viewed as [B, L, H, d]: cos/sin index (b*cosBatch + l) * d/2 + i.
// The normalised value is rounded to the activation type before RoPE, as the unfused path stores it.
template <int DT, int E>
__device__ __forceinline__ void rms_rope_warp_impl(void* out, const void* x, i64 rows, float eps, const void* w,
                                                   const float* cos, const float* sin, i64 L, i64 H, i64 cosBatch) {
    const int lane = threadIdx.x & 31;
    const i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    constexpr int D = E * 32;
    const i64 base = row * D + lane * E;
    float a[E];
#pragma unroll
    for (int i = 0; i < E; i++) a[i] = DT == DT_F32 ? ((const float*)x)[base + i] : h2f<DT>(((const u16*)x)[base + i]);
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < E; i++) ss += a[i] * a[i];
    const float r = rsqrtf(warp_sum(ss) / (float)D + eps);
#pragma unroll
    for (int i = 0; i < E; i++) {
        a[i] *= r;
        if (w != 0) a[i] *= DT == DT_F32 ? ((const float*)w)[lane * E + i] : h2f<DT>(((const u16*)w)[lane * E + i]);
    }
    if (cos != 0) {
        const i64 l = (row / H) % L, bb = row / (H * L);
        const i64 cbase = (bb * cosBatch + l) * (D / 2) + lane * (E / 2);
#pragma unroll
        for (int p = 0; p < E / 2; p++) {
            float x0 = ldf_round(a[2 * p], DT), x1 = ldf_round(a[2 * p + 1], DT);
            float c = cos[cbase + p], s = sin[cbase + p];
            a[2 * p] = x0 * c - x1 * s;
            a[2 * p + 1] = x0 * s + x1 * c;
        }
    }
#pragma unroll
    for (int i = 0; i < E; i++) {
        if (DT == DT_F32) ((float*)out)[base + i] = a[i];
        else ((u16*)out)[base + i] = (u16)f2h<DT>(a[i]);
    }
}

#define NORM_VEC(t, DT)                                                                                                 \
    extern "C" __global__ void layer_norm_warp_##t(void* out, const void* x, i64 rows, int vpl, float eps, const void* w, \
                                                   const void* b, const void* shift, const void* scale, i64 L) {       \
        layer_norm_warp_impl<DT>(out, x, rows, vpl, eps, w, b, shift, scale, L);                                        \
    }                                                                                                                   \
    extern "C" __global__ void layer_norm_vec_##t(void* out, const void* x, i64 Dv, float eps, const void* w,          \
                                                  const void* b, const void* shift, const void* scale, i64 L) {        \
        layer_norm_vec_impl<DT>(out, x, Dv, eps, w, b, shift, scale, L);                                                \
    }                                                                                                                   \
    extern "C" __global__ void layer_norm_warp_sf_##t(void* out, const void* x, i64 rows, int vpl, float eps,           \
                                                      const void* w, const void* b, const void* shift,                  \
                                                      const void* scale, i64 L) {                                       \
        layer_norm_warp_impl<DT, true>(out, x, rows, vpl, eps, w, b, shift, scale, L);                                  \
    }                                                                                                                   \
    extern "C" __global__ void layer_norm_vec_sf_##t(void* out, const void* x, i64 Dv, float eps, const void* w,       \
                                                     const void* b, const void* shift, const void* scale, i64 L) {      \
        layer_norm_vec_impl<DT, true>(out, x, Dv, eps, w, b, shift, scale, L);                                          \
    }                                                                                                                   \
    extern "C" __global__ void rms_row_vec_##t(void* out, const void* x, i64 Dv, float eps, const void* w,             \
                                               const float* cos, const float* sin, i64 hd, i64 L, i64 cb) {             \
        rms_row_vec_impl<DT>(out, x, Dv, eps, w, cos, sin, hd, L, cb);                                                  \
    }                                                                                                                   \
    extern "C" __global__ void rms_rope_warp2_##t(void* out, const void* x, i64 rows, float eps, const void* w,         \
                                                  const float* cos, const float* sin, i64 L, i64 H, i64 cb) {          \
        rms_rope_warp_impl<DT, 2>(out, x, rows, eps, w, cos, sin, L, H, cb);                                            \
    }                                                                                                                   \
    extern "C" __global__ void rms_rope_warp4_##t(void* out, const void* x, i64 rows, float eps, const void* w,         \
                                                  const float* cos, const float* sin, i64 L, i64 H, i64 cb) {          \
        rms_rope_warp_impl<DT, 4>(out, x, rows, eps, w, cos, sin, L, H, cb);                                            \
    }                                                                                                                   \
    extern "C" __global__ void rms_rope_warp8_##t(void* out, const void* x, i64 rows, float eps, const void* w,         \
                                                  const float* cos, const float* sin, i64 L, i64 H, i64 cb) {          \
        rms_rope_warp_impl<DT, 8>(out, x, rows, eps, w, cos, sin, L, H, cb);                                            \
    }
FOR_ACT_TYPES(NORM_VEC)
