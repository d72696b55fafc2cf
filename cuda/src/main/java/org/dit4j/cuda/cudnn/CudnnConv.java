package org.dit4j.cuda.cudnn;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.cuda.cudnn.Cudnn.Attr;
import org.dit4j.cuda.cudnn.Cudnn.AttrType;
import org.dit4j.cuda.cudnn.Cudnn.DataType;
import org.dit4j.cuda.cudnn.Cudnn.Descriptor;
import org.dit4j.cuda.cudnn.Cudnn.DescriptorType;
import org.dit4j.cuda.cudnn.Cudnn.HeurMode;
import org.dit4j.cuda.cudnn.Cudnn.NumericalNote;

/**
 * Forward convolution (torch's cross-correlation, zero padding, no dilation, one group) through cuDNN's graph API:
 * {@code y = conv(x, w)} for 2-D ({@code x:[N, C, H, W]}) and 3-D ({@code x:[N, C, T, H, W]}) inputs, packed
 * channels-first layouts (what the rest of dit4j uses), BF16 or F16 in and out, f32 accumulation. No bias: the caller
 * adds it.
 *
 * <p>One {@link Plan} per {@link Shape}, built on first use (graph, heuristics mode A then fallback, the first engine
 * config that finalizes and carries no reduced-precision, down-converting, FFT or Winograd numerical note) and cached.
 * {@link Plan#execute} only binds pointers and enqueues: no allocation, no host synchronisation.
 *
 * <p>One instance owns one cuDNN handle on the CUDA context current at construction; one thread at a time.
 */
public final class CudnnConv implements AutoCloseable {

    /**
     * Everything a plan depends on. {@code x} = [N, C, spatial...], {@code w} = [O, C, kernel...], the output's
     * spatial dims follow from stride and padding (same padding before and after).
     */
    public record Shape(DType dtype, long[] x, long[] w, long[] stride, long[] padding) {
        public Shape {
            if (dtype != DType.BF16 && dtype != DType.F16)
                throw new IllegalArgumentException("cuDNN convolution here takes BF16 or F16 tensors, got " + dtype);
            int sd = x.length - 2;
            if ((sd != 2 && sd != 3) || w.length != x.length || stride.length != sd || padding.length != sd)
                throw new IllegalArgumentException("convolution shape needs x [N, C, 2 or 3 spatial dims], w of the same rank "
                        + "and one stride and padding per spatial dim, got x " + Arrays.toString(x) + ", w " + Arrays.toString(w)
                        + ", stride " + Arrays.toString(stride) + ", padding " + Arrays.toString(padding));
            if (w[1] != x[1])
                throw new IllegalArgumentException("w " + Arrays.toString(w) + " must take the " + x[1] + " channels of x");
            x = x.clone();
            w = w.clone();
            stride = stride.clone();
            padding = padding.clone();
        }

        public long[] y() {
            int sd = x.length - 2;
            long[] y = new long[x.length];
            y[0] = x[0];
            y[1] = w[0];
            for (int i = 0; i < sd; i++) y[2 + i] = (x[2 + i] + 2 * padding[i] - w[2 + i]) / stride[i] + 1;
            return y;
        }

        /** 2·N·O·C·Π(out spatial)·Π(kernel). */
        public double flops() {
            long[] y = y();
            double f = 2.0 * y[0] * y[1] * x[1];
            for (int i = 2; i < y.length; i++) f *= y[i] * w[i];
            return f;
        }

        @Override public boolean equals(Object o) {
            return o instanceof Shape s && s.dtype == dtype && Arrays.equals(s.x, x) && Arrays.equals(s.w, w)
                    && Arrays.equals(s.stride, stride) && Arrays.equals(s.padding, padding);
        }

        @Override public int hashCode() {
            return ((dtype.hashCode() * 31 + Arrays.hashCode(x)) * 31 + Arrays.hashCode(w)) * 31
                    + Arrays.hashCode(stride) * 7 + Arrays.hashCode(padding);
        }

