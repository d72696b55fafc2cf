// Log-sum-exp merge of two partial attentions of the same queries over disjoint key sets (ring attention):
//   lse = log(e^la + e^lb),  out = e^(la-lse)·oa + e^(lb-lse)·ob,  rows where both are -inf give lse -inf, out 0.
// oa, ob, out: [B, Lq, H, dv] (each of its own floating type), la, lb, lse: f32 [B, H, Lq]. The two weights are
// computed in double and rounded to f32, the combination in f32 (the CPU backend's arithmetic). One warp per
// (b, i, h) row; grid-stride over rows. out may alias oa (each element is read before it is written, by the same
// thread); lse may alias la.
extern "C" __global__ void attention_merge(void* out, int dto, float* lse, const void* oa, int dta, const float* la,
                                           const void* ob, int dtb, const float* lb, int H, int Lq, int dv,
                                           i64 rows) {
    const int lane = threadIdx.x & 31;
    const i64 warps = (i64)gridDim.x * (blockDim.x >> 5);
    for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
        // row = (b·Lq + i)·H + h, the order of out's rows
        const i64 h = row % H, bi = row / H, i = bi % Lq, b = bi / Lq;
        const i64 li = (b * H + h) * Lq + i, o0 = row * dv;
        const double x = la[li], y = lb[li], m = x > y ? x : y;
        if (m == -(double)F_INF) {
            __syncwarp();
            if (lane == 0) lse[li] = -F_INF;
            for (int c = lane; c < dv; c += 32) stf(out, o0 + c, dto, 0.f);
            continue;
        }
        const double wa = exp(x - m), wb = exp(y - m), s = wa + wb;
        const float fa = (float)(wa / s), fb = (float)(wb / s);
        for (int c = lane; c < dv; c += 32) {
            float va = ldf(oa, o0 + c, dta), vb = ldf(ob, o0 + c, dtb);
            stf(out, o0 + c, dto, __fadd_rn(__fmul_rn(fa, va), __fmul_rn(fb, vb)));
        }
        __syncwarp();
        if (lane == 0) lse[li] = (float)(m + log(s));
    }
}
