// Split of a fused q/k/v projection with per-head RMSNorm and RoPE on q and k, in one pass (Ops.qkvNormRopeInto).
// Every tensor has one activation type and is 16-byte aligned; a head vector of d elements is G = d / N lanes of one
// 16-byte vector each (G a power of two, at most 32), so G consecutive lanes own one head vector.
//
// qkv: [B, L, 3, H, d] (one row of 3·H·d per token); q, k, v: [B, Lt, H, d], rows offset .. offset + L written.
// cos, sin: f32 [L, d/2] (cosBatch = 0) or [B, L, d/2] (cosBatch = L). qw, kw: [d] or null.
// Numerics as the unfused path: y = x·rsqrt(mean(x²) + eps)·w in f32, rounded to the activation type, then rotated.

template <int DT>
__device__ __forceinline__ void qkv_norm_rope_impl(void* q, void* k, void* v, const void* qkv, i64 rows, i64 L, int H,
                                                   int G, float eps, const void* qw, const void* kw, const float* cos,
                                                   const float* sin, i64 cosBatch, i64 Lt, i64 offset) {
    constexpr int N = Vec<DT>::N;
    const i64 t = (i64)blockIdx.x * blockDim.x + threadIdx.x;
    const i64 hv = t / G;                        // head vector over [B, L, 3, H]; the same for a whole lane group
    if (hv >= rows * 3 * H) return;              // whole groups leave together
    const int j = (int)(t - hv * G);             // this lane's vector within the head vector
    const int head = (int)(hv % H);
    const int part = (int)((hv / H) % 3);
    const i64 row = hv / (3 * H);                // b·L + l
    const i64 bb = row / L, l = row - bb * L;
    const i64 dst = ((bb * Lt + offset + l) * H + head) * G + j;
    float a[N];
    vld<DT>(qkv, hv * G + j, a);
    if (part == 2) {
        vst<DT>(v, dst, a);
        return;
    }
    const int lane = threadIdx.x & 31;
    const unsigned mask = G == 32 ? 0xffffffffu : (((1u << G) - 1u) << (lane & ~(G - 1)));
    float ss = 0.f;
#pragma unroll
    for (int i = 0; i < N; i++) ss += a[i] * a[i];
    for (int o = G >> 1; o > 0; o >>= 1) ss += __shfl_xor_sync(mask, ss, o);
    const float r = rsqrtf(ss / (float)(G * N) + eps);
    const void* w = part == 0 ? qw : kw;
    float wv[N];
    if (w != 0) vld<DT>(w, j, wv);
#pragma unroll
    for (int i = 0; i < N; i++) {
        a[i] *= r;
        if (w != 0) a[i] *= wv[i];
    }
    const i64 half = (i64)G * N / 2;
    const i64 cbase = (bb * cosBatch + l) * half + (i64)j * (N / 2);
#pragma unroll
    for (int p = 0; p < N / 2; p++) {
        const float x0 = ldf_round(a[2 * p], DT), x1 = ldf_round(a[2 * p + 1], DT);
        const float c = cos[cbase + p], s = sin[cbase + p];
        a[2 * p] = x0 * c - x1 * s;
        a[2 * p + 1] = x0 * s + x1 * c;
    }
    vst<DT>(part == 0 ? q : k, dst, a);
}

#define QKV_VEC(t, DT)                                                                                                  \
    extern "C" __global__ void qkv_norm_rope_##t(void* q, void* k, void* v, const void* qkv, i64 rows, i64 L, int H,     \
                                                 int G, float eps, const void* qw, const void* kw, const float* cos,    \
                                                 const float* sin, i64 cosBatch, i64 Lt, i64 offset) {                  \
        qkv_norm_rope_impl<DT>(q, k, v, qkv, rows, L, H, G, eps, qw, kw, cos, sin, cosBatch, Lt, offset);               \
    }
FOR_ACT_TYPES(QKV_VEC)
