// Data-movement kernels: they copy elements by byte size and never convert.

// out[i] = in[sum_d coord_d(i) * stride[d]]: permute (strides permuted) and expand (stride 0 on broadcast dims).
// g = {n, rank, outDims[8], inStrides[8]} in elements.
struct Gather { i64 n; i64 rank; i64 dims[MAXR]; i64 st[MAXR]; };

template <typename T>
__device__ __forceinline__ void gather_impl(T* out, const T* in, const Gather& g) {
    GRID_LOOP(i, g.n) {
        i64 r = i, off = 0;
        for (int d = (int)g.rank - 1; d >= 0; d--) {
            i64 c = r % g.dims[d];
            r /= g.dims[d];
            off += c * g.st[d];
        }
        out[i] = in[off];
    }
}

extern "C" __global__ void gather_1(u8* out, const u8* in, Gather g) { gather_impl(out, in, g); }
extern "C" __global__ void gather_2(u16* out, const u16* in, Gather g) { gather_impl(out, in, g); }
extern "C" __global__ void gather_4(u32* out, const u32* in, Gather g) { gather_impl(out, in, g); }
extern "C" __global__ void gather_8(u64* out, const u64* in, Gather g) { gather_impl(out, in, g); }

// rows x rowUnits units of type T: dst[r * dstPitch + j] = src[r * srcPitch + j] (pitches in units).
template <typename T>
__device__ __forceinline__ void copy_rows_impl(T* dst, i64 dstPitch, const T* src, i64 srcPitch, i64 rowUnits, i64 rows) {
    i64 n = rowUnits * rows;
    GRID_LOOP(i, n) {
        i64 r = i / rowUnits, j = i - r * rowUnits;
        dst[r * dstPitch + j] = src[r * srcPitch + j];
    }
}

struct V16 { u64 a, b; };

extern "C" __global__ void copy_rows_1(u8* d, i64 dp, const u8* s, i64 sp, i64 ru, i64 rows) { copy_rows_impl(d, dp, s, sp, ru, rows); }
extern "C" __global__ void copy_rows_2(u16* d, i64 dp, const u16* s, i64 sp, i64 ru, i64 rows) { copy_rows_impl(d, dp, s, sp, ru, rows); }
extern "C" __global__ void copy_rows_4(u32* d, i64 dp, const u32* s, i64 sp, i64 ru, i64 rows) { copy_rows_impl(d, dp, s, sp, ru, rows); }
extern "C" __global__ void copy_rows_8(u64* d, i64 dp, const u64* s, i64 sp, i64 ru, i64 rows) { copy_rows_impl(d, dp, s, sp, ru, rows); }
extern "C" __global__ void copy_rows_16(V16* d, i64 dp, const V16* s, i64 sp, i64 ru, i64 rows) { copy_rows_impl(d, dp, s, sp, ru, rows); }

// Constant padding / cropping: out coordinate c_d reads in coordinate c_d - before[d]; outside the input -> value.
// p = {n, rank, outDims[8], inDims[8], before[8], inStrides[8]}.
struct Pad { i64 n; i64 rank; i64 odims[MAXR]; i64 idims[MAXR]; i64 before[MAXR]; i64 ist[MAXR]; };

template <typename T>
__device__ __forceinline__ void pad_impl(T* out, const T* in, T value, const Pad& p) {
    GRID_LOOP(i, p.n) {
        i64 r = i, off = 0;
        bool inside = true;
        for (int d = (int)p.rank - 1; d >= 0; d--) {
            i64 c = r % p.odims[d];
            r /= p.odims[d];
            i64 ci = c - p.before[d];
            if (ci < 0 || ci >= p.idims[d]) inside = false;
            off += ci * p.ist[d];
        }
        out[i] = inside ? in[off] : value;
    }
}

extern "C" __global__ void pad_1(u8* out, const u8* in, u64 v, Pad p) { pad_impl(out, in, (u8)v, p); }
extern "C" __global__ void pad_2(u16* out, const u16* in, u64 v, Pad p) { pad_impl(out, in, (u16)v, p); }
extern "C" __global__ void pad_4(u32* out, const u32* in, u64 v, Pad p) { pad_impl(out, in, (u32)v, p); }
extern "C" __global__ void pad_8(u64* out, const u64* in, u64 v, Pad p) { pad_impl(out, in, v, p); }

// Nearest-neighbour upsampling of the last two dims: in [P, H, W] -> out [P, H*f, W*f].
template <typename T>
__device__ __forceinline__ void upsample_impl(T* out, const T* in, i64 H, i64 W, int f, i64 n) {
    i64 Wo = W * f, Ho = H * f;
    GRID_LOOP(i, n) {
        i64 x = i % Wo, t = i / Wo;
        i64 y = t % Ho, pl = t / Ho;
        out[i] = in[(pl * H + y / f) * W + x / f];
    }
}

extern "C" __global__ void upsample_1(u8* o, const u8* in, i64 H, i64 W, int f, i64 n) { upsample_impl(o, in, H, W, f, n); }
extern "C" __global__ void upsample_2(u16* o, const u16* in, i64 H, i64 W, int f, i64 n) { upsample_impl(o, in, H, W, f, n); }
extern "C" __global__ void upsample_4(u32* o, const u32* in, i64 H, i64 W, int f, i64 n) { upsample_impl(o, in, H, W, f, n); }
extern "C" __global__ void upsample_8(u64* o, const u64* in, i64 H, i64 W, int f, i64 n) { upsample_impl(o, in, H, W, f, n); }
