// Shared helpers for all dit4j kernels (prepended to every kernel source before NVRTC compiles it).
// No headers: NVRTC compiles this without the CUDA runtime headers. Conversions use PTX cvt with
// round-to-nearest-even; fp8 follows PyTorch (e4m3fn: overflow and inf -> NaN; e5m2: overflow -> inf).
//
// Element-type codes (the ordinal of org.dit4j.core.tensor.DType):
//   0 F32, 1 BF16, 2 F16, 3 F8_E4M3, 4 F8_E5M2, 5 I32, 6 I64, 7 BOOL
#define DT_F32 0
#define DT_BF16 1
#define DT_F16 2
#define DT_E4M3 3
#define DT_E5M2 4
#define DT_I32 5
#define DT_I64 6
#define DT_BOOL 7
#define MAXR 8

typedef unsigned short u16;
typedef unsigned char u8;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;

#define F_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float bf16_to_f(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f_to_bf16(float f) { u16 r; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(f)); return r; }
__device__ __forceinline__ float f16_to_f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ u16 f_to_f16(float f) { u16 r; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(f)); return r; }

__device__ __forceinline__ float e4m3_to_f(u8 b) {
    u32 sign = b >> 7, ex = (b >> 3) & 0xF, man = b & 7;
    if (ex == 0xF && man == 7) return __int_as_float(0x7fc00000);
    float r = ex == 0 ? (float)man * 0.001953125f /* 2^-9 */ : __uint_as_float(((ex - 7 + 127) << 23) | (man << 20));
    return sign ? -r : r;
}

__device__ __forceinline__ float e5m2_to_f(u8 b) { return f16_to_f((u16)(((u32)b) << 8)); }

// Round-to-nearest-even float -> small float with expBits/manBits/bias. hasInf selects e5m2 (inf) vs e4m3fn (NaN).
__device__ __forceinline__ u8 f_to_fp8(float f, int expBits, int manBits, int bias, bool hasInf) {
    u32 bits = __float_as_uint(f);
    u32 sign = (bits >> 31) << 7;
    if (f != f) return (u8)(sign | 0x7F);
    float a = fabsf(f);
    int maxCode = hasInf ? ((((1 << expBits) - 2) << manBits) | ((1 << manBits) - 1))
                         : ((((1 << expBits) - 1) << manBits) | ((1 << manBits) - 2));
    int infCode = hasInf ? (((1 << expBits) - 1) << manBits) : 0x7F;
    if (a == F_INF) return (u8)(sign | infCode);
    int minNormalExp = 1 - bias;
    int e = a == 0.f ? -127 : ((int)((__float_as_uint(a) >> 23) & 0xFF)) - 127;   // floor(log2 a), normals
    int q = (e > minNormalExp ? e : minNormalExp) - manBits;
    float units = ldexpf(a, -q);
    float r = rintf(units);
    int m = (int)r;
    int expField, manField;
    if (e < minNormalExp) {
        if (m >= (1 << manBits)) { expField = 1; manField = m - (1 << manBits); }
        else { expField = 0; manField = m; }
    } else {
        int ee = e;
        if (m >= (2 << manBits)) { m >>= 1; ee++; }
        expField = ee + bias;
        manField = m - (1 << manBits);
    }
    int code = (expField << manBits) | manField;
    bool overflow = hasInf ? expField >= (1 << expBits) - 1 : code > maxCode;
    if (overflow) return (u8)(sign | infCode);
    return (u8)(sign | code);
}

// Load element i of a tensor of type dt as float.
__device__ __forceinline__ float ldf(const void* p, i64 i, int dt) {
    switch (dt) {
        case DT_F32: return ((const float*)p)[i];
        case DT_BF16: return bf16_to_f(((const u16*)p)[i]);
        case DT_F16: return f16_to_f(((const u16*)p)[i]);
        case DT_E4M3: return e4m3_to_f(((const u8*)p)[i]);
        case DT_E5M2: return e5m2_to_f(((const u8*)p)[i]);
        case DT_I32: return (float)((const int*)p)[i];
        case DT_I64: return (float)((const i64*)p)[i];
        default: return ((const u8*)p)[i] ? 1.f : 0.f;
    }
}

