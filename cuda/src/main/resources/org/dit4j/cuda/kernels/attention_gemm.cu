// Softmax for attention computed as two GEMMs: s [rows, L] f32 raw scores q·k -> p [rows, L] in the activation type
// (bf16/f16), p = exp(s·scale − max) / Σ exp(s·scale − max) per row. One block per row; the row is read three times
// (max, sum, write), from L2 after the first pass for the row lengths the VAE uses. L4 = L / 4 when L % 4 == 0 and s
// rows are 16-byte aligned (float4 loads), else 0 (scalar loads).
struct __attribute__((aligned(16))) SF4 { float x, y, z, w; };
struct __attribute__((aligned(8))) SU2 { u32 lo, hi; };

template <int DT>
__device__ __forceinline__ void softmax_scores_impl(void* p, const float* s, i64 L, float scale, int vec4) {
    __shared__ float sh[32];
    const i64 row = blockIdx.x;
    const float* sr = s + row * L;
    float m = -F_INF;
    if (vec4) {
        const SF4* s4 = (const SF4*)sr;
        for (i64 j = threadIdx.x; j < L / 4; j += blockDim.x) {
            SF4 v = s4[j];
            m = fmaxf(m, fmaxf(fmaxf(v.x, v.y), fmaxf(v.z, v.w)) * scale);
        }
    } else {
        for (i64 j = threadIdx.x; j < L; j += blockDim.x) m = fmaxf(m, sr[j] * scale);
    }
    m = block_max(m, sh);
    float sum = 0.f;
    if (vec4) {
        const SF4* s4 = (const SF4*)sr;
        for (i64 j = threadIdx.x; j < L / 4; j += blockDim.x) {
            SF4 v = s4[j];
            sum += expf(v.x * scale - m) + expf(v.y * scale - m) + expf(v.z * scale - m) + expf(v.w * scale - m);
        }
    } else {
        for (i64 j = threadIdx.x; j < L; j += blockDim.x) sum += expf(sr[j] * scale - m);
    }
    sum = block_sum(sum, sh);
    const float inv = 1.f / sum;
    u16* pr = (u16*)p + row * L;
    if (vec4) {
        const SF4* s4 = (const SF4*)sr;
        for (i64 j = threadIdx.x; j < L / 4; j += blockDim.x) {
            SF4 v = s4[j];
            u32 lo = f2h<DT>(expf(v.x * scale - m) * inv) | (f2h<DT>(expf(v.y * scale - m) * inv) << 16);
            u32 hi = f2h<DT>(expf(v.z * scale - m) * inv) | (f2h<DT>(expf(v.w * scale - m) * inv) << 16);
            SU2 o; o.lo = lo; o.hi = hi;
            ((SU2*)pr)[j] = o;
        }
    } else {
        for (i64 j = threadIdx.x; j < L; j += blockDim.x) pr[j] = (u16)f2h<DT>(expf(sr[j] * scale - m) * inv);
    }
}

extern "C" __global__ void softmax_scores_bf16(void* p, const float* s, i64 L, float scale, int vec4) {
    softmax_scores_impl<DT_BF16>(p, s, L, scale, vec4);
}
extern "C" __global__ void softmax_scores_f16(void* p, const float* s, i64 L, float scale, int vec4) {
    softmax_scores_impl<DT_F16>(p, s, L, scale, vec4);
}
