// Vectorised helpers around convolutions (16-byte vectors of one activation type).

// out[n, c, s] += bias[c] in place, out [N, O, S] with S a whole number of vectors (Sv = S / VN): one rounding, as the
// broadcast add. bias of type dtb.
template <int DT>
__device__ __forceinline__ void channel_bias_vec_impl(void* out, const void* bias, int dtb, i64 Sv, i64 O, i64 nv) {
    constexpr int VN = Vec<DT>::N;
    GRID_LOOP(i, nv) {
        const float b = ldf(bias, (i / Sv) % O, dtb);
        float f[VN];
        vld<DT>(out, i, f);
#pragma unroll
        for (int k = 0; k < VN; k++) f[k] += b;
        vst<DT>(out, i, f);
    }
}

#define CB_ENTRY(sfx, DT)                                                                                          \
    extern "C" __global__ void channel_bias_vec_##sfx(void* out, const void* bias, int dtb, i64 Sv, i64 O, i64 nv) { \
        channel_bias_vec_impl<DT>(out, bias, dtb, Sv, O, nv);                                                      \
    }
FOR_ACT_TYPES(CB_ENTRY)

// Nearest ×2 upsampling of 2-byte elements: x [..., H, W] -> out [..., 2H, 2W], W a multiple of 8 (Wv = W / 8).
// Each thread copies one input vector (8 elements of one row) into two output rows of two vectors each.
extern "C" __global__ void upsample2_vec_2(U4* out, const U4* x, i64 Wv, i64 nv) {
    GRID_LOOP(i, nv) {
        const U4 v = x[i];
        const i64 row = i / Wv, xv = i % Wv;
        U4 a, b;
        a.x = (v.x & 0xffffu) * 0x10001u; a.y = (v.x >> 16) * 0x10001u;
        a.z = (v.y & 0xffffu) * 0x10001u; a.w = (v.y >> 16) * 0x10001u;
        b.x = (v.z & 0xffffu) * 0x10001u; b.y = (v.z >> 16) * 0x10001u;
        b.z = (v.w & 0xffffu) * 0x10001u; b.w = (v.w >> 16) * 0x10001u;
        const i64 o = 2 * row * (2 * Wv) + 2 * xv;
        out[o] = a;
        out[o + 1] = b;
        out[o + 2 * Wv] = a;
        out[o + 2 * Wv + 1] = b;
    }
}
