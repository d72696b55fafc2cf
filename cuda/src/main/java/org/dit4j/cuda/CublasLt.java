package org.dit4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Typed bindings of cuBLASLt. Matrices are column-major as in cuBLAS; descriptors and layouts are {@code long}
 * handles. Every call's {@code cublasStatus_t} is checked.
 */
public final class CublasLt {
    // cudaDataType
    public static final int R_32F = 0, R_16F = 2, R_16BF = 14, R_8F_E4M3 = 28, R_8F_E5M2 = 29;
    // cublasComputeType_t
    public static final int COMPUTE_32F = 68;
    // cublasOperation_t
    public static final int OP_N = 0, OP_T = 1;
    // cublasLtMatmulDescAttributes_t
    public static final int DESC_TRANSA = 3, DESC_TRANSB = 4, DESC_EPILOGUE = 7, DESC_BIAS_POINTER = 8,
            DESC_BIAS_DATA_TYPE = 26;
    // cublasLtEpilogue_t
    public static final int EPILOGUE_DEFAULT = 1, EPILOGUE_BIAS = 4, EPILOGUE_GELU = 32, EPILOGUE_GELU_BIAS = 36;
    // cublasLtMatrixLayoutAttribute_t
    public static final int LAYOUT_BATCH_COUNT = 5, LAYOUT_STRIDED_BATCH_OFFSET = 6;
    // cublasLtMatmulPreferenceAttributes_t
    public static final int PREF_MAX_WORKSPACE_BYTES = 1, PREF_MIN_ALIGNMENT_A_BYTES = 5, PREF_MIN_ALIGNMENT_B_BYTES = 6,
            PREF_MIN_ALIGNMENT_C_BYTES = 7, PREF_MIN_ALIGNMENT_D_BYTES = 8;
    /** sizeof(cublasLtMatmulHeuristicResult_t): algo (64) + workspaceSize (8) + state (4) + wavesCount (4) + reserved (16). */
    public static final int HEURISTIC_RESULT_BYTES = 96;

    private static volatile CublasLt instance;

    private final MethodHandle cublasLtCreate, cublasLtDestroy, cublasLtGetStatusString, cublasLtGetVersion;
    private final MethodHandle descCreate, descDestroy, descSetAttribute;
    private final MethodHandle layoutCreate, layoutDestroy, layoutSetAttribute;
    private final MethodHandle prefCreate, prefDestroy, prefSetAttribute;
    private final MethodHandle getHeuristic, matmul;

