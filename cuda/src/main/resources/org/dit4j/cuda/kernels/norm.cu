// Normalisations over the last dimension, one block per row (blockDim.x a multiple of 32). Statistics in f32,
// two passes (mean, then centred variance), like the CPU reference.

// LayerNorm of rows of length D, optional affine (w, b may be null), optional adaLN modulation
// (shift/scale [B, D] with B = rows / L; null = none): out = ((x - mu) * rstd * w + b) * (1 + scale) + shift.
extern "C" __global__ void layer_norm(void* out, const void* x, int dt, i64 D, float eps,
                                      const void* w, int dtw, const void* b, int dtb,
                                      const void* shift, int dtsh, const void* scale, int dtsc, i64 L) {
    __shared__ float sh[32];
    i64 row = blockIdx.x;
    i64 base = row * D;
    float s = 0.f;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) s += ldf(x, base + j, dt);
    float mean = block_sum(s, sh) / (float)D;
    float v = 0.f;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) { float d = ldf(x, base + j, dt) - mean; v += d * d; }
    float var = block_sum(v, sh) / (float)D;
    float rstd = rsqrtf(var + eps);
    i64 mb = shift != 0 ? (row / L) * D : 0;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
        float y = (ldf(x, base + j, dt) - mean) * rstd;
        if (w != 0) y *= ldf(w, j, dtw);
        if (b != 0) y += ldf(b, j, dtb);
        if (shift != 0) y = y * (1.f + ldf(scale, mb + j, dtsc)) + ldf(shift, mb + j, dtsh);
        stf(out, base + j, dt, y);
    }
}

// RMSNorm of rows of length D (w may be null): out = x * rsqrt(mean(x^2) + eps) * w.
// With cos != null, RoPE follows (adjacent pairs) for x viewed as [B, L, H, D]:
//   row = (b*L + l)*H + h; cos/sin index = (b * cosBatch + l) * D/2 + i (cosBatch = 0 or L).
extern "C" __global__ void rms_norm(void* out, const void* x, int dt, i64 D, float eps, const void* w, int dtw,
                                    const float* cos, const float* sin, i64 L, i64 H, i64 cosBatch) {
    __shared__ float sh[32];
    i64 row = blockIdx.x;
    i64 base = row * D;
    float s = 0.f;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) { float a = ldf(x, base + j, dt); s += a * a; }
    float r = rsqrtf(block_sum(s, sh) / (float)D + eps);
    if (cos == 0) {
        for (i64 j = threadIdx.x; j < D; j += blockDim.x) {
            float y = ldf(x, base + j, dt) * r;
            if (w != 0) y *= ldf(w, j, dtw);
            stf(out, base + j, dt, y);
        }
    } else {
        i64 l = (row / H) % L, bb = row / (H * L);
        i64 cbase = (bb * cosBatch + l) * (D / 2);
        for (i64 i = threadIdx.x; i < D / 2; i += blockDim.x) {
            float x0 = ldf(x, base + 2 * i, dt) * r, x1 = ldf(x, base + 2 * i + 1, dt) * r;
            if (w != 0) { x0 *= ldf(w, 2 * i, dtw); x1 *= ldf(w, 2 * i + 1, dtw); }
            // the unfused path rounds the normalised value to the activation type before RoPE
            x0 = ldf_round(x0, dt); x1 = ldf_round(x1, dt);
            float c = cos[cbase + i], sn = sin[cbase + i];
            stf(out, base + 2 * i, dt, x0 * c - x1 * sn);
            stf(out, base + 2 * i + 1, dt, x0 * sn + x1 * c);
        }
    }
}

// RoPE alone (adjacent pairs): x, out [B, L, H, D]; n = B*L*H*D/2 pairs.
extern "C" __global__ void rope(void* out, const void* x, int dt, const float* cos, const float* sin, i64 L, i64 H,
                                i64 D, i64 cosBatch, i64 n) {
    GRID_LOOP(p, n) {
        i64 i = p % (D / 2), row = p / (D / 2);
        i64 l = (row / H) % L, bb = row / (H * L);
        i64 ci = (bb * cosBatch + l) * (D / 2) + i;
        float x0 = ldf(x, row * D + 2 * i, dt), x1 = ldf(x, row * D + 2 * i + 1, dt);
        float c = cos[ci], s = sin[ci];
        stf(out, row * D + 2 * i, dt, x0 * c - x1 * s);
        stf(out, row * D + 2 * i + 1, dt, x0 * s + x1 * c);
    }
}

