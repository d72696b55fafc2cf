// Group normalisation over many blocks, for x [N, C, S] of one activation type, 16-byte aligned, S a whole number of
// vectors (so no vector straddles two channels). Group ng = n*G + g covers Lv = (C/G)*S/VN contiguous vectors.
// Two launches: partial statistics, then normalise (+ affine, + optional SiLU). Statistics in f64 about a shift
// (the group's first element), so the one-pass variance does not cancel; the result matches the two-pass reference
// kernel (group_norm in norm.cu) to f64 rounding before the f32 normalisation.

// Grid (P, N*G): block (p, ng) sums its share of group ng -> part[(ng*P + p)*2 + {0, 1}] = {Σ(x - shift), Σ(x - shift)²}.
template <int DT>
__device__ __forceinline__ void gn_stats_impl(double* part, const void* x, i64 Lv) {
    constexpr int VN = Vec<DT>::N;
    __shared__ double sh[32];
    const i64 ng = blockIdx.y;
    const int P = gridDim.x;
    const i64 base = ng * Lv;
    float first[VN];
    vld<DT>(x, base, first);
    const double shift = first[0];
    const i64 per = (Lv + P - 1) / P;
    const i64 lo = (i64)blockIdx.x * per;
    const i64 hi = lo + per < Lv ? lo + per : Lv;
    double s = 0.0, ss = 0.0;
    for (i64 j = lo + threadIdx.x; j < hi; j += blockDim.x) {
        float f[VN];
        vld<DT>(x, base + j, f);
#pragma unroll
        for (int i = 0; i < VN; i++) {
            double d = (double)f[i] - shift;
            s += d;
            ss += d * d;
        }
    }
    s = block_sum_d(s, sh);
    ss = block_sum_d(ss, sh);
    if (threadIdx.x == 0) {
        part[(ng * P + blockIdx.x) * 2] = s;
        part[(ng * P + blockIdx.x) * 2 + 1] = ss;
    }
}

// Grid (Q, N*G): block (q, ng) reduces the P partials of group ng, then writes its share of the group:
// y = (x - mean) * rstd [* w[c]] [+ b[c]], rounded to the activation type; with silu != 0 then y = y / (1 + e^-y)
// on the rounded value (what groupNorm followed by silu stores). w, b: [C] of type dtw / dtb, or null.
template <int DT>
__device__ __forceinline__ void gn_apply_impl(void* out, const void* x, const double* part, int P, i64 Lv, i64 S, i64 cpg,
                                              int G, float eps, const void* w, int dtw, const void* b, int dtb, int silu) {
    constexpr int VN = Vec<DT>::N;
    __shared__ double sh[32];
    const i64 ng = blockIdx.y;
    const i64 g = ng % G;
    const i64 base = ng * Lv;
    double s = 0.0, ss = 0.0;
    for (int p = threadIdx.x; p < P; p += blockDim.x) {
        s += part[(ng * P + p) * 2];
        ss += part[(ng * P + p) * 2 + 1];
    }
    s = block_sum_d(s, sh);
    ss = block_sum_d(ss, sh);
    float first[VN];
    vld<DT>(x, base, first);
    const double len = (double)Lv * VN;
    const double ms = s / len;
    double var = ss / len - ms * ms;
    if (var < 0.0) var = 0.0;
    const float meanf = (float)((double)first[0] + ms);
    const float rstd = (float)(1.0 / sqrt(var + (double)eps));
    const int Q = gridDim.x;
    const i64 per = (Lv + Q - 1) / Q;
    const i64 lo = (i64)blockIdx.x * per;
    const i64 hi = lo + per < Lv ? lo + per : Lv;
    const i64 Sv = S / VN;
    for (i64 j = lo + threadIdx.x; j < hi; j += blockDim.x) {
        float f[VN];
        vld<DT>(x, base + j, f);
        const i64 c = g * cpg + j / Sv;
        const float wc = w != 0 ? ldf(w, c, dtw) : 1.f;
        const float bc = b != 0 ? ldf(b, c, dtb) : 0.f;
#pragma unroll
        for (int i = 0; i < VN; i++) {
            float y = (f[i] - meanf) * rstd;
            if (w != 0) y *= wc;
            if (b != 0) y += bc;
            if (silu) {
                y = ldf_round(y, DT);
                y = y / (1.f + expf(-y));
            }
            f[i] = y;
        }
        vst<DT>(out, base + j, f);
    }
}

#define GN_ENTRY(sfx, DT)                                                                                               \
    extern "C" __global__ void gn_stats_##sfx(double* part, const void* x, i64 Lv) { gn_stats_impl<DT>(part, x, Lv); } \
    extern "C" __global__ void gn_apply_##sfx(void* out, const void* x, const double* part, int P, i64 Lv, i64 S,     \
                                              i64 cpg, int G, float eps, const void* w, int dtw, const void* b, int dtb, \
                                              int silu) {                                                               \
        gn_apply_impl<DT>(out, x, part, P, Lv, S, cpg, G, eps, w, dtw, b, dtb, silu);                                  \
    }
FOR_ACT_TYPES(GN_ENTRY)
