package org.dit4j.cuda.cudnn;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.dit4j.cuda.CudaException;
import org.dit4j.cuda.CudaLibraries;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Thin typed FFM binding of cuDNN 9: handle management and the backend ("graph") API —
 * descriptor create / set / get / finalize / destroy and {@code cudnnBackendExecute}.
 *
 * <p>Every enum below mirrors the C enum of {@code cudnn_graph.h} whose name is the prefix plus the
 * Java constant name (e.g. {@link Attr#TENSOR_DATA_TYPE} is {@code CUDNN_ATTR_TENSOR_DATA_TYPE}); the
 * values are checked against the installed header by {@code CudnnConstantsDump} (test sources).
 *
 * <p>Library discovery goes through {@link CudaLibraries} ({@code DIT4J_CUDA_LIBS}, the loader path,
 * {@code CUDA_HOME}, {@code /usr/local/cuda*}, Python {@code nvidia/*}/lib wheel folders). A missing library
 * gives one {@link UnsatisfiedLinkError} listing every place searched.
 */
public final class Cudnn {

    // ------------------------------------------------------------------ enums (values of cudnn_graph.h, cuDNN 9)

    /** {@code cudnnBackendDescriptorType_t}, prefix {@code CUDNN_BACKEND_}. */
    public enum DescriptorType {
        POINTWISE_DESCRIPTOR(0), CONVOLUTION_DESCRIPTOR(1), ENGINE_DESCRIPTOR(2), ENGINECFG_DESCRIPTOR(3), ENGINEHEUR_DESCRIPTOR(4),
        EXECUTION_PLAN_DESCRIPTOR(5), KNOB_CHOICE_DESCRIPTOR(7), KNOB_INFO_DESCRIPTOR(8),
        OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR(10), OPERATION_POINTWISE_DESCRIPTOR(13),
        OPERATIONGRAPH_DESCRIPTOR(15), VARIANT_PACK_DESCRIPTOR(16), TENSOR_DESCRIPTOR(17), MATMUL_DESCRIPTOR(18),
        OPERATION_MATMUL_DESCRIPTOR(19), REDUCTION_DESCRIPTOR(21), OPERATION_REDUCTION_DESCRIPTOR(22),
        /** The dedicated fused-attention operation (cuDNN ≥ 9.13). */
        OPERATION_SDPA_FWD_DESCRIPTOR(41);
        public final int value;
        DescriptorType(int v) { value = v; }
        public String cName() { return "CUDNN_BACKEND_" + name(); }
    }

    /** {@code cudnnBackendAttributeType_t}, prefix {@code CUDNN_TYPE_}. */
    public enum AttrType {
        HANDLE(0), DATA_TYPE(1), BOOLEAN(2), INT64(3), FLOAT(4), DOUBLE(5), VOID_PTR(6), CONVOLUTION_MODE(7), HEUR_MODE(8),
        KNOB_TYPE(9),
        NUMERICAL_NOTE(11), POINTWISE_MODE(14), BACKEND_DESCRIPTOR(15), REDUCTION_OPERATOR_TYPE(18),
        BEHAVIOR_NOTE(19), INT32(23), CHAR(24);
        public final int value;
        AttrType(int v) { value = v; }
        public String cName() { return "CUDNN_TYPE_" + name(); }
    }

    /** {@code cudnnBackendAttributeName_t}, prefix {@code CUDNN_ATTR_}. */
    public enum Attr {
        POINTWISE_MODE(0), POINTWISE_MATH_PREC(1),
        CONVOLUTION_COMP_TYPE(100), CONVOLUTION_CONV_MODE(101), CONVOLUTION_DILATIONS(102), CONVOLUTION_FILTER_STRIDES(103),
        CONVOLUTION_POST_PADDINGS(104), CONVOLUTION_PRE_PADDINGS(105), CONVOLUTION_SPATIAL_DIMS(106),
        ENGINEHEUR_MODE(200), ENGINEHEUR_OPERATION_GRAPH(201), ENGINEHEUR_RESULTS(202),
        ENGINECFG_ENGINE(300), ENGINECFG_KNOB_CHOICES(302), ENGINECFG_WORKSPACE_SIZE(303),
        EXECUTION_PLAN_HANDLE(400), EXECUTION_PLAN_ENGINE_CONFIG(401), EXECUTION_PLAN_WORKSPACE_SIZE(402),
        EXECUTION_PLAN_JSON_REPRESENTATION(405),
        KNOB_CHOICE_KNOB_TYPE(600), KNOB_CHOICE_KNOB_VALUE(601),
        OPERATION_CONVOLUTION_FORWARD_ALPHA(700), OPERATION_CONVOLUTION_FORWARD_BETA(701),
        OPERATION_CONVOLUTION_FORWARD_CONV_DESC(702), OPERATION_CONVOLUTION_FORWARD_W(703),
        OPERATION_CONVOLUTION_FORWARD_X(704), OPERATION_CONVOLUTION_FORWARD_Y(705),
        OPERATION_POINTWISE_PW_DESCRIPTOR(750), OPERATION_POINTWISE_XDESC(751), OPERATION_POINTWISE_BDESC(752),
        OPERATION_POINTWISE_YDESC(753), OPERATION_POINTWISE_ALPHA1(754), OPERATION_POINTWISE_ALPHA2(755),
        OPERATIONGRAPH_HANDLE(800), OPERATIONGRAPH_OPS(801), OPERATIONGRAPH_ENGINE_GLOBAL_COUNT(802),
        TENSOR_BYTE_ALIGNMENT(900), TENSOR_DATA_TYPE(901), TENSOR_DIMENSIONS(902), TENSOR_STRIDES(903),
        TENSOR_UNIQUE_ID(906), TENSOR_IS_VIRTUAL(907), TENSOR_IS_BY_VALUE(908),
        VARIANT_PACK_UNIQUE_IDS(1000), VARIANT_PACK_DATA_POINTERS(1001), VARIANT_PACK_WORKSPACE(1003),
        KNOB_INFO_TYPE(1200), KNOB_INFO_MAXIMUM_VALUE(1201), KNOB_INFO_MINIMUM_VALUE(1202), KNOB_INFO_STRIDE(1203),
        ENGINE_OPERATION_GRAPH(1300), ENGINE_GLOBAL_INDEX(1301), ENGINE_KNOB_INFO(1302), ENGINE_NUMERICAL_NOTE(1303),
        ENGINE_BEHAVIOR_NOTE(1305),
        MATMUL_COMP_TYPE(1500),
        OPERATION_MATMUL_ADESC(1520), OPERATION_MATMUL_BDESC(1521), OPERATION_MATMUL_CDESC(1522),
        OPERATION_MATMUL_DESC(1523),
        REDUCTION_OPERATOR(1600), REDUCTION_COMP_TYPE(1601),
        OPERATION_REDUCTION_XDESC(1610), OPERATION_REDUCTION_YDESC(1611), OPERATION_REDUCTION_DESC(1612),
        OPERATION_SDPA_FWD_QDESC(2800), OPERATION_SDPA_FWD_KDESC(2801), OPERATION_SDPA_FWD_VDESC(2802),
        OPERATION_SDPA_FWD_ODESC(2803), OPERATION_SDPA_FWD_STATSDESC(2804), OPERATION_SDPA_FWD_SCALEDESC(2805);
        public final int value;
        Attr(int v) { value = v; }
        public String cName() { return "CUDNN_ATTR_" + name(); }
    }

    /** {@code cudnnDataType_t}, prefix {@code CUDNN_DATA_}. */
    public enum DataType {
        FLOAT(0), DOUBLE(1), HALF(2), INT8(3), INT32(4), UINT8(6), BFLOAT16(9), INT64(10), BOOLEAN(11),
        FP8_E4M3(12), FP8_E5M2(13);
        public final int value;
        DataType(int v) { value = v; }
        public String cName() { return "CUDNN_DATA_" + name(); }
    }

    /** {@code cudnnPointwiseMode_t}, prefix {@code CUDNN_POINTWISE_}. */
    public enum PointwiseMode {
        ADD(0), MUL(1), MIN(2), MAX(3), SQRT(4), DIV(6), SUB(9), EXP(13), LOG(15), NEG(16), RECIPROCAL(22);
        public final int value;
        PointwiseMode(int v) { value = v; }
        public String cName() { return "CUDNN_POINTWISE_" + name(); }
    }

    /** {@code cudnnReduceTensorOp_t}, prefix {@code CUDNN_REDUCE_TENSOR_}. */
    public enum ReduceOp {
        ADD(0), MUL(1), MIN(2), MAX(3), AMAX(4), AVG(5);
        public final int value;
        ReduceOp(int v) { value = v; }
        public String cName() { return "CUDNN_REDUCE_TENSOR_" + name(); }
    }

    /** {@code cudnnBackendHeurMode_t}, prefix {@code CUDNN_HEUR_MODE_}. */
    public enum HeurMode {
        INSTANT(0), B(1), FALLBACK(2), A(3);
        public final int value;
        HeurMode(int v) { value = v; }
        public String cName() { return "CUDNN_HEUR_MODE_" + name(); }
    }

    /** {@code cudnnBackendKnobType_t}, prefix {@code CUDNN_KNOB_TYPE_}. */
    public enum KnobType {
        SWIZZLE(1), TILE_SIZE(2), EDGE(4), MULTIPLY(11), SPLIT_K_BUF(12), TILEK(13), STAGES(14), REDUCTION_MODE(15),
        SPLIT_K_SLC(17), SPECFILT(23), KERNEL_CFG(24), WORKSPACE(25), TILE_CGA_M(27), TILE_CGA_N(28), BLOCK_SIZE(29),
        OCCUPANCY(30), ARRAY_SIZE_PER_THREAD(31), SPLIT_COLS(33), TILE_ROWS(34), TILE_COLS(35), LOAD_SIZE(36);
        public final int value;
        KnobType(int v) { value = v; }
        public String cName() { return "CUDNN_KNOB_TYPE_" + name(); }
    }

    /** {@code cudnnBackendNumericalNote_t}, prefix {@code CUDNN_NUMERICAL_NOTE_}. */
    public enum NumericalNote {
        TENSOR_CORE(0), DOWN_CONVERT_INPUTS(1), REDUCED_PRECISION_REDUCTION(2), FFT(3), NONDETERMINISTIC(4), WINOGRAD(5),
        WINOGRAD_TILE_4x4(6), WINOGRAD_TILE_6x6(7), WINOGRAD_TILE_13x13(8);
        public final int value;
        NumericalNote(int v) { value = v; }
        public String cName() { return "CUDNN_NUMERICAL_NOTE_" + name(); }
    }

    /** {@code cudnnConvolutionMode_t}: CUDNN_CONVOLUTION = 0, CUDNN_CROSS_CORRELATION = 1 (what torch computes). */
    public static final int CROSS_CORRELATION = 1;

    /** {@code cudnnBackendBehaviorNote_t}, prefix {@code CUDNN_BEHAVIOR_NOTE_}. */
    public enum BehaviorNote {
        RUNTIME_COMPILATION(0), SUPPORTS_CUDA_GRAPH_NATIVE_API(3);
        public final int value;
        BehaviorNote(int v) { value = v; }
        public String cName() { return "CUDNN_BEHAVIOR_NOTE_" + name(); }
    }

    public static final int STATUS_SUCCESS = 0;

    // ------------------------------------------------------------------ loading

    private static final String LIBRARY = "libcudnn.so.9";
    private static volatile Cudnn instance;
    private static volatile Throwable loadFailure;

    /** The process-wide binding; loads libcudnn on first use. */
    public static Cudnn get() {
        Cudnn c = instance;
        if (c != null) return c;
        synchronized (Cudnn.class) {
            if (instance != null) return instance;
            if (loadFailure != null) throw new UnsatisfiedLinkError(loadFailure.getMessage());
            try {
                instance = new Cudnn(findLibrary());
            } catch (UnsatisfiedLinkError e) {
                loadFailure = e;
                throw e;
            }
            return instance;
        }
    }

    /** True when libcudnn can be loaded here (does not touch a GPU). */
    public static boolean isAvailable() {
        try {
            get();
            return true;
        } catch (UnsatisfiedLinkError e) {
            return false;
        }
    }

    /** Where the library was found, as far as dit4j knows (the override folder, or the project-wide lookup). */
    public String libraryLocation() { return location; }

    private record Found(SymbolLookup lookup, String location) {}

    /**
     * Loads libcudnn through {@link CudaLibraries} (the project-wide search order and error message). For a
     * folder named in {@code DIT4J_CUDA_LIBS}, the cuDNN sub-libraries there (which libcudnn dlopens by soname)
     * are loaded first, so a pip-wheel folder off the loader path works too; other folders are left alone so
     * that sub-libraries of another cuDNN version are never mixed in.
     */
    private static Found findLibrary() {
        String where = "the project-wide search (CudaLibraries: DIT4J_CUDA_LIBS, loader path, CUDA_HOME, /usr/local/cuda*, Python wheels)";
        String override = System.getenv("DIT4J_CUDA_LIBS");
        if (override != null) {
            for (String d : override.split(":")) {
                if (d.isBlank()) continue;
                Path dir = Path.of(d);
                if (Files.isRegularFile(dir.resolve(LIBRARY))) {
                    preloadSubLibraries(dir);
                    where = dir.resolve(LIBRARY).toString();
                    break;
                }
            }
        }
        try {
            return new Found(CudaLibraries.load(CudaLibraries.Lib.CUDNN), where);
        } catch (CudaException e) {
            throw new UnsatisfiedLinkError("cuDNN 9 is needed for fused attention (" + LIBRARY + "): " + e.getMessage());
        }
    }

    private static void preloadSubLibraries(Path dir) {
        for (String sub : new String[] {"libcudnn_graph.so.9", "libcudnn_engines_precompiled.so.9",
                "libcudnn_engines_runtime_compiled.so.9", "libcudnn_heuristic.so.9", "libcudnn_ops.so.9"}) {
            Path p = dir.resolve(sub);
            if (!Files.isRegularFile(p)) continue;
            try {
                SymbolLookup.libraryLookup(p, Arena.global());
            } catch (IllegalArgumentException ignored) {
                // libcudnn reports its own loading error if the sub-library is really needed
            }
        }
    }

    // ------------------------------------------------------------------ handles

    private final String location;
    private final MethodHandle getVersion, getErrorString, getLastErrorString, create, destroy, setStream,
            backendCreate, backendDestroy, backendFinalize, backendSetAttribute, backendGetAttribute, backendExecute;

    private Cudnn(Found found) {
        this.location = found.location();
        SymbolLookup l = found.lookup();
        getVersion = h(l, "cudnnGetVersion", FunctionDescriptor.of(JAVA_LONG));
        getErrorString = h(l, "cudnnGetErrorString", FunctionDescriptor.of(ADDRESS, JAVA_INT));
        getLastErrorString = h(l, "cudnnGetLastErrorString", FunctionDescriptor.ofVoid(ADDRESS, JAVA_LONG));
        create = h(l, "cudnnCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        destroy = h(l, "cudnnDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        setStream = h(l, "cudnnSetStream", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        backendCreate = h(l, "cudnnBackendCreateDescriptor", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        backendDestroy = h(l, "cudnnBackendDestroyDescriptor", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        backendFinalize = h(l, "cudnnBackendFinalize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        backendSetAttribute = h(l, "cudnnBackendSetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS));
        backendGetAttribute = h(l, "cudnnBackendGetAttribute",
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        backendExecute = h(l, "cudnnBackendExecute", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    }

    private MethodHandle h(SymbolLookup l, String name, FunctionDescriptor fd) {
        MemorySegment sym = l.find(name).orElseThrow(() -> new UnsatisfiedLinkError(
                "symbol " + name + " not found in " + location + "; is this cuDNN 9 or newer?"));
        return Linker.nativeLinker().downcallHandle(sym, fd);
    }

    // ------------------------------------------------------------------ plain functions

    /** {@code cudnnGetVersion()}: e.g. 91002 for 9.10.2. */
    public long version() {
        try {
            return (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** cuDNN's name for a status code, e.g. "CUDNN_STATUS_NOT_SUPPORTED". */
    public String errorString(int status) {
        try {
            MemorySegment s = (MemorySegment) getErrorString.invokeExact(status);
            return s.equals(MemorySegment.NULL) ? "?" : s.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code cudnnGetLastErrorString}: the detailed message of the calling thread's last failure ("" if none). */
    public String lastErrorString() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(2048);
            getLastErrorString.invokeExact(buf, 2048L);
            return buf.getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Throws {@link CudnnException} naming {@code call} unless {@code status} is success. */
    public void check(int status, String call) {
        if (status != STATUS_SUCCESS) throw new CudnnException(call, status, errorString(status), lastErrorString());
    }

    /** {@code cudnnCreate}: a new handle bound to the current CUDA context/device. Destroy with {@link #destroy}. */
    public MemorySegment create() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            check((int) create.invokeExact(out), "cudnnCreate");
            return out.get(ADDRESS, 0);
        } catch (CudnnException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void destroy(MemorySegment handle) {
        try {
            check((int) destroy.invokeExact(handle), "cudnnDestroy");
        } catch (CudnnException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code cudnnSetStream}: later executes on this handle are queued on {@code stream} (a CUstream / cudaStream_t). */
    public void setStream(MemorySegment handle, MemorySegment stream) {
        try {
            check((int) setStream.invokeExact(handle, stream), "cudnnSetStream");
        } catch (CudnnException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {@code cudnnBackendExecute(handle, plan, variantPack)}: enqueues the plan on the handle's stream. */
    public void execute(MemorySegment handle, Descriptor plan, Descriptor variantPack) {
        int st;
        try {
            st = (int) backendExecute.invokeExact(handle, plan.address(), variantPack.address());
        } catch (Throwable t) {
            throw rethrow(t);
        }
        check(st, "cudnnBackendExecute");
    }

    /** {@code cudnnBackendCreateDescriptor}. */
    public Descriptor createDescriptor(DescriptorType type) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment out = a.allocate(ADDRESS);
            int st = (int) backendCreate.invokeExact(type.value, out);
            check(st, "cudnnBackendCreateDescriptor(" + type.cName() + ")");
            return new Descriptor(this, type, out.get(ADDRESS, 0));
        } catch (CudnnException e) {
            throw e;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int rawSet(MemorySegment desc, Attr attr, AttrType type, long count, MemorySegment elems) {
        try {
            return (int) backendSetAttribute.invokeExact(desc, attr.value, type.value, count, elems);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int rawGet(MemorySegment desc, Attr attr, AttrType type, long requested, MemorySegment count, MemorySegment elems) {
        try {
            return (int) backendGetAttribute.invokeExact(desc, attr.value, type.value, requested, count, elems);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int rawFinalize(MemorySegment desc) {
        try {
            return (int) backendFinalize.invokeExact(desc);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    int rawDestroy(MemorySegment desc) {
        try {
            return (int) backendDestroy.invokeExact(desc);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    // ------------------------------------------------------------------ descriptors

    /**
     * One backend descriptor ({@code cudnnBackendDescriptor_t}). Typed setters for the attribute types
     * dit4j uses; {@link #finish()} is {@code cudnnBackendFinalize}; {@link #close()} destroys it.
     * Not thread-safe.
     */
    public static final class Descriptor implements AutoCloseable {
        private final Cudnn cudnn;
        private final DescriptorType type;
        private MemorySegment address;

        Descriptor(Cudnn cudnn, DescriptorType type, MemorySegment address) {
            this.cudnn = cudnn;
            this.type = type;
            this.address = address;
        }

        public DescriptorType type() { return type; }

        public MemorySegment address() {
            if (address == null) throw new IllegalStateException(type.cName() + " descriptor used after close()");
            return address;
        }

        private Descriptor set(Attr attr, AttrType t, long count, MemorySegment elems) {
            cudnn.check(cudnn.rawSet(address(), attr, t, count, elems),
                    "cudnnBackendSetAttribute(" + type.cName() + ", " + attr.cName() + ")");
            return this;
        }

        public Descriptor setInt64(Attr attr, long... values) {
            try (Arena a = Arena.ofConfined()) {
                return set(attr, AttrType.INT64, values.length, a.allocateFrom(JAVA_LONG, values));
            }
        }

        public Descriptor setBoolean(Attr attr, boolean value) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment m = a.allocate(1);
                m.set(ValueLayout.JAVA_BYTE, 0, (byte) (value ? 1 : 0));
                return set(attr, AttrType.BOOLEAN, 1, m);
            }
        }

        public Descriptor setFloat(Attr attr, float value) {
            try (Arena a = Arena.ofConfined()) {
                return set(attr, AttrType.FLOAT, 1, a.allocateFrom(ValueLayout.JAVA_FLOAT, value));
            }
        }

        /** An enum-valued attribute (data type, pointwise mode, reduction operator, heuristic mode …). */
        public Descriptor setEnum(Attr attr, AttrType enumType, int value) {
            try (Arena a = Arena.ofConfined()) {
                return set(attr, enumType, 1, a.allocateFrom(JAVA_INT, value));
            }
        }

        public Descriptor setDataType(Attr attr, DataType dt) { return setEnum(attr, AttrType.DATA_TYPE, dt.value); }

        public Descriptor setHandle(Attr attr, MemorySegment handle) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment m = a.allocate(ADDRESS);
                m.set(ADDRESS, 0, handle);
                return set(attr, AttrType.HANDLE, 1, m);
            }
        }

        public Descriptor setDescriptors(Attr attr, Descriptor... ds) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment m = a.allocate(ADDRESS, ds.length);
                for (int i = 0; i < ds.length; i++) m.setAtIndex(ADDRESS, i, ds[i].address());
                return set(attr, AttrType.BACKEND_DESCRIPTOR, ds.length, m);
            }
        }

        /** Void-pointer array attribute from a prepared native array of {@code count} addresses. */
        public Descriptor setPointers(Attr attr, MemorySegment addresses, long count) {
            return set(attr, AttrType.VOID_PTR, count, addresses);
        }

        /** Int64 array attribute from a prepared native array (no copy). */
        public Descriptor setInt64(Attr attr, MemorySegment values, long count) {
            return set(attr, AttrType.INT64, count, values);
        }

        public Descriptor setPointer(Attr attr, MemorySegment pointer) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment m = a.allocate(ADDRESS);
                m.set(ADDRESS, 0, pointer);
                return set(attr, AttrType.VOID_PTR, 1, m);
            }
        }

        /** {@code cudnnBackendFinalize}. */
        public Descriptor finish() {
            cudnn.check(cudnn.rawFinalize(address()), "cudnnBackendFinalize(" + type.cName() + ")");
            return this;
        }

        /** {@code cudnnBackendFinalize} returning the raw status (for probing whether an engine accepts a graph). */
        public int tryFinish() {
            return cudnn.rawFinalize(address());
        }

        public long getInt64(Attr attr) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment count = a.allocate(JAVA_LONG);
                MemorySegment v = a.allocate(JAVA_LONG);
                cudnn.check(cudnn.rawGet(address(), attr, AttrType.INT64, 1, count, v),
                        "cudnnBackendGetAttribute(" + type.cName() + ", " + attr.cName() + ")");
                return v.get(JAVA_LONG, 0);
            }
        }

        /** An enum-array attribute (e.g. behaviour or numerical notes); at most {@code max} entries. */
        public int[] getEnums(Attr attr, AttrType enumType, int max) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment count = a.allocate(JAVA_LONG);
                MemorySegment v = a.allocate(JAVA_INT, max);
                cudnn.check(cudnn.rawGet(address(), attr, enumType, max, count, v),
                        "cudnnBackendGetAttribute(" + type.cName() + ", " + attr.cName() + ")");
                int n = (int) Math.min(max, count.get(JAVA_LONG, 0));
                int[] out = new int[n];
                for (int i = 0; i < n; i++) out[i] = v.getAtIndex(JAVA_INT, i);
                return out;
            }
        }

        /** A string attribute (e.g. a plan's JSON representation); null if cuDNN refuses. */
        public String getString(Attr attr) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment count = a.allocate(JAVA_LONG);
                if (cudnn.rawGet(address(), attr, AttrType.CHAR, 0, count, MemorySegment.NULL) != STATUS_SUCCESS) return null;
                long n = count.get(JAVA_LONG, 0);
                if (n <= 0) return "";
                MemorySegment v = a.allocate(n + 1);
                if (cudnn.rawGet(address(), attr, AttrType.CHAR, n, count, v) != STATUS_SUCCESS) return null;
                return v.getString(0);
            }
        }

        /**
         * Reads a descriptor-array attribute into freshly created descriptors of {@code elementType}
         * (cuDNN fills pre-created descriptors). Returns as many as cuDNN reports (≤ {@code max}).
         */
        public List<Descriptor> getDescriptors(Attr attr, DescriptorType elementType, int max) {
            List<Descriptor> created = new ArrayList<>();
            try (Arena a = Arena.ofConfined()) {
                MemorySegment count = a.allocate(JAVA_LONG);
                MemorySegment arr = a.allocate(ADDRESS, Math.max(1, max));
                for (int i = 0; i < max; i++) {
                    Descriptor d = cudnn.createDescriptor(elementType);
                    created.add(d);
                    arr.setAtIndex(ADDRESS, i, d.address());
                }
                cudnn.check(cudnn.rawGet(address(), attr, AttrType.BACKEND_DESCRIPTOR, max, count, arr),
                        "cudnnBackendGetAttribute(" + type.cName() + ", " + attr.cName() + ")");
                int n = (int) Math.min(max, count.get(JAVA_LONG, 0));
                for (int i = n; i < created.size(); i++) created.get(i).close();
                return new ArrayList<>(created.subList(0, n));
            } catch (RuntimeException e) {
                for (Descriptor d : created) d.close();
                throw e;
            }
        }

        /** Number of elements of a descriptor-array attribute (e.g. heuristic results). */
        public long countDescriptors(Attr attr) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment count = a.allocate(JAVA_LONG);
                cudnn.check(cudnn.rawGet(address(), attr, AttrType.BACKEND_DESCRIPTOR, 0, count, MemorySegment.NULL),
                        "cudnnBackendGetAttribute(" + type.cName() + ", " + attr.cName() + ", count)");
                return count.get(JAVA_LONG, 0);
            }
        }

        /** {@code cudnnBackendDestroyDescriptor}; idempotent. */
        @Override
        public void close() {
            if (address != null) {
                cudnn.rawDestroy(address);
                address = null;
            }
        }
    }

}
