// Reference attention: any head dims d, dv <= 256, any floating type, optional additive bias. One warp per query
// row, online softmax over all keys. Slow; used for F32, odd head dims and as the check of the fast kernels.
// q:[B,Lq,H,d] k:[B,Lk,H,d] v:[B,Lk,H,dv] out:[B,Lq,H,dv]; bias element (b,h,i,j) at b*sb + h*sh + i*sq + j*sk.
// lse: null, or f32 [B,H,Lq] receiving each row's log-sum-exp of the logits (-inf for fully masked rows).
struct BiasStrides { i64 sb, sh, sq, sk; };

extern "C" __global__ void attention_ref(void* out, const void* q, const void* k, const void* v, int dt, int H, int Lq,
                                         int Lk, int d, int dv, float scale, const void* bias, int dtb,
                                         BiasStrides bs, float* lse) {
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    i64 qi = (i64)blockIdx.x * (blockDim.x >> 5) + warp;
    if (qi >= Lq) return;
    i64 h = blockIdx.y, b = blockIdx.z;
    float qr[8], acc[8];
    i64 qoff = ((b * Lq + qi) * H + h) * d;
#pragma unroll
    for (int c = 0; c < 8; c++) {
        int j = lane + 32 * c;
        qr[c] = j < d ? ldf(q, qoff + j, dt) : 0.f;
        acc[c] = 0.f;
    }
    float m = -F_INF, l = 0.f;
    for (i64 kj = 0; kj < Lk; kj++) {
        i64 koff = ((b * Lk + kj) * H + h) * d;
        float s = 0.f;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            int j = lane + 32 * c;
            if (j < d) s += qr[c] * ldf(k, koff + j, dt);
        }
        s = warp_sum(s) * scale;
        if (bias != 0) s += ldf(bias, b * bs.sb + h * bs.sh + qi * bs.sq + kj * bs.sk, dtb);
        if (s == -F_INF) continue;
        float mn = fmaxf(m, s);
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + p;
        i64 voff = ((b * Lk + kj) * H + h) * dv;
#pragma unroll
        for (int c = 0; c < 8; c++) {
            int j = lane + 32 * c;
            if (j < dv) acc[c] = acc[c] * corr + p * ldf(v, voff + j, dt);
        }
        m = mn;
    }
    float inv = l > 0.f ? 1.f / l : 0.f;
    if (lse != 0 && lane == 0) lse[(b * H + h) * (i64)Lq + qi] = l > 0.f ? m + logf(l) : -F_INF;
    i64 ooff = ((b * Lq + qi) * H + h) * dv;
#pragma unroll
    for (int c = 0; c < 8; c++) {
        int j = lane + 32 * c;
        if (j < dv) stf(out, ooff + j, dt, acc[c] * inv);
    }
}
