// Flash attention (FA2-style) on tensor cores with mma.sync m16n8k16, bf16 or f16 in, f32 accumulate.
// Layout BSHD: q:[B,Lq,H,D] k,v:[B,Lk,H,D] out:[B,Lq,H,D], contiguous, D in {64, 128}; base pointers 16-byte
// aligned. Grid (ceil(Lq/(16*W)), H, B), 32*W threads (W = 4 or 8 warps): each warp owns 16 query rows; keys
// stream through shared memory 64 at a time, double-buffered with cp.async (tile j+1 loads while tile j is
// multiplied), with an online softmax in the log2 domain. Optional additive f32 bias with element
// (b,h,i,j) at b*sb + h*sh + i*sq + j*sk. Fully masked rows give 0. Optional f32 lse:[B,H,Lq] (null = none)
// receives each row's natural log-sum-exp of the scaled, biased logits (-inf for fully masked rows).
// Dynamic shared memory: (16*W + 4*64) * (D + 8) * 2 bytes.

struct BiasStrides { i64 sb, sh, sq, sk; };

#define FA_BR 64
#define FA_BC 64

__device__ __forceinline__ u32 smem_addr(const void* p) {
    u32 a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void cp_async16(void* smem, const void* g, int bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(smem_addr(smem)), "l"(g), "r"(bytes));
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.commit_group;\ncp.async.wait_group 0;" ::: "memory");
}