    private CublasLt() {
        CudaDriver.Binder b = new CudaDriver.Binder(java.lang.foreign.Linker.nativeLinker(),
                CudaLibraries.load(CudaLibraries.Lib.CUBLASLT));
        cublasLtCreate = b.fn("cublasLtCreate", ADDRESS);
        cublasLtDestroy = b.fn("cublasLtDestroy", JAVA_LONG);
        cublasLtGetStatusString = b.fnRet("cublasLtGetStatusString", ADDRESS, JAVA_INT);
        cublasLtGetVersion = b.fnRet("cublasLtGetVersion", JAVA_LONG);
        descCreate = b.fn("cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
        descDestroy = b.fn("cublasLtMatmulDescDestroy", JAVA_LONG);
        descSetAttribute = b.fn("cublasLtMatmulDescSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        layoutCreate = b.fn("cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        layoutDestroy = b.fn("cublasLtMatrixLayoutDestroy", JAVA_LONG);
        layoutSetAttribute = b.fn("cublasLtMatrixLayoutSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        prefCreate = b.fn("cublasLtMatmulPreferenceCreate", ADDRESS);
        prefDestroy = b.fn("cublasLtMatmulPreferenceDestroy", JAVA_LONG);
        prefSetAttribute = b.fn("cublasLtMatmulPreferenceSetAttribute", JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG);
        getHeuristic = b.fn("cublasLtMatmulAlgoGetHeuristic", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS);
        matmul = b.fn("cublasLtMatmul", JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG,
                ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG);
    }

    public static CublasLt get() {
        CublasLt c = instance;
        if (c == null) {
            synchronized (CublasLt.class) {
                c = instance;
                if (c == null) instance = c = new CublasLt();
            }
        }
        return c;
    }

    public String statusString(int status) {
        try {
            MemorySegment p = (MemorySegment) cublasLtGetStatusString.invokeExact(status);
            return p.reinterpret(512).getString(0);
        } catch (Throwable t) {
            return "unknown cuBLAS status";
        }
    }

    private void check(int status, String call) {
        if (status != 0) throw new CudaException(call + " failed: cuBLAS status " + status + ": " + statusString(status), status);
    }

    /** cuBLASLt version number (e.g. 130100 for 13.1.0). */
    public long version() {
        try { return (long) cublasLtGetVersion.invokeExact(); } catch (Throwable t) { throw CudaDriver.wrap("cublasLtGetVersion", t); }
    }

    public long create() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cublasLtCreate.invokeExact(v), "cublasLtCreate");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtCreate", t); }
    }

    public void destroy(long handle) {
        try { check((int) cublasLtDestroy.invokeExact(handle), "cublasLtDestroy"); }
        catch (Throwable t) { throw CudaDriver.wrap("cublasLtDestroy", t); }
    }

    /** Matmul descriptor with the given compute type (e.g. {@link #COMPUTE_32F}) and scale type ({@link #R_32F}). */
    public long matmulDescCreate(int computeType, int scaleType) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) descCreate.invokeExact(v, computeType, scaleType), "cublasLtMatmulDescCreate");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulDescCreate", t); }
    }

    public void matmulDescDestroy(long desc) {
        try { check((int) descDestroy.invokeExact(desc), "cublasLtMatmulDescDestroy"); }
        catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulDescDestroy", t); }
    }

    /** Sets a 32-bit descriptor attribute (transa/transb/epilogue/bias data type). */
    public void matmulDescSetInt(long desc, int attribute, int value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_INT, value);
            check((int) descSetAttribute.invokeExact(desc, attribute, v, 4L), "cublasLtMatmulDescSetAttribute(" + attribute + ")");
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulDescSetAttribute", t); }
    }

    /** Sets a 64-bit descriptor attribute (bias pointer). {@code scratch} holds at least 8 bytes. */
    public void matmulDescSetLong(long desc, int attribute, long value, MemorySegment scratch) {
        scratch.set(JAVA_LONG, 0, value);
        try { check((int) descSetAttribute.invokeExact(desc, attribute, scratch, 8L), "cublasLtMatmulDescSetAttribute(" + attribute + ")"); }
        catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulDescSetAttribute", t); }
    }

    /** Column-major layout of {@code rows × cols} elements of {@code type} with leading dimension {@code ld}. */
    public long matrixLayoutCreate(int type, long rows, long cols, long ld) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) layoutCreate.invokeExact(v, type, rows, cols, ld), "cublasLtMatrixLayoutCreate(" + rows + "x" + cols + ", ld " + ld + ")");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatrixLayoutCreate", t); }
    }

    /** Makes a layout a strided batch of {@code count} matrices {@code stride} elements apart. */
    public void matrixLayoutSetBatch(long layout, int count, long stride) {
        try (Arena a = Arena.ofConfined()) {
            check((int) layoutSetAttribute.invokeExact(layout, LAYOUT_BATCH_COUNT, a.allocateFrom(JAVA_INT, count), 4L),
                    "cublasLtMatrixLayoutSetAttribute(BATCH_COUNT)");
            check((int) layoutSetAttribute.invokeExact(layout, LAYOUT_STRIDED_BATCH_OFFSET, a.allocateFrom(JAVA_LONG, stride), 8L),
                    "cublasLtMatrixLayoutSetAttribute(STRIDED_BATCH_OFFSET)");
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatrixLayoutSetAttribute", t); }
    }

    public void matrixLayoutDestroy(long layout) {
        try { check((int) layoutDestroy.invokeExact(layout), "cublasLtMatrixLayoutDestroy"); }
        catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatrixLayoutDestroy", t); }
    }

    /** A preference allowing {@code workspaceBytes} of workspace and assuming the given pointer alignments. */
    public long preferenceCreate(long workspaceBytes, int alignA, int alignB, int alignC, int alignD) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) prefCreate.invokeExact(v), "cublasLtMatmulPreferenceCreate");
            long pref = v.get(JAVA_LONG, 0);
            check((int) prefSetAttribute.invokeExact(pref, PREF_MAX_WORKSPACE_BYTES, a.allocateFrom(JAVA_LONG, workspaceBytes), 8L),
                    "cublasLtMatmulPreferenceSetAttribute(MAX_WORKSPACE_BYTES)");
            int[] al = {alignA, alignB, alignC, alignD};
            for (int i = 0; i < 4; i++) {
                check((int) prefSetAttribute.invokeExact(pref, PREF_MIN_ALIGNMENT_A_BYTES + i, a.allocateFrom(JAVA_INT, al[i]), 4L),
                        "cublasLtMatmulPreferenceSetAttribute(MIN_ALIGNMENT)");
            }
            return pref;
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulPreferenceCreate", t); }
    }

    public void preferenceDestroy(long pref) {
        try { check((int) prefDestroy.invokeExact(pref), "cublasLtMatmulPreferenceDestroy"); }
        catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulPreferenceDestroy", t); }
    }

    /**
     * Asks the heuristic for up to {@code requested} algorithms, best first; fills {@code results} (at least
     * requested × {@link #HEURISTIC_RESULT_BYTES}) and returns how many came back (0 = none supports the problem).
     * Each result: algo at byte 0 (64 bytes), workspaceSize at 64, state at 72 (0 = usable), wavesCount at 76.
     */
    public int heuristic(long handle, long desc, long a, long b, long c, long d, long pref, int requested, MemorySegment results) {
        try (Arena ar = Arena.ofConfined()) {
            MemorySegment n = ar.allocate(JAVA_INT);
            check((int) getHeuristic.invokeExact(handle, desc, a, b, c, d, pref, requested, results, n), "cublasLtMatmulAlgoGetHeuristic");
            return n.get(JAVA_INT, 0);
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmulAlgoGetHeuristic", t); }
    }

    /** D = alpha·op(A)·op(B) + beta·C (+ epilogue); {@code alpha}, {@code beta} point at host floats. */
    public void matmul(long handle, long desc, MemorySegment alpha, long a, long aDesc, long b, long bDesc,
                       MemorySegment beta, long c, long cDesc, long d, long dDesc, MemorySegment algo,
                       long workspace, long workspaceBytes, long stream) {
        int r;
        try {
            r = (int) matmul.invokeExact(handle, desc, alpha, a, aDesc, b, bDesc, beta, c, cDesc, d, dDesc, algo,
                    workspace, workspaceBytes, stream);
        } catch (Throwable t) { throw CudaDriver.wrap("cublasLtMatmul", t); }
        check(r, "cublasLtMatmul");
    }
}
