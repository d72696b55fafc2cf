// Flash attention (FA2-style) on tensor cores with mma.sync m16n8k16, bf16 or f16 in, f32 accumulate.
// Layout BSHD: q:[B,Lq,H,D] k,v:[B,Lk,H,D] out:[B,Lq,H,D], contiguous, D in {64, 128}; base pointers 16-byte
// aligned. Grid (ceil(Lq/64), H, B), 128 threads: each of the 4 warps owns 16 query rows; keys stream through
// shared memory 64 at a time with an online softmax (log2 domain). Optional additive f32 bias with element
// (b,h,i,j) at b*sb + h*sh + i*sq + j*sk. Fully masked rows give 0.
// Dynamic shared memory: 3 * 64 * (D + 8) * 2 bytes.

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

template <int D, bool BF16>
__device__ __forceinline__ void flash_impl(u16* out, const u16* q, const u16* k, const u16* v, int H, int Lq, int Lk,
                                           float scale, const float* bias, BiasStrides bs) {
    constexpr int LDS = D + 8;
    constexpr int CH = D / 8;           // 16-byte chunks per row
    extern __shared__ __attribute__((aligned(16))) u16 smem[];
    u16* Qs = smem;
    u16* Ks = Qs + FA_BR * LDS;
    u16* Vs = Ks + FA_BC * LDS;

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int q0 = blockIdx.x * FA_BR;
    const i64 h = blockIdx.y, b = blockIdx.z;
    const i64 tok = (i64)H * D;         // elements between consecutive tokens
    const u16* qb = q + (b * Lq * H + h) * D;
    const u16* kb = k + (b * Lk * H + h) * D;
    const u16* vb = v + (b * Lk * H + h) * D;
    const float LOG2E = 1.4426950408889634f;
    const float sl2 = scale * LOG2E;

    for (int c = tid; c < FA_BR * CH; c += 128) {
        int r = c / CH, cc = c % CH;
        bool ok = q0 + r < Lq;
        cp_async16(Qs + r * LDS + cc * 8, ok ? (const void*)(qb + (i64)(q0 + r) * tok + cc * 8) : (const void*)q, ok ? 16 : 0);
    }
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

    for (int kt = 0; kt * FA_BC < Lk; kt++) {
        const int k0 = kt * FA_BC;
        __syncthreads();
        for (int c = tid; c < FA_BC * CH; c += 128) {
            int r = c / CH, cc = c % CH;
            bool ok = k0 + r < Lk;
            i64 off = (i64)(k0 + r) * tok + cc * 8;
            cp_async16(Ks + r * LDS + cc * 8, ok ? (const void*)(kb + off) : (const void*)k, ok ? 16 : 0);
            cp_async16(Vs + r * LDS + cc * 8, ok ? (const void*)(vb + off) : (const void*)v, ok ? 16 : 0);
        }
        cp_async_wait_all();
        __syncthreads();

        float s[FA_BC / 8][4];
#pragma unroll
        for (int i = 0; i < FA_BC / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int np = 0; np < FA_BC / 16; np++) {
                u32 kf[4];
                ldsm_x4(kf, Ks + (np * 16 + (lane & 7) + (lane >> 4) * 8) * LDS + kk * 16 + ((lane >> 3) & 1) * 8);
                mma16816<BF16>(s[2 * np], qf[kk], kf[0], kf[1]);
                mma16816<BF16>(s[2 * np + 1], qf[kk], kf[2], kf[3]);
            }
        }

        float mx0 = -F_INF, mx1 = -F_INF;
#pragma unroll
        for (int nt = 0; nt < FA_BC / 8; nt++) {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = k0 + nt * 8 + (lane & 3) * 2 + (e & 1);
                int row = e < 2 ? r0 : r1;
                float x = s[nt][e] * sl2;
                if (bias != 0 && row < Lq && col < Lk)
                    x += bias[b * bs.sb + h * bs.sh + (i64)row * bs.sq + (i64)col * bs.sk] * LOG2E;
                if (col >= Lk) x = -F_INF;
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
                ldsm_x4_t(vf, Vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LDS + np * 16 + (lane >> 4) * 8);
                mma16816<BF16>(o[2 * np], pa, vf[0], vf[1]);
                mma16816<BF16>(o[2 * np + 1], pa, vf[2], vf[3]);
            }
        }
    }

    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    float inv0 = l0 > 0.f ? 1.f / l0 : 0.f, inv1 = l1 > 0.f ? 1.f / l1 : 0.f;
    u16* ob = out + (b * Lq * H + h) * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; nt++) {
        int col = nt * 8 + (lane & 3) * 2;
        if (r0 < Lq) *(u32*)(ob + (i64)r0 * tok + col) = pack2<BF16>(o[nt][0] * inv0, o[nt][1] * inv0);
        if (r1 < Lq) *(u32*)(ob + (i64)r1 * tok + col) = pack2<BF16>(o[nt][2] * inv1, o[nt][3] * inv1);
    }
}

#define FA_ENTRY(name, D, BF)                                                                                  \
    extern "C" __global__ void __launch_bounds__(128) name(u16* out, const u16* q, const u16* k, const u16* v, \
                                                           int H, int Lq, int Lk, float scale,                 \
                                                           const float* bias, BiasStrides bs) {                \
        flash_impl<D, BF>(out, q, k, v, H, Lq, Lk, scale, bias, bs);                                          \
    }

FA_ENTRY(flash_attn_bf16_d64, 64, true)
FA_ENTRY(flash_attn_bf16_d128, 128, true)
FA_ENTRY(flash_attn_f16_d64, 64, false)
FA_ENTRY(flash_attn_f16_d128, 128, false)
