// Element-wise kernels. All arithmetic in f32; every tensor carries its own element-type code (see common.cuh).

// Binary op codes
#define OP_ADD 0
#define OP_SUB 1
#define OP_MUL 2

__device__ __forceinline__ float binop(float a, float b, int op) {
    return op == OP_ADD ? a + b : (op == OP_SUB ? a - b : a * b);
}

// out[i] = a[i % na] op b[i % nb] for i < n (a and b contiguous; na, nb divide n: b repeats over leading dims).
extern "C" __global__ void binary_tiled(void* out, int dto, const void* a, int dta, i64 na, const void* b, int dtb,
                                        i64 nb, i64 n, int op) {
    GRID_LOOP(i, n) {
        i64 ia = na == n ? i : i % na;
        i64 ib = nb == n ? i : i % nb;
        stf(out, i, dto, binop(ldf(a, ia, dta), ldf(b, ib, dtb), op));
    }
}

// General broadcasting: p = {n, rank, dims[8], strideA[8], strideB[8]} with stride 0 on broadcast dims.
struct Bcast { i64 n; i64 rank; i64 dims[MAXR]; i64 sa[MAXR]; i64 sb[MAXR]; };

extern "C" __global__ void binary_bcast(void* out, int dto, const void* a, int dta, const void* b, int dtb, Bcast p,
                                        int op) {
    GRID_LOOP(i, p.n) {
        i64 r = i, ia = 0, ib = 0;
        for (int d = (int)p.rank - 1; d >= 0; d--) {
            i64 c = r % p.dims[d];
            r /= p.dims[d];
            ia += c * p.sa[d];
            ib += c * p.sb[d];
        }
        stf(out, i, dto, binop(ldf(a, ia, dta), ldf(b, ib, dtb), op));
    }
}

// Unary op codes
#define U_SCALE 0
#define U_SILU 1
#define U_GELU_TANH 2
#define U_GELU_ERF 3
#define U_IDENTITY 4

__device__ __forceinline__ float unop(float x, int op, float alpha) {
    switch (op) {
        case U_SCALE: return x * alpha;
        case U_SILU: return x / (1.f + expf(-x));
        case U_GELU_TANH: {
            const float k = 0.7978845608028654f;   // sqrt(2/pi)
            return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
        }
        case U_GELU_ERF: return 0.5f * x * (1.f + erff(x * 0.7071067811865476f));
        default: return x;
    }
}

// out[i] = f(x[i]); alpha is the factor of U_SCALE.
extern "C" __global__ void unary(void* out, int dto, const void* x, int dtx, i64 n, int op, float alpha) {
    GRID_LOOP(i, n) stf(out, i, dto, unop(ldf(x, i, dtx), op, alpha));
}

__device__ __forceinline__ bool is_int_type(int dt) { return dt >= DT_I32; }

__device__ __forceinline__ i64 ldi(const void* p, i64 i, int dt) {
    switch (dt) {
        case DT_I32: return ((const int*)p)[i];
        case DT_I64: return ((const i64*)p)[i];
        default: return ((const u8*)p)[i] ? 1 : 0;
    }
}

// Element-wise type conversion with PyTorch's rules (floats through f32, integers through i64).
extern "C" __global__ void cast(void* out, int dto, const void* x, int dtx, i64 n) {
    GRID_LOOP(i, n) {
        if (is_int_type(dto) && is_int_type(dtx)) {
            i64 v = ldi(x, i, dtx);
            if (dto == DT_I32) ((int*)out)[i] = (int)v;
            else if (dto == DT_I64) ((i64*)out)[i] = v;
            else ((u8*)out)[i] = v != 0 ? 1 : 0;
        } else if (dto == DT_I64 && !is_int_type(dtx)) {
            ((i64*)out)[i] = (i64)ldf(x, i, dtx);
        } else if (dtx == DT_I64 && !is_int_type(dto)) {
            stf(out, i, dto, (float)((const i64*)x)[i]);
        } else {
            stf(out, i, dto, ldf(x, i, dtx));
        }
    }
}

// out = x * (1 + scale) + shift; x, out: [B, L, D]; shift, scale: [B, D].
extern "C" __global__ void modulate(void* out, const void* x, int dt, const void* shift, int dtsh, const void* scale,
                                    int dtsc, i64 L, i64 D, i64 n) {
    GRID_LOOP(i, n) {
        i64 d = i % D, b = i / (L * D);
        float v = ldf(x, i, dt);
        stf(out, i, dt, v * (1.f + ldf(scale, b * D + d, dtsc)) + ldf(shift, b * D + d, dtsh));
    }
}

// out = residual + gate * y; residual, y, out: [B, L, D]; gate: [B, D].
extern "C" __global__ void gated_residual(void* out, const void* res, int dt, const void* gate, int dtg, const void* y,
                                          int dty, i64 L, i64 D, i64 n) {
    GRID_LOOP(i, n) {
        i64 d = i % D, b = i / (L * D);
        stf(out, i, dt, ldf(res, i, dt) + ldf(gate, b * D + d, dtg) * ldf(y, i, dty));
    }
}