// Store v as element i of a tensor of type dt (PyTorch cast rules; float -> int truncates toward zero).
__device__ __forceinline__ void stf(void* p, i64 i, int dt, float v) {
    switch (dt) {
        case DT_F32: ((float*)p)[i] = v; break;
        case DT_BF16: ((u16*)p)[i] = f_to_bf16(v); break;
        case DT_F16: ((u16*)p)[i] = f_to_f16(v); break;
        case DT_E4M3: ((u8*)p)[i] = f_to_fp8(v, 4, 3, 7, false); break;
        case DT_E5M2: ((u8*)p)[i] = f_to_fp8(v, 5, 2, 15, true); break;
        case DT_I32: ((int*)p)[i] = (int)v; break;
        case DT_I64: ((i64*)p)[i] = (i64)v; break;
        default: ((u8*)p)[i] = v != 0.f ? 1 : 0; break;
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// sh must hold 32 floats; the call contains __syncthreads and must be reached by all threads.
__device__ __forceinline__ float block_sum(float v, float* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : 0.f;
    return warp_sum(r);
}

__device__ __forceinline__ float block_max(float v, float* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    float r = lane < nw ? sh[lane] : -F_INF;
    return warp_max(r);
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double block_sum_d(double v, double* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    double r = lane < nw ? sh[lane] : 0.0;
    return warp_sum_d(r);
}

// Grid-stride loop over [0, n) with a 64-bit index.
#define GRID_LOOP(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

// v rounded to the precision of type dt (what storing and reloading would give).
__device__ __forceinline__ float ldf_round(float v, int dt) {
    switch (dt) {
        case DT_BF16: return bf16_to_f(f_to_bf16(v));
        case DT_F16: return f16_to_f(f_to_f16(v));
        default: return v;
    }
}

// ---- 16-byte vectors of one activation type (DT_F32: 4 floats, DT_BF16/DT_F16: 8 halves), unpacked to f32.
struct __attribute__((aligned(16))) U4 { u32 x, y, z, w; };

template <int DT> struct Vec { static constexpr int N = DT == DT_F32 ? 4 : 8; };

template <int DT> __device__ __forceinline__ float h2f(u32 h) { return DT == DT_BF16 ? bf16_to_f((u16)h) : f16_to_f((u16)h); }
template <int DT> __device__ __forceinline__ u32 f2h(float f) { return DT == DT_BF16 ? f_to_bf16(f) : f_to_f16(f); }

template <int DT> __device__ __forceinline__ void unpack(U4 u, float* f) {
    if (DT == DT_F32) {
        f[0] = __uint_as_float(u.x); f[1] = __uint_as_float(u.y); f[2] = __uint_as_float(u.z); f[3] = __uint_as_float(u.w);
    } else {
        u32 w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
        for (int i = 0; i < 4; i++) { f[2 * i] = h2f<DT>(w[i] & 0xffff); f[2 * i + 1] = h2f<DT>(w[i] >> 16); }
    }
}

template <int DT> __device__ __forceinline__ U4 pack(const float* f) {
    U4 u;
    if (DT == DT_F32) {
        u.x = __float_as_uint(f[0]); u.y = __float_as_uint(f[1]); u.z = __float_as_uint(f[2]); u.w = __float_as_uint(f[3]);
    } else {
        u.x = f2h<DT>(f[0]) | (f2h<DT>(f[1]) << 16);
        u.y = f2h<DT>(f[2]) | (f2h<DT>(f[3]) << 16);
        u.z = f2h<DT>(f[4]) | (f2h<DT>(f[5]) << 16);
        u.w = f2h<DT>(f[6]) | (f2h<DT>(f[7]) << 16);
    }
    return u;
}

template <int DT> __device__ __forceinline__ void vld(const void* p, i64 vi, float* f) { unpack<DT>(((const U4*)p)[vi], f); }
template <int DT> __device__ __forceinline__ void vst(void* p, i64 vi, const float* f) { ((U4*)p)[vi] = pack<DT>(f); }

// The N values of activation vector vi from a side vector (weight, bias, shift, scale, gate) that is either of the
// activation type (SF false) or F32 next to a narrower activation type (SF true: N/4 float4 loads).
template <int DT, bool SF> __device__ __forceinline__ void sld(const void* p, i64 vi, float* f) {
    if (!SF || DT == DT_F32) {
        vld<DT>(p, vi, f);
    } else {
        constexpr int N = Vec<DT>::N;
#pragma unroll
        for (int q = 0; q < N / 4; q++) unpack<DT_F32>(((const U4*)p)[vi * (N / 4) + q], f + 4 * q);
    }
}

// extern "C" entry points for the three activation types of a templated kernel body
#define FOR_ACT_TYPES(M) M(f32, DT_F32) M(bf16, DT_BF16) M(f16, DT_F16)
