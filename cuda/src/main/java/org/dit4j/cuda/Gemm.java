package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.HashMap;
import java.util.Map;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;

/**
 * cuBLASLt matrix products in column-major terms: D[m×n] = op(A)·op(B) (+ bias[m]) (→ GELU), strided batches,
 * f32 accumulation; D in the operands' type or (e.g. attention scores) f32. One plan (descriptor, layouts, heuristic algorithm) is cached per problem key, so a steady-state
 * call does no heuristic search and creates nothing. Single-threaded (one per backend).
 */
final class Gemm implements AutoCloseable {
    static final long WORKSPACE_BYTES = 32L << 20;

    /** Everything that selects a plan. Types are cudaDataType codes; alignments in bytes (≤ 256). */
    record Key(int type, boolean transA, boolean transB, long m, long n, long k, long lda, long ldb, long ldd,
               int batch, long strideA, long strideB, long strideD, int epilogue, int align, int dType) {
        /** A product whose D has the operands' type. */
        Key(int type, boolean transA, boolean transB, long m, long n, long k, long lda, long ldb, long ldd,
            int batch, long strideA, long strideB, long strideD, int epilogue, int align) {
            this(type, transA, transB, m, n, k, lda, ldb, ldd, batch, strideA, strideB, strideD, epilogue, align, type);
        }
    }

    private static final class Plan {
        long desc, la, lb, ld;
        MemorySegment algo;
        MemorySegment[] candidates;   // usable heuristic results, best-ranked first (until tuned)
    }

    /**
     * How many heuristic candidates are timed when a plan is first used ({@code -Ddit4j.gemm.autotune=8}); default 1:
     * take cuBLASLt's first pick (timing on the H100 showed no reliable gain, see bench/NOTES-cuda.md).
     */
    private static final int TUNE_CANDIDATES = Integer.getInteger("dit4j.gemm.autotune", 1);

    private final CublasLt lt;
    private final long handle;
    private final long workspace;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment alpha, beta, scratch;
    private final Map<Key, Plan> plans = new HashMap<>();

    private final CudaDriver drv;

    Gemm(CudaDriver drv, long workspace) {
        this.drv = drv;
        this.lt = CublasLt.get();
        this.handle = lt.create();
        this.workspace = workspace;
        alpha = arena.allocateFrom(JAVA_FLOAT, 1f);
        beta = arena.allocateFrom(JAVA_FLOAT, 0f);
        scratch = arena.allocate(16, 16);
    }

    static int cudaType(DType t) {
        return switch (t) {
            case F32 -> CublasLt.R_32F;
            case BF16 -> CublasLt.R_16BF;
            case F16 -> CublasLt.R_16F;
            default -> throw new IllegalArgumentException("matrix products take F32, BF16 or F16 operands, got " + t);
        };
    }

    /** Largest power of two ≤ 256 dividing every address (cuBLASLt picks kernels by the alignment it is promised). */
    static int alignment(long... addresses) {
        int a = 256;
        for (long p : addresses) while (a > 1 && (p % a) != 0) a >>= 1;
        return a;
    }

    /** Runs D = op(A)·op(B) [+ bias] with the epilogue of {@code key}; {@code bias} is 0 without a bias epilogue. */
    void run(Key key, long a, long b, long d, long bias, long stream) {
        Plan p = plans.get(key);
        if (p == null) {
            p = plan(key);
            plans.put(key, p);
        }
        if (bias != 0) lt.matmulDescSetLong(p.desc, CublasLt.DESC_BIAS_POINTER, bias, scratch);
        if (p.candidates != null && p.candidates.length > 1 && !drv.streamIsCapturing(stream)) tune(p, a, b, d, stream);
        p.candidates = null;
        lt.matmul(handle, p.desc, alpha, a, p.la, b, p.lb, beta, d, p.ld, d, p.ld, p.algo, workspace, WORKSPACE_BYTES, stream);
    }

    /**
     * Times each candidate algorithm on the call's own operands (one warm-up, median of three) and keeps the
     * fastest. Happens once per plan, outside graph capture; it waits for the device.
     */
    private void tune(Plan p, long a, long b, long d, long stream) {
        final int rounds = 7;
        int nc = p.candidates.length;
        float[][] t = new float[nc][rounds];
        boolean[] broken = new boolean[nc];
        long e0 = drv.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = drv.eventCreate(CudaDriver.EVENT_DEFAULT);
        try {
            // warm the clocks with the heuristic's pick, then time the candidates in interleaved rounds
            for (int i = 0; i < 5; i++) matmul(p, p.candidates[0], a, b, d, stream);
            for (int r = 0; r < rounds; r++) {
                for (int c = 0; c < nc; c++) {
                    if (broken[c]) continue;
                    try {
                        drv.eventRecord(e0, stream);
                        matmul(p, p.candidates[c], a, b, d, stream);
                        drv.eventRecord(e1, stream);
                        drv.eventSynchronize(e1);
                        t[c][r] = drv.eventElapsedMs(e0, e1);
                    } catch (CudaException e) {
                        broken[c] = true;   // a candidate the library cannot run after all: skip it
                    }
                }
            }
        } finally {
            drv.eventDestroy(e0);
            drv.eventDestroy(e1);
        }
        int best = 0;
        float bestMs = median(t[0]);
        for (int c = 1; c < nc; c++) {
            if (broken[c]) continue;
            float m = median(t[c]);
            if (m < bestMs * 0.97f) {   // leave the heuristic's pick only for a clear gain
                best = c;
                bestMs = m;
            }
        }
        p.algo = p.candidates[best];
    }

