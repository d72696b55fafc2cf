// Vectorised element-wise kernels for the common case: every tensor of one activation type (F32/BF16/F16),
// 16-byte aligned, sizes in whole vectors (N = 4 floats or 8 halves). Index arguments count vectors.

__device__ __forceinline__ float vbinop(float a, float b, int op) { return op == 0 ? a + b : (op == 1 ? a - b : a * b); }

// out[v] = a[v % na] op b[v % nb] over nv vectors (na, nb in vectors; they divide nv).
template <int DT>
__device__ __forceinline__ void binary_vec_impl(void* out, const void* a, i64 na, const void* b, i64 nb, i64 nv, int op) {
    constexpr int N = Vec<DT>::N;
    GRID_LOOP(v, nv) {
        float x[N], y[N];
        vld<DT>(a, na == nv ? v : v % na, x);
        vld<DT>(b, nb == nv ? v : v % nb, y);
#pragma unroll
        for (int i = 0; i < N; i++) x[i] = vbinop(x[i], y[i], op);
        vst<DT>(out, v, x);
    }
}

// out = res + gate * y; res, y: [B, L, D]; gate [B, D]; D in vectors as Dv.
template <int DT, bool SF = false>
__device__ __forceinline__ void gated_residual_vec_impl(void* out, const void* res, const void* gate, const void* y, i64 L,
                                                        i64 Dv, i64 nv) {
    constexpr int N = Vec<DT>::N;
    GRID_LOOP(v, nv) {
        i64 g = (v / (L * Dv)) * Dv + v % Dv;
        float r[N], gg[N], yy[N];
        vld<DT>(res, v, r);
        sld<DT, SF>(gate, g, gg);
        vld<DT>(y, v, yy);
#pragma unroll
        for (int i = 0; i < N; i++) r[i] += gg[i] * yy[i];
        vst<DT>(out, v, r);
    }
}

// out = x * (1 + scale) + shift; x: [B, L, D]; shift, scale: [B, D].
template <int DT, bool SF = false>
__device__ __forceinline__ void modulate_vec_impl(void* out, const void* x, const void* shift, const void* scale, i64 L,
                                                  i64 Dv, i64 nv) {
    constexpr int N = Vec<DT>::N;
    GRID_LOOP(v, nv) {
        i64 g = (v / (L * Dv)) * Dv + v % Dv;
        float a[N], sh[N], sc[N];
        vld<DT>(x, v, a);
        sld<DT, SF>(shift, g, sh);
        sld<DT, SF>(scale, g, sc);
#pragma unroll
        for (int i = 0; i < N; i++) a[i] = a[i] * (1.f + sc[i]) + sh[i];
        vst<DT>(out, v, a);
    }
}

__device__ __forceinline__ float vunop(float x, int op, float alpha) {
    switch (op) {
        case 0: return x * alpha;
        case 1: return x / (1.f + expf(-x));
        case 2: return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        case 3: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
        default: return x;
    }
}

template <int DT>
__device__ __forceinline__ void unary_vec_impl(void* out, const void* x, i64 nv, int op, float alpha) {
    constexpr int N = Vec<DT>::N;
    GRID_LOOP(v, nv) {
        float a[N];
        vld<DT>(x, v, a);
#pragma unroll
        for (int i = 0; i < N; i++) a[i] = vunop(a[i], op, alpha);
        vst<DT>(out, v, a);
    }
}

#define EW_VEC(t, DT)                                                                                                   \
    extern "C" __global__ void binary_vec_##t(void* out, const void* a, i64 na, const void* b, i64 nb, i64 nv, int op) { \
        binary_vec_impl<DT>(out, a, na, b, nb, nv, op);                                                                 \
    }                                                                                                                   \
    extern "C" __global__ void gated_residual_vec_##t(void* out, const void* res, const void* gate, const void* y,      \
                                                      i64 L, i64 Dv, i64 nv) {                                          \
        gated_residual_vec_impl<DT>(out, res, gate, y, L, Dv, nv);                                                      \
    }                                                                                                                   \
    extern "C" __global__ void modulate_vec_##t(void* out, const void* x, const void* shift, const void* scale, i64 L,  \
                                                i64 Dv, i64 nv) {                                                       \
        modulate_vec_impl<DT>(out, x, shift, scale, L, Dv, nv);                                                         \
    }                                                                                                                   \
    extern "C" __global__ void gated_residual_vec_sf_##t(void* out, const void* res, const void* gate, const void* y,   \
                                                         i64 L, i64 Dv, i64 nv) {                                       \
        gated_residual_vec_impl<DT, true>(out, res, gate, y, L, Dv, nv);                                                \
    }                                                                                                                   \
    extern "C" __global__ void modulate_vec_sf_##t(void* out, const void* x, const void* shift, const void* scale,       \
                                                   i64 L, i64 Dv, i64 nv) {                                             \
        modulate_vec_impl<DT, true>(out, x, shift, scale, L, Dv, nv);                                                   \
    }                                                                                                                   \
    extern "C" __global__ void unary_vec_##t(void* out, const void* x, i64 nv, int op, float alpha) {                  \
        unary_vec_impl<DT>(out, x, nv, op, alpha);                                                                      \
    }
FOR_ACT_TYPES(EW_VEC)