        @Override public String toString() {
            return "conv x" + Arrays.toString(x) + " w" + Arrays.toString(w) + " stride " + Arrays.toString(stride)
                    + " pad " + Arrays.toString(padding) + " " + dtype;
        }
    }

    private static final long UID_X = 1, UID_W = 2, UID_Y = 3;
    /** Engines with these notes compute less exactly than an f32-accumulating product of the bf16 inputs. */
    private static final int[] REFUSED_NOTES = {NumericalNote.DOWN_CONVERT_INPUTS.value,
            NumericalNote.REDUCED_PRECISION_REDUCTION.value, NumericalNote.FFT.value, NumericalNote.WINOGRAD.value,
            NumericalNote.WINOGRAD_TILE_4x4.value, NumericalNote.WINOGRAD_TILE_6x6.value, NumericalNote.WINOGRAD_TILE_13x13.value};

    private final Cudnn cudnn;
    private final MemorySegment handle;
    private final Map<Shape, Plan> cache = new HashMap<>();
    private final List<Descriptor> retained = new ArrayList<>();
    private MemorySegment boundStream;
    private boolean closed;

    /** Creates a cuDNN handle on the current CUDA context. */
    public CudnnConv() { this(Cudnn.get()); }

    public CudnnConv(Cudnn cudnn) {
        this.cudnn = cudnn;
        this.handle = cudnn.create();
    }

    /** The cached plan for {@code shape}, building it on first use; throws {@link CudnnException} if no engine runs it. */
    public synchronized Plan plan(Shape shape) {
        if (closed) throw new IllegalStateException("CudnnConv is closed");
        Plan p = cache.get(shape);
        if (p == null) {
            p = build(shape, 1).getFirst();
            cache.put(shape, p);
        }
        return p;
    }

    /**
     * The cached plan for {@code shape}; on first use, up to {@code maxCandidates} engine configs (heuristics order)
     * are timed on the caller's tensors (y is overwritten; median of 3 after a warm-up each, on {@code stream}, which
     * this waits for) and the fastest is kept, the heuristics' first unless another is at least 3 % faster. While
     * {@code stream} is being captured into a CUDA graph, or with {@code maxCandidates} ≤ 1, the first is taken
     * untimed.
     */
    public synchronized Plan tunedPlan(Shape shape, long x, long w, long y, long stream, int maxCandidates) {
        if (closed) throw new IllegalStateException("CudnnConv is closed");
        Plan cached = cache.get(shape);
        if (cached != null) return cached;
        CudaDriver drv = CudaDriver.get();
        if (maxCandidates <= 1 || drv.streamIsCapturing(stream)) return plan(shape);
        List<Plan> cands = build(shape, maxCandidates);
        Plan best = cands.getFirst();
        if (cands.size() > 1) {
            long maxWs = 0;
            for (Plan p : cands) maxWs = Math.max(maxWs, p.workspaceSize());
            long ws = maxWs > 0 ? drv.memAlloc(maxWs) : 0;
            long e0 = drv.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = drv.eventCreate(CudaDriver.EVENT_DEFAULT);
            try {
                double bestMs = Double.POSITIVE_INFINITY;
                boolean timedAny = false;
                for (Plan p : cands) {
                    double ms;
                    try {
                        p.execute(x, w, y, ws, stream);
                        float[] t = new float[3];
                        for (int r = 0; r < t.length; r++) {
                            drv.eventRecord(e0, stream);
                            p.execute(x, w, y, ws, stream);
                            drv.eventRecord(e1, stream);
                            drv.eventSynchronize(e1);
                            t[r] = drv.eventElapsedMs(e0, e1);
                        }
                        Arrays.sort(t);
                        ms = t[1];
                    } catch (CudnnException e) {
                        continue;   // an engine that cannot run after all
                    }
                    p.tunedMillis = ms;
                    if (!timedAny || ms < bestMs * 0.97) {   // leave the heuristics' order only for a clear gain
                        best = p;
                        bestMs = ms;
                    }
                    timedAny = true;
                }
            } finally {
                drv.eventDestroy(e0);
                drv.eventDestroy(e1);
                if (ws != 0) drv.memFree(ws);
            }
            best.candidatesTimed = cands.size();
        }
        for (Plan p : cands) if (p != best) p.close();
        cache.put(shape, best);
        return best;
    }