    private void matmul(Plan p, MemorySegment algo, long a, long b, long d, long stream) {
        lt.matmul(handle, p.desc, alpha, a, p.la, b, p.lb, beta, d, p.ld, d, p.ld, algo, workspace, WORKSPACE_BYTES, stream);
    }

    private static float median(float[] x) {
        float[] c = x.clone();
        java.util.Arrays.sort(c);
        return c[c.length / 2];
    }

    private Plan plan(Key key) {
        Plan p = new Plan();
        try {
            return build(key, p);
        } catch (RuntimeException e) {   // no algorithm for the key: free what was made
            if (p.desc != 0) lt.matmulDescDestroy(p.desc);
            if (p.la != 0) lt.matrixLayoutDestroy(p.la);
            if (p.lb != 0) lt.matrixLayoutDestroy(p.lb);
            if (p.ld != 0) lt.matrixLayoutDestroy(p.ld);
            throw e;
        }
    }

    private Plan build(Key key, Plan p) {
        p.desc = lt.matmulDescCreate(CublasLt.COMPUTE_32F, CublasLt.R_32F);
        lt.matmulDescSetInt(p.desc, CublasLt.DESC_TRANSA, key.transA() ? CublasLt.OP_T : CublasLt.OP_N);
        lt.matmulDescSetInt(p.desc, CublasLt.DESC_TRANSB, key.transB() ? CublasLt.OP_T : CublasLt.OP_N);
        lt.matmulDescSetInt(p.desc, CublasLt.DESC_EPILOGUE, key.epilogue());
        long aRows = key.transA() ? key.k() : key.m(), aCols = key.transA() ? key.m() : key.k();
        long bRows = key.transB() ? key.n() : key.k(), bCols = key.transB() ? key.k() : key.n();
        p.la = lt.matrixLayoutCreate(key.type(), aRows, aCols, key.lda());
        p.lb = lt.matrixLayoutCreate(key.type(), bRows, bCols, key.ldb());
        p.ld = lt.matrixLayoutCreate(key.dType(), key.m(), key.n(), key.ldd());
        if (key.batch() > 1) {
            lt.matrixLayoutSetBatch(p.la, key.batch(), key.strideA());
            lt.matrixLayoutSetBatch(p.lb, key.batch(), key.strideB());
            lt.matrixLayoutSetBatch(p.ld, key.batch(), key.strideD());
        }
        long pref = lt.preferenceCreate(WORKSPACE_BYTES, key.align(), key.align(), key.align(), key.align());
        try {
            int requested = Math.max(1, TUNE_CANDIDATES);
            MemorySegment results = arena.allocate((long) CublasLt.HEURISTIC_RESULT_BYTES * requested, 16);
            int n = lt.heuristic(handle, p.desc, p.la, p.lb, p.ld, p.ld, pref, requested, results);
            java.util.List<MemorySegment> usable = new java.util.ArrayList<>();
            for (int i = 0; i < n; i++) {
                MemorySegment r = results.asSlice((long) i * CublasLt.HEURISTIC_RESULT_BYTES, CublasLt.HEURISTIC_RESULT_BYTES);
                if (r.get(java.lang.foreign.ValueLayout.JAVA_INT, 72) == 0) usable.add(r.asSlice(0, 64));
            }
            if (usable.isEmpty()) throw new CudaException("cuBLASLt has no algorithm for " + key
                    + "; the operand types, transposes, epilogue or alignment are not supported together");
            p.algo = usable.get(0);
            p.candidates = TUNE_CANDIDATES > 1 ? usable.toArray(new MemorySegment[0]) : null;
        } finally {
            lt.preferenceDestroy(pref);
        }
        return p;
    }

    /** Number of cached plans (for tests). */
    int planCount() { return plans.size(); }

    @Override public void close() {
        for (Plan p : plans.values()) {
            lt.matmulDescDestroy(p.desc);
            lt.matrixLayoutDestroy(p.la);
            lt.matrixLayoutDestroy(p.lb);
            lt.matrixLayoutDestroy(p.ld);
        }
        plans.clear();
        lt.destroy(handle);
        arena.close();
    }
}