// Softmax over rows of length D.
// maskedZero: a row that is −∞ everywhere gives zeros (attention's fully masked rows) instead of NaN (torch.softmax).
extern "C" __global__ void softmax(void* out, const void* x, int dt, i64 D, int maskedZero) {
    __shared__ float sh[32];
    i64 base = (i64)blockIdx.x * D;
    float m = -F_INF;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) m = fmaxf(m, ldf(x, base + j, dt));
    m = block_max(m, sh);
    if (maskedZero && m == -F_INF) {
        for (i64 j = threadIdx.x; j < D; j += blockDim.x) stf(out, base + j, dt, 0.f);
        return;
    }
    float s = 0.f;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) s += expf(ldf(x, base + j, dt) - m);
    s = block_sum(s, sh);
    float inv = 1.f / s;
    for (i64 j = threadIdx.x; j < D; j += blockDim.x) stf(out, base + j, dt, expf(ldf(x, base + j, dt) - m) * inv);
}

// GroupNorm: x [N, C, S] (S = product of spatial dims); one block per (n, g) over cpg*S contiguous elements;
// statistics accumulated in f64. w, b: [C] or null.
extern "C" __global__ void group_norm(void* out, const void* x, int dt, i64 C, i64 S, int groups, float eps,
                                      const void* w, int dtw, const void* b, int dtb) {
    __shared__ double sh[32];
    i64 cpg = C / groups;
    i64 len = cpg * S;
    i64 ng = blockIdx.x;
    i64 n = ng / groups, g = ng % groups;
    i64 base = (n * C + g * cpg) * S;
    double s = 0.0;
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) s += ldf(x, base + j, dt);
    double mean = block_sum_d(s, sh) / (double)len;
    double v = 0.0;
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) { double d = ldf(x, base + j, dt) - mean; v += d * d; }
    double var = block_sum_d(v, sh) / (double)len;
    float rstd = (float)(1.0 / sqrt(var + (double)eps));
    float meanf = (float)mean;
    for (i64 j = threadIdx.x; j < len; j += blockDim.x) {
        i64 c = g * cpg + j / S;
        float y = (ldf(x, base + j, dt) - meanf) * rstd;
        if (w != 0) y *= ldf(w, c, dtw);
        if (b != 0) y += ldf(b, c, dtb);
        stf(out, base + j, dt, y);
    }
}

// Ops.absSums, stage 1: one block per chunk of `chunk` elements of a and b (same element count, types dta, dtb);
// part[2c] = Σ|round_dta(a − b)|, part[2c+1] = Σ|b| over chunk c, in f64 (the CPU reference's chunking).
extern "C" __global__ void abs_sums_chunks(double* part, const void* a, int dta, const void* b, int dtb, i64 n, i64 chunk) {
    __shared__ double sh[32];
    i64 s = (i64)blockIdx.x * chunk;
    i64 e = s + chunk < n ? s + chunk : n;
    double d = 0.0, r = 0.0;
    for (i64 i = s + threadIdx.x; i < e; i += blockDim.x) {
        float y = ldf(b, i, dtb);
        d += fabs((double)ldf_round(ldf(a, i, dta) - y, dta));
        r += fabs((double)y);
    }
    d = block_sum_d(d, sh);
    r = block_sum_d(r, sh);
    if (threadIdx.x == 0) { part[2 * blockIdx.x] = d; part[2 * blockIdx.x + 1] = r; }
}

// Ops.absSums, stage 2: the chunk partials added in chunk order by one thread (deterministic, as the CPU reference).
extern "C" __global__ void abs_sums_total(double* out, const double* part, i64 chunks) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double d = 0.0, r = 0.0;
    for (i64 c = 0; c < chunks; c++) { d += part[2 * c]; r += part[2 * c + 1]; }
    out[0] = d;
    out[1] = r;
}