    /** Number of cached plans. */
    public synchronized int planCount() { return cache.size(); }

    private static long[] packedStrides(long[] dims) {
        long[] s = new long[dims.length];
        long acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) {
            s[i] = acc;
            acc *= dims[i];
        }
        return s;
    }

    private Descriptor tensor(List<Descriptor> owned, long uid, DataType dt, long[] dims) {
        Descriptor t = cudnn.createDescriptor(DescriptorType.TENSOR_DESCRIPTOR);
        owned.add(t);
        return t.setDataType(Attr.TENSOR_DATA_TYPE, dt)
                .setInt64(Attr.TENSOR_DIMENSIONS, dims)
                .setInt64(Attr.TENSOR_STRIDES, packedStrides(dims))
                .setInt64(Attr.TENSOR_UNIQUE_ID, uid)
                .setInt64(Attr.TENSOR_BYTE_ALIGNMENT, 16)
                .finish();
    }

    private List<Plan> build(Shape s, int max) {
        long t0 = System.nanoTime();
        List<Descriptor> owned = new ArrayList<>();
        try {
            DataType io = s.dtype() == DType.BF16 ? DataType.BFLOAT16 : DataType.HALF;
            int sd = s.x().length - 2;
            Descriptor x = tensor(owned, UID_X, io, s.x());
            Descriptor w = tensor(owned, UID_W, io, s.w());
            Descriptor y = tensor(owned, UID_Y, io, s.y());
            long[] ones = new long[sd];
            Arrays.fill(ones, 1);
            Descriptor conv = cudnn.createDescriptor(DescriptorType.CONVOLUTION_DESCRIPTOR);
            owned.add(conv);
            conv.setInt64(Attr.CONVOLUTION_SPATIAL_DIMS, sd)
                    .setDataType(Attr.CONVOLUTION_COMP_TYPE, DataType.FLOAT)
                    .setEnum(Attr.CONVOLUTION_CONV_MODE, AttrType.CONVOLUTION_MODE, Cudnn.CROSS_CORRELATION)
                    .setInt64(Attr.CONVOLUTION_PRE_PADDINGS, s.padding())
                    .setInt64(Attr.CONVOLUTION_POST_PADDINGS, s.padding())
                    .setInt64(Attr.CONVOLUTION_DILATIONS, ones)
                    .setInt64(Attr.CONVOLUTION_FILTER_STRIDES, s.stride())
                    .finish();
            Descriptor op = cudnn.createDescriptor(DescriptorType.OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR);
            owned.add(op);
            op.setDescriptors(Attr.OPERATION_CONVOLUTION_FORWARD_X, x)
                    .setDescriptors(Attr.OPERATION_CONVOLUTION_FORWARD_W, w)
                    .setDescriptors(Attr.OPERATION_CONVOLUTION_FORWARD_Y, y)
                    .setDescriptors(Attr.OPERATION_CONVOLUTION_FORWARD_CONV_DESC, conv)
                    .setFloat(Attr.OPERATION_CONVOLUTION_FORWARD_ALPHA, 1f)
                    .setFloat(Attr.OPERATION_CONVOLUTION_FORWARD_BETA, 0f)
                    .finish();
            Descriptor graph = cudnn.createDescriptor(DescriptorType.OPERATIONGRAPH_DESCRIPTOR);
            owned.add(graph);
            graph.setHandle(Attr.OPERATIONGRAPH_HANDLE, handle).setDescriptors(Attr.OPERATIONGRAPH_OPS, op).finish();
            List<Plan> ps = plans(s, graph, owned, max);
            for (Plan p : ps) p.buildMillis = (System.nanoTime() - t0) / 1e6;
            retained.addAll(owned);
            return ps;
        } catch (RuntimeException e) {
            for (Descriptor d : owned) d.close();
            throw e;
        }
    }

    private List<Plan> plans(Shape s, Descriptor graph, List<Descriptor> owned, int max) {
        List<String> refusals = new ArrayList<>();
        List<Plan> out = new ArrayList<>();
        for (HeurMode mode : new HeurMode[] {HeurMode.A, HeurMode.FALLBACK}) {
            Descriptor heur = cudnn.createDescriptor(DescriptorType.ENGINEHEUR_DESCRIPTOR);
            owned.add(heur);
            heur.setDescriptors(Attr.ENGINEHEUR_OPERATION_GRAPH, graph).setEnum(Attr.ENGINEHEUR_MODE, AttrType.HEUR_MODE, mode.value);
            int st = heur.tryFinish();
            if (st != Cudnn.STATUS_SUCCESS) {
                refusals.add("heuristics " + mode + ": " + cudnn.errorString(st) + " " + cudnn.lastErrorString().strip());
                continue;
            }
            long n = heur.countDescriptors(Attr.ENGINEHEUR_RESULTS);
            if (n <= 0) {
                refusals.add("heuristics " + mode + ": no engine configs");
                continue;
            }
            List<Descriptor> cfgs = heur.getDescriptors(Attr.ENGINEHEUR_RESULTS, DescriptorType.ENGINECFG_DESCRIPTOR, (int) n);
            owned.addAll(cfgs);
            for (Descriptor cfg : cfgs) {
                if (out.size() >= max) break;
                long engine = -1;
                try {
                    List<Descriptor> eng = cfg.getDescriptors(Attr.ENGINECFG_ENGINE, DescriptorType.ENGINE_DESCRIPTOR, 1);
                    owned.addAll(eng);
                    if (!eng.isEmpty()) {
                        engine = eng.getFirst().getInt64(Attr.ENGINE_GLOBAL_INDEX);
                        long e = engine;
                        if (out.stream().anyMatch(p -> p.engineIndex == e)) continue;
                        int[] notes = eng.getFirst().getEnums(Attr.ENGINE_NUMERICAL_NOTE, AttrType.NUMERICAL_NOTE, 16);
                        String bad = refusedNote(notes);
                        if (bad != null) {
                            refusals.add("engine " + engine + ": numerical note " + bad);
                            continue;
                        }
                    }
                } catch (CudnnException e) {
                    // no engine information: try the config as it is
                }
                Descriptor plan = cudnn.createDescriptor(DescriptorType.EXECUTION_PLAN_DESCRIPTOR);
                plan.setHandle(Attr.EXECUTION_PLAN_HANDLE, handle).setDescriptors(Attr.EXECUTION_PLAN_ENGINE_CONFIG, cfg);
                int fst = plan.tryFinish();
                if (fst != Cudnn.STATUS_SUCCESS) {
                    refusals.add("engine " + engine + " (" + mode + "): " + cudnn.errorString(fst));
                    plan.close();
                    continue;
                }
                out.add(new Plan(s, plan, engine));
            }
            if (!out.isEmpty()) return out;
        }
        throw new CudnnException("building a convolution plan for " + s + " (cuDNN " + cudnn.version() + ")", 3000,
                "CUDNN_STATUS_NOT_SUPPORTED", String.join(" | ", refusals));
    }

    private static String refusedNote(int[] notes) {
        for (int n : notes)
            for (int r : REFUSED_NOTES)
                if (n == r) for (NumericalNote nn : NumericalNote.values()) if (nn.value == n) return nn.name();
        return null;
    }

    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Plan p : cache.values()) p.close();
        cache.clear();
        for (Descriptor d : retained) d.close();
        retained.clear();
        cudnn.destroy(handle);
    }

    /** A finalized execution plan for one {@link Shape}. */
    public final class Plan implements AutoCloseable {
        private final Shape shape;
        private final Descriptor plan;
        private final long engineIndex, workspaceSize;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment uids, pointers;
        private Descriptor variantPack;
        private long lastX, lastW, lastY, lastWs;
        double buildMillis;
        double tunedMillis = Double.NaN;
        int candidatesTimed = 1;

        private Plan(Shape shape, Descriptor plan, long engineIndex) {
            this.shape = shape;
            this.plan = plan;
            this.engineIndex = engineIndex;
            this.workspaceSize = plan.getInt64(Attr.EXECUTION_PLAN_WORKSPACE_SIZE);
            this.uids = arena.allocateFrom(ValueLayout.JAVA_LONG, UID_X, UID_W, UID_Y);
            this.pointers = arena.allocate(ValueLayout.ADDRESS, 3);
        }

        public Shape shape() { return shape; }

        public long engineIndex() { return engineIndex; }

        /** Device bytes {@link #execute} needs at {@code workspace}. */
        public long workspaceSize() { return workspaceSize; }

        public double buildMillis() { return buildMillis; }

        /** Median ms of this plan when {@link #tunedPlan} timed it, else NaN. */
        public double tunedMillis() { return tunedMillis; }

        /** How many engine configs {@link #tunedPlan} timed before keeping this one (1: untimed). */
        public int candidatesTimed() { return candidatesTimed; }

        /** The plan's JSON description as cuDNN reports it, or null. */
        public String describe() { return plan.getString(Attr.EXECUTION_PLAN_JSON_REPRESENTATION); }

        /** Enqueues y = conv(x, w) on {@code stream} (a CUstream); device addresses, 16-byte aligned. */
        public void execute(long x, long w, long y, long workspace, long stream) {
            if (x == 0 || w == 0 || y == 0 || ((x | w | y) & 15) != 0)
                throw new IllegalArgumentException("cuDNN convolution " + shape + " needs non-null 16-byte aligned x, w, y; got 0x"
                        + Long.toHexString(x) + ", 0x" + Long.toHexString(w) + ", 0x" + Long.toHexString(y));
            if (workspaceSize > 0 && workspace == 0)
                throw new IllegalArgumentException("cuDNN convolution " + shape + " needs a workspace of " + workspaceSize + " bytes");
            synchronized (CudnnConv.this) {
                if (closed) throw new IllegalStateException("CudnnConv is closed");
                MemorySegment s = MemorySegment.ofAddress(stream);
                if (!s.equals(boundStream)) {
                    cudnn.setStream(handle, s);
                    boundStream = s;
                }
                if (variantPack == null || x != lastX || w != lastW || y != lastY || workspace != lastWs) rebind(x, w, y, workspace);
                cudnn.execute(handle, plan, variantPack);
            }
        }

        private void rebind(long x, long w, long y, long workspace) {
            if (variantPack != null) variantPack.close();
            variantPack = null;
            pointers.setAtIndex(ValueLayout.ADDRESS, 0, MemorySegment.ofAddress(x));
            pointers.setAtIndex(ValueLayout.ADDRESS, 1, MemorySegment.ofAddress(w));
            pointers.setAtIndex(ValueLayout.ADDRESS, 2, MemorySegment.ofAddress(y));
            Descriptor vp = cudnn.createDescriptor(DescriptorType.VARIANT_PACK_DESCRIPTOR);
            try {
                vp.setInt64(Attr.VARIANT_PACK_UNIQUE_IDS, uids, 3)
                        .setPointers(Attr.VARIANT_PACK_DATA_POINTERS, pointers, 3)
                        .setPointer(Attr.VARIANT_PACK_WORKSPACE, MemorySegment.ofAddress(workspace))
                        .finish();
            } catch (RuntimeException e) {
                vp.close();
                throw e;
            }
            variantPack = vp;
            lastX = x;
            lastW = w;
            lastY = y;
            lastWs = workspace;
        }

        @Override public void close() {
            synchronized (CudnnConv.this) {
                if (variantPack != null) variantPack.close();
                variantPack = null;
                plan.close();
                if (arena.scope().isAlive()) arena.close();
            }
        }

        @Override public String toString() {
            return shape + ": engine " + engineIndex + ", workspace " + workspaceSize + " B, built in "
                    + String.format(java.util.Locale.ROOT, "%.1f ms", buildMillis);
        }
    }
}