__device__ __forceinline__ void ldsm_x4(u32* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void ldsm_x4_t(u32* r, const void* p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

template <bool BF16>
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
    if (BF16) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// Two floats -> packed pair, lo in the low half (the lower column index).
template <bool BF16>
__device__ __forceinline__ u32 pack2(float lo, float hi) {
    u32 r;
    if (BF16) asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    else asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

template <int D, int NW, bool BF16>
__device__ __forceinline__ void flash_impl(u16* out, const u16* q, const u16* k, const u16* v, int H, int Lq, int Lk,
                                           float scale, const float* bias, BiasStrides bs, float* lse) {
    constexpr int BR = 16 * NW;         // query rows per block: 16 per warp
    constexpr int NT = 32 * NW;         // threads
    constexpr int LDS = D + 8;          // padded row (16 bytes) against ldmatrix bank conflicts
    constexpr int CH = D / 8;           // 16-byte chunks per row
    constexpr int TILE = FA_BC * LDS;   // elements of one K or V tile
    extern __shared__ __attribute__((aligned(16))) u16 smem[];
    u16* Qs = smem;
    u16* Ks = Qs + BR * LDS;            // two K tiles
    u16* Vs = Ks + 2 * TILE;            // two V tiles

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int q0 = blockIdx.x * BR;
    const i64 h = blockIdx.y, b = blockIdx.z;
    const i64 tok = (i64)H * D;         // elements between consecutive tokens
    const u16* qb = q + (b * Lq * H + h) * D;
    const u16* kb = k + (b * Lk * H + h) * D;
    const u16* vb = v + (b * Lk * H + h) * D;
    const float LOG2E = 1.4426950408889634f;
    const float sl2 = scale * LOG2E;
    const int ntiles = (Lk + FA_BC - 1) / FA_BC;

    // K/V tile kt -> buffer buf (rows past Lk are zero-filled, so P·V never meets garbage)
    auto load_kv = [&](int kt, int buf) {
        const int k0 = kt * FA_BC;
        for (int c = tid; c < FA_BC * CH; c += NT) {
            int r = c / CH, cc = c % CH;
            bool ok = k0 + r < Lk;
            i64 off = (i64)(k0 + r) * tok + cc * 8;
            cp_async16(Ks + buf * TILE + r * LDS + cc * 8, ok ? (const void*)(kb + off) : (const void*)k, ok ? 16 : 0);
            cp_async16(Vs + buf * TILE + r * LDS + cc * 8, ok ? (const void*)(vb + off) : (const void*)v, ok ? 16 : 0);
        }
    };

    for (int c = tid; c < BR * CH; c += NT) {
        int r = c / CH, cc = c % CH;
        bool ok = q0 + r < Lq;
        cp_async16(Qs + r * LDS + cc * 8, ok ? (const void*)(qb + (i64)(q0 + r) * tok + cc * 8) : (const void*)q, ok ? 16 : 0);
    }
    if (ntiles > 0) load_kv(0, 0);
    cp_async_wait_all();
    __syncthreads();

    u32 qf[D / 16][4];
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        ldsm_x4(qf[kk], Qs + (warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + kk * 16 + (lane >> 4) * 8);

    float o[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.f;
    float m0 = -F_INF, m1 = -F_INF, l0 = 0.f, l1 = 0.f;
    const int r0 = q0 + warp * 16 + (lane >> 2), r1 = r0 + 8;

    for (int kt = 0; kt < ntiles; kt++) {
        const int k0 = kt * FA_BC;
        const int cur = kt & 1;
        if (kt + 1 < ntiles) {
            load_kv(kt + 1, cur ^ 1);           // prefetch: overlaps this tile's MMAs
            asm volatile("cp.async.commit_group;" ::: "memory");
        }
        const u16* Kc = Ks + cur * TILE;
        const u16* Vc = Vs + cur * TILE;

        float s[FA_BC / 8][4];
#pragma unroll
        for (int i = 0; i < FA_BC / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < FA_BC / 16; np++) {
                u32 kf[4];
                ldsm_x4(kf, Kc + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816<BF16>(s[2 * np], qf[kk], kf[0], kf[1]);
                mma16816<BF16>(s[2 * np + 1], qf[kk], kf[2], kf[3]);
            }
        }

        float mx0 = -F_INF, mx1 = -F_INF;
        const bool edge = k0 + FA_BC > Lk;
#pragma unroll
        for (int nt = 0; nt < FA_BC / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
                int row = e < 2 ? r0 : r1;
                float x = s[nt][e] * sl2;
                if (bias != 0 && row < Lq && col < Lk)
                    x += bias[b * bs.sb + h * bs.sh + (i64)row * bs.sq + (i64)col * bs.sk] * LOG2E;
                if (edge && col >= Lk) x = -F_INF;
                s[nt][e] = x;
            }
            mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
            mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
        float mu0 = mn0 == -F_INF ? 0.f : mn0, mu1 = mn1 == -F_INF ? 0.f : mn1;
        float c0 = exp2f(m0 - mu0), c1 = exp2f(m1 - mu1);
        m0 = mn0;
        m1 = mn1;
        float ps0 = 0.f, ps1 = 0.f;
#pragma unroll
        for (int nt = 0; nt < FA_BC / 8; nt++) {
            s[nt][0] = exp2f(s[nt][0] - mu0);
            s[nt][1] = exp2f(s[nt][1] - mu0);
            s[nt][2] = exp2f(s[nt][2] - mu1);
            s[nt][3] = exp2f(s[nt][3] - mu1);
            ps0 += s[nt][0] + s[nt][1];
            ps1 += s[nt][2] + s[nt][3];
        }
        l0 = l0 * c0 + ps0;
        l1 = l1 * c1 + ps1;
#pragma unroll
        for (int i = 0; i < D / 8; i++) {
            o[i][0] *= c0; o[i][1] *= c0;
            o[i][2] *= c1; o[i][3] *= c1;
        }
#pragma unroll
        for (int kk = 0; kk < FA_BC / 16; kk++) {
            u32 pa[4];
            pa[0] = pack2<BF16>(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack2<BF16>(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack2<BF16>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack2<BF16>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int np = 0; np < D / 16; np++) {
                u32 vf[4];
                ldsm_x4_t(vf, Vc + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + np * 16 + (lane >> 4) * 8);
                mma16816<BF16>(o[2 * np], pa, vf[0], vf[1]);
                mma16816<BF16>(o[2 * np + 1], pa, vf[2], vf[3]);
            }
        }
        // the next tile has landed, and nobody reads this tile's buffers any more (it is refilled next iteration)
        asm volatile("cp.async.wait_group 0;" ::: "memory");
        __syncthreads();
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    if (lse != 0 && (lane & 3) == 0) {
        // m is in log2 units of the logits: lse = (m + log2 l)·ln 2
        const float LN2 = 0.6931471805599453f;
        float* lr = lse + (b * H + h) * (i64)Lq;
        if (r0 < Lq) lr[r0] = l0 > 0.f ? (m0 + log2f(l0)) * LN2 : -F_INF;
        if (r1 < Lq) lr[r1] = l1 > 0.f ? (m1 + log2f(l1)) * LN2 : -F_INF;
    }
    u16* ob = out + (b * Lq * H + h) * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        int col = nt * 8 + (lane & 3) * 2;
        if (r0 < Lq) *(u32*)(ob + (i64)r0 * tok + col) = pack2<BF16>(o[nt][0] * inv0, o[nt][1] * inv0);
        if (r1 < Lq) *(u32*)(ob + (i64)r1 * tok + col) = pack2<BF16>(o[nt][2] * inv1, o[nt][3] * inv1);
    }
}

#define FA_ENTRY(name, D, NW, BF)                                                                              \
    extern "C" __global__ void __launch_bounds__(32 * NW) name(u16* out, const u16* q, const u16* k, const u16* v, \
                                                               int H, int Lq, int Lk, float scale,                 \
                                                               const float* bias, BiasStrides bs, float* lse) {    \
        flash_impl<D, NW, BF>(out, q, k, v, H, Lq, Lk, scale, bias, bs, lse);                                     \
    }

// name: flash_attn_<type>_d<D>_w<warps>; block = 32*warps threads covering 16*warps query rows.
FA_ENTRY(flash_attn_bf16_d64_w4, 64, 4, true)
FA_ENTRY(flash_attn_bf16_d128_w4, 128, 4, true)
FA_ENTRY(flash_attn_bf16_d64_w8, 64, 8, true)
FA_ENTRY(flash_attn_bf16_d128_w8, 128, 8, true)
FA_ENTRY(flash_attn_f16_d64_w4, 64, 4, false)
FA_ENTRY(flash_attn_f16_d128_w4, 128, 4, false)
FA_ENTRY(flash_attn_f16_d64_w8, 64, 8, false)
FA_ENTRY(flash_attn_f16_d128_w8, 128, 8, false)
