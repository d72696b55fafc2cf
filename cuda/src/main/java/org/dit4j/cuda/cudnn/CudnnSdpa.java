package org.dit4j.cuda.cudnn;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.cuda.cudnn.Cudnn.Attr;
import org.dit4j.cuda.cudnn.Cudnn.AttrType;
import org.dit4j.cuda.cudnn.Cudnn.DataType;
import org.dit4j.cuda.cudnn.Cudnn.Descriptor;
import org.dit4j.cuda.cudnn.Cudnn.DescriptorType;
import org.dit4j.cuda.cudnn.Cudnn.HeurMode;
import org.dit4j.cuda.cudnn.Cudnn.KnobType;
import org.dit4j.cuda.cudnn.Cudnn.PointwiseMode;
import org.dit4j.cuda.cudnn.Cudnn.ReduceOp;

/**
 * Fused scaled-dot-product attention through cuDNN's graph API:
 * {@code O = softmax(scale · Q·Kᵀ) · V}, non-causal, no mask, no dropout; optionally with the softmax stats
 * (each row's log-sum-exp of the scaled logits, {@link #statsPlan}) that ring attention merges partial results with.
 *
 * <p>Shapes: q,o {@code [B, Lq, H, d]} and k,v {@code [B, Lk, H, d]} in {@link Layout#BSHD} (contiguous,
 * what a fused QKV projection produces after a view), or {@code [B, H, L, d]} in {@link Layout#BHSD}.
 * fp32 accumulation and softmax; bf16 or f16 in and out.
 *
 * <p>A {@link Plan} is built and finalized once per {@link Shape} (a few ms; the first build of a
 * runtime-compiled engine can take longer) and cached. {@link Plan#execute} only sets the stream and launches:
 * no allocation, no host synchronisation, safe inside CUDA-graph capture.
 *
 * <p>Two ways to describe the attention to cuDNN (see {@link Implementation}): the dedicated SDPA
 * operation (cuDNN ≥ 9.13) or the classic decomposed graph (matmul → scale → softmax as
 * max/sub/exp/sum/div → matmul) that cuDNN's fused flash-attention engines recognise.
 *
 * <p>One instance owns one cuDNN handle, created on the CUDA context current at construction; use it from
 * one thread at a time.
 */
public final class CudnnSdpa implements AutoCloseable {

    /** Memory layout of q, k, v, o. The last (head-dim) stride is always 1. */
    public enum Layout {
        /** {@code [B, L, H, d]}: strides {@code [L·H·d, H·d, d, 1]}. */
        BSHD,
        /** {@code [B, H, L, d]}: strides {@code [H·L·d, L·d, d, 1]}. */
        BHSD
    }

    /** How the attention is described to cuDNN. */
    public enum Implementation {
        /** {@link #UNIFIED} where the installed cuDNN accepts it, else {@link #COMPOSITE}. */
        AUTO,
        /** One {@code CUDNN_BACKEND_OPERATION_SDPA_FWD_DESCRIPTOR} (cuDNN ≥ 9.13). */
        UNIFIED,
        /** Matmul, pointwise and reduction nodes that the fused-attention engines pattern-match. */
        COMPOSITE
    }

    /**
     * Everything a plan depends on. {@code scale} is usually {@code 1/sqrt(headDim)}. {@code oRowStride}: elements
     * between consecutive sequence positions of o in {@link Layout#BSHD} (0 = packed, H·d), e.g. to write o into the
     * first H·d columns of a wider [B, Lq, W] tensor.
     */
    public record Shape(int batch, int heads, int seqQ, int seqKv, int headDim, DType dtype, float scale, Layout layout,
                        long oRowStride) {
        /** A shape with packed o. */
        public Shape(int batch, int heads, int seqQ, int seqKv, int headDim, DType dtype, float scale, Layout layout) {
            this(batch, heads, seqQ, seqKv, headDim, dtype, scale, layout, 0);
        }

        public Shape {
            if (oRowStride != 0 && (layout != Layout.BSHD || oRowStride < (long) heads * headDim || oRowStride % 8 != 0))
                throw new IllegalArgumentException("o row stride " + oRowStride + " needs the BSHD layout, at least H·d = "
                        + (long) heads * headDim + " elements and a multiple of 8 (16-byte rows), got layout " + layout);
            if (batch <= 0 || heads <= 0 || seqQ <= 0 || seqKv <= 0 || headDim <= 0)
                throw new IllegalArgumentException("attention shape must be positive: B=" + batch + " H=" + heads
                        + " Lq=" + seqQ + " Lk=" + seqKv + " d=" + headDim);
            if (headDim % 8 != 0)
                throw new IllegalArgumentException("head dim must be a multiple of 8 (16-byte rows) for cuDNN SDPA, got " + headDim);
            if (dtype != DType.BF16 && dtype != DType.F16)
                throw new IllegalArgumentException("cuDNN SDPA takes BF16 or F16 q/k/v/o, got " + dtype);
            if (!(scale > 0) || Float.isInfinite(scale))
                throw new IllegalArgumentException("attention scale must be a positive finite number, got " + scale);
            if (layout == null) throw new IllegalArgumentException("layout must not be null");
        }

        @Override
        public String toString() {
            return "[B=" + batch + " H=" + heads + " Lq=" + seqQ + " Lk=" + seqKv + " d=" + headDim + " " + dtype + " "
                    + layout + " scale=" + scale + (oRowStride != 0 ? " o row stride " + oRowStride : "") + "]";
        }

        /** The usual shape: scale {@code 1/sqrt(d)}, {@link Layout#BSHD}. */
        public static Shape bshd(int batch, int heads, int seqQ, int seqKv, int headDim, DType dtype) {
            return new Shape(batch, heads, seqQ, seqKv, headDim, dtype, (float) (1.0 / Math.sqrt(headDim)), Layout.BSHD);
        }

        /** Multiply-adds ×2 of the two matmuls: {@code 4·B·H·Lq·Lk·d}. */
        public double flops() { return 4.0 * batch * heads * (double) seqQ * seqKv * headDim; }

        /** Bytes of q or o. */
        public long qBytes() { return (long) batch * heads * seqQ * headDim * dtype.byteSize(); }

        /** Bytes of k or v. */
        public long kvBytes() { return (long) batch * heads * seqKv * headDim * dtype.byteSize(); }

        /** cuDNN strides of o ({@code [B, H, Lq, d]} order). */
        long[] oStrides() {
            if (oRowStride == 0) return strides(seqQ);
            return new long[] {seqQ * oRowStride, headDim, oRowStride, 1};
        }

        /** cuDNN strides of a {@code [B, H, L, d]}-ordered tensor with sequence length {@code len}. */
        long[] strides(int len) {
            long d = headDim, h = heads;
            return layout == Layout.BSHD
                    ? new long[] {len * h * d, d, h * d, 1}
                    : new long[] {h * len * d, len * d, d, 1};
        }
    }

    // Unique ids of the tensors the caller binds.
    private static final Pattern KERNEL_NAME = Pattern.compile("\"kernelName\"\\s*:\\s*\"([^\"]+)\"");
    private static final long UID_Q = 1, UID_K = 2, UID_V = 3, UID_O = 4, UID_SCALE = 5, UID_STATS = 6;

    private final Cudnn cudnn;
    private final MemorySegment handle;
    private final Map<Shape, Plan> cache = new HashMap<>();
    private final Map<Shape, Plan> statsCache = new HashMap<>();
    private final List<Plan> extraPlans = new ArrayList<>();
    private final List<Descriptor> retained = new ArrayList<>();
    private MemorySegment boundStream;
    private boolean closed;

    /** Creates a cuDNN handle on the current CUDA context. */
    public CudnnSdpa() {
        this(Cudnn.get());
    }

    public CudnnSdpa(Cudnn cudnn) {
        this.cudnn = cudnn;
        this.handle = cudnn.create();
    }

    public Cudnn cudnn() { return cudnn; }

    /** The cached plan for {@code shape} ({@link Implementation#AUTO}), building it on first use. */
    public synchronized Plan plan(Shape shape) {
        Plan p = cache.get(shape);
        if (p == null) {
            p = build(shape, Implementation.AUTO, 1, false).getFirst();
            cache.put(shape, p);
        }
        return p;
    }

    /**
     * The cached plan for {@code shape} that also writes the softmax stats: F32 {@code [B, H, Lq]} (contiguous, the
     * layout of {@code Ops.attentionWithLse}'s lse), {@code stats[b, h, i] = m + log Σ_j exp(s_ij − m)} with
     * {@code s = scale·q_i·k_j} and {@code m} the row max — the natural-log log-sum-exp of the row's logits. Built
     * from the {@link Implementation#COMPOSITE} graph with its stats tensor made a real output (what cudnn-frontend
     * does for training); run it with {@link Plan#execute(long, long, long, long, long, long, long)}. Packed o only.
     */
    public synchronized Plan statsPlan(Shape shape) {
        if (shape.oRowStride() != 0)
            throw new IllegalArgumentException("a stats plan writes packed o; got o row stride " + shape.oRowStride() + " for " + shape);
        Plan p = statsCache.get(shape);
        if (p == null) {
            p = build(shape, Implementation.COMPOSITE, 1, true).getFirst();
            statsCache.put(shape, p);
        }
        return p;
    }

    /** Shorthand: {@code plan(shape).execute(...)}. */
    public void execute(Shape shape, long q, long k, long v, long o, long workspace, MemorySegment stream) {
        plan(shape).execute(q, k, v, o, workspace, stream);
    }

    /** Same, with the stream as a raw {@code CUstream} handle (as {@code CudaDriver} returns it; 0 = legacy default stream). */
    public void execute(Shape shape, long q, long k, long v, long o, long workspace, long stream) {
        plan(shape).execute(q, k, v, o, workspace, MemorySegment.ofAddress(stream));
    }

    /**
     * Up to {@code max} plans for {@code shape}, one per engine configuration that cuDNN's heuristics (mode A,
     * then fallback) rank and that finalizes, best-ranked first. For benchmarking/autotuning; the plans
     * are owned by this object (closed with it) but not put in the cache.
     */
    public synchronized List<Plan> candidates(Shape shape, Implementation impl, int max) {
        List<Plan> ps = build(shape, impl, max, false);
        extraPlans.addAll(ps);
        return ps;
    }

    /** Version gate for the dedicated SDPA operation. */
    public boolean unifiedAvailable() { return cudnn.version() >= 91301; }

    // ------------------------------------------------------------------ building

    private List<Plan> build(Shape s, Implementation impl, int max, boolean stats) {
        if (closed) throw new IllegalStateException("CudnnSdpa is closed");
        if (impl == Implementation.AUTO) {
            if (unifiedAvailable()) {
                try {
                    return build(s, Implementation.UNIFIED, max, stats);
                } catch (CudnnException e) {
                    // fall through to the decomposed graph, which every cuDNN 9 supports on sm80+
                }
            }
            return build(s, Implementation.COMPOSITE, max, stats);
        }
        if (stats && impl != Implementation.COMPOSITE)
            throw new IllegalArgumentException("softmax stats are built from the COMPOSITE graph, not " + impl);
        if (impl == Implementation.UNIFIED && !unifiedAvailable()) {
            throw new CudnnException("building a UNIFIED SDPA plan", 3000, "CUDNN_STATUS_NOT_SUPPORTED",
                    "the SDPA operation needs cuDNN >= 9.13.1, this is " + cudnn.version());
        }
        long t0 = System.nanoTime();
        List<Descriptor> owned = new ArrayList<>();
        try {
            Descriptor graph = impl == Implementation.UNIFIED ? unifiedGraph(s, owned) : compositeGraph(s, owned, stats);
            List<Plan> plans = plansFor(s, impl, graph, max, owned, stats);
            double ms = (System.nanoTime() - t0) / 1e6;
            for (Plan p : plans) p.buildMillis = ms;
            // The plans may refer to the graph and engine configs: keep them until close().
            retained.addAll(owned);
            return plans;
        } catch (RuntimeException e) {
            for (Descriptor d : owned) d.close();
            throw e;
        }
    }

    private Descriptor tensor(List<Descriptor> owned, long uid, DataType dt, long[] dims, long[] strides,
                              boolean virtual, boolean byValue) {
        Descriptor t = cudnn.createDescriptor(DescriptorType.TENSOR_DESCRIPTOR);
        owned.add(t);
        t.setDataType(Attr.TENSOR_DATA_TYPE, dt)
                .setInt64(Attr.TENSOR_DIMENSIONS, dims)
                .setInt64(Attr.TENSOR_STRIDES, strides)
                .setInt64(Attr.TENSOR_UNIQUE_ID, uid)
                .setInt64(Attr.TENSOR_BYTE_ALIGNMENT, 16);
        if (virtual) t.setBoolean(Attr.TENSOR_IS_VIRTUAL, true);
        if (byValue) t.setBoolean(Attr.TENSOR_IS_BY_VALUE, true);
        return t.finish();
    }

    private static DataType ioType(Shape s) {
        return s.dtype() == DType.BF16 ? DataType.BFLOAT16 : DataType.HALF;
    }

    private Descriptor scaleTensor(List<Descriptor> owned) {
        return tensor(owned, UID_SCALE, DataType.FLOAT, new long[] {1, 1, 1, 1}, new long[] {1, 1, 1, 1}, false, true);
    }

    private Descriptor unifiedGraph(Shape s, List<Descriptor> owned) {
        DataType io = ioType(s);
        long b = s.batch(), h = s.heads(), d = s.headDim();
        Descriptor q = tensor(owned, UID_Q, io, new long[] {b, h, s.seqQ(), d}, s.strides(s.seqQ()), false, false);
        Descriptor k = tensor(owned, UID_K, io, new long[] {b, h, s.seqKv(), d}, s.strides(s.seqKv()), false, false);
        Descriptor v = tensor(owned, UID_V, io, new long[] {b, h, s.seqKv(), d}, s.strides(s.seqKv()), false, false);
        Descriptor o = tensor(owned, UID_O, io, new long[] {b, h, s.seqQ(), d}, s.oStrides(), false, false);
        Descriptor scale = scaleTensor(owned);
        Descriptor op = cudnn.createDescriptor(DescriptorType.OPERATION_SDPA_FWD_DESCRIPTOR);
        owned.add(op);
        op.setDescriptors(Attr.OPERATION_SDPA_FWD_QDESC, q)
                .setDescriptors(Attr.OPERATION_SDPA_FWD_KDESC, k)
                .setDescriptors(Attr.OPERATION_SDPA_FWD_VDESC, v)
                .setDescriptors(Attr.OPERATION_SDPA_FWD_ODESC, o)
                .setDescriptors(Attr.OPERATION_SDPA_FWD_SCALEDESC, scale)
                .finish();
        return operationGraph(owned, op);
    }

    /** The decomposed attention graph; with {@code withStats} its stats tensor (m + log l) is a bound output. */
    private Descriptor compositeGraph(Shape s, List<Descriptor> owned, boolean withStats) {
        DataType io = ioType(s);
        DataType f32 = DataType.FLOAT;
        long b = s.batch(), h = s.heads(), lq = s.seqQ(), lk = s.seqKv(), d = s.headDim();
        long[] kvStrides = s.strides(s.seqKv());
        Descriptor q = tensor(owned, UID_Q, io, new long[] {b, h, lq, d}, s.strides(s.seqQ()), false, false);
        // Kᵀ as a view: dims [B, H, d, Lk], the two inner strides swapped.
        Descriptor kT = tensor(owned, UID_K, io, new long[] {b, h, d, lk},
                new long[] {kvStrides[0], kvStrides[1], kvStrides[3], kvStrides[2]}, false, false);
        Descriptor v = tensor(owned, UID_V, io, new long[] {b, h, lk, d}, kvStrides, false, false);
        Descriptor o = tensor(owned, UID_O, io, new long[] {b, h, lq, d}, s.oStrides(), false, false);
        Descriptor scale = scaleTensor(owned);

        long[] sDims = {b, h, lq, lk}, sStrides = {h * lq * lk, lq * lk, lk, 1};
        long[] rDims = {b, h, lq, 1}, rStrides = {h * lq, lq, 1, 1};
        long uid = 100;
        Descriptor scores = tensor(owned, uid++, f32, sDims, sStrides, true, false);
        Descriptor scaled = tensor(owned, uid++, f32, sDims, sStrides, true, false);
        Descriptor rowMax = tensor(owned, uid++, f32, rDims, rStrides, true, false);
        Descriptor shifted = tensor(owned, uid++, f32, sDims, sStrides, true, false);
        Descriptor exps = tensor(owned, uid++, f32, sDims, sStrides, true, false);
        Descriptor rowSum = tensor(owned, uid++, f32, rDims, rStrides, true, false);
        Descriptor logSum = tensor(owned, uid++, f32, rDims, rStrides, true, false);
        Descriptor stats = withStats ? tensor(owned, UID_STATS, f32, rDims, rStrides, false, false)
                : tensor(owned, uid++, f32, rDims, rStrides, true, false);
        Descriptor probs = tensor(owned, uid++, io, sDims, sStrides, true, false);

        List<Descriptor> ops = new ArrayList<>();
        ops.add(matmul(owned, q, kT, scores));                               // S = Q·Kᵀ
        ops.add(pointwise(owned, PointwiseMode.MUL, scores, scale, scaled)); // S·scale
        ops.add(reduction(owned, ReduceOp.MAX, scaled, rowMax));             // m = rowmax
        ops.add(pointwise(owned, PointwiseMode.SUB, scaled, rowMax, shifted));
        ops.add(pointwise(owned, PointwiseMode.EXP, shifted, null, exps));   // e = exp(S - m)
        ops.add(reduction(owned, ReduceOp.ADD, exps, rowSum));               // l = rowsum(e)
        ops.add(pointwise(owned, PointwiseMode.LOG, rowSum, null, logSum));  // stats = m + log l (virtual unless bound)
        ops.add(pointwise(owned, PointwiseMode.ADD, rowMax, logSum, stats));
        ops.add(pointwise(owned, PointwiseMode.DIV, exps, rowSum, probs));   // P = e / l, in the I/O type
        ops.add(matmul(owned, probs, v, o));                                 // O = P·V
        return operationGraph(owned, ops.toArray(Descriptor[]::new));
    }

    private Descriptor matmul(List<Descriptor> owned, Descriptor a, Descriptor bT, Descriptor c) {
        Descriptor mm = cudnn.createDescriptor(DescriptorType.MATMUL_DESCRIPTOR);
        owned.add(mm);
        mm.setDataType(Attr.MATMUL_COMP_TYPE, DataType.FLOAT).finish();
        Descriptor op = cudnn.createDescriptor(DescriptorType.OPERATION_MATMUL_DESCRIPTOR);
        owned.add(op);
        return op.setDescriptors(Attr.OPERATION_MATMUL_ADESC, a)
                .setDescriptors(Attr.OPERATION_MATMUL_BDESC, bT)
                .setDescriptors(Attr.OPERATION_MATMUL_CDESC, c)
                .setDescriptors(Attr.OPERATION_MATMUL_DESC, mm)
                .finish();
    }

    private Descriptor pointwise(List<Descriptor> owned, PointwiseMode mode, Descriptor x, Descriptor bIn, Descriptor y) {
        Descriptor pw = cudnn.createDescriptor(DescriptorType.POINTWISE_DESCRIPTOR);
        owned.add(pw);
        pw.setEnum(Attr.POINTWISE_MODE, AttrType.POINTWISE_MODE, mode.value)
                .setDataType(Attr.POINTWISE_MATH_PREC, DataType.FLOAT)
                .finish();
        Descriptor op = cudnn.createDescriptor(DescriptorType.OPERATION_POINTWISE_DESCRIPTOR);
        owned.add(op);
        op.setDescriptors(Attr.OPERATION_POINTWISE_PW_DESCRIPTOR, pw)
                .setDescriptors(Attr.OPERATION_POINTWISE_XDESC, x);
        if (bIn != null) op.setDescriptors(Attr.OPERATION_POINTWISE_BDESC, bIn);
        op.setDescriptors(Attr.OPERATION_POINTWISE_YDESC, y)
                .setFloat(Attr.OPERATION_POINTWISE_ALPHA1, 1f)
                .setFloat(Attr.OPERATION_POINTWISE_ALPHA2, 1f);
        return op.finish();
    }

    private Descriptor reduction(List<Descriptor> owned, ReduceOp rop, Descriptor x, Descriptor y) {
        Descriptor red = cudnn.createDescriptor(DescriptorType.REDUCTION_DESCRIPTOR);
        owned.add(red);
        red.setDataType(Attr.REDUCTION_COMP_TYPE, DataType.FLOAT)
                .setEnum(Attr.REDUCTION_OPERATOR, AttrType.REDUCTION_OPERATOR_TYPE, rop.value)
                .finish();
        Descriptor op = cudnn.createDescriptor(DescriptorType.OPERATION_REDUCTION_DESCRIPTOR);
        owned.add(op);
        return op.setDescriptors(Attr.OPERATION_REDUCTION_DESC, red)
                .setDescriptors(Attr.OPERATION_REDUCTION_XDESC, x)
                .setDescriptors(Attr.OPERATION_REDUCTION_YDESC, y)
                .finish();
    }

    private Descriptor operationGraph(List<Descriptor> owned, Descriptor... ops) {
        Descriptor g = cudnn.createDescriptor(DescriptorType.OPERATIONGRAPH_DESCRIPTOR);
        owned.add(g);
        return g.setHandle(Attr.OPERATIONGRAPH_HANDLE, handle).setDescriptors(Attr.OPERATIONGRAPH_OPS, ops).finish();
    }

    /** Heuristics (mode A, then fallback) → engine configs → execution plans that finalize. */
    private List<Plan> plansFor(Shape s, Implementation impl, Descriptor graph, int max, List<Descriptor> owned, boolean stats) {
        List<Plan> plans = new ArrayList<>();
        List<String> refusals = new ArrayList<>();
        for (HeurMode mode : new HeurMode[] {HeurMode.A, HeurMode.FALLBACK}) {
            Descriptor heur = cudnn.createDescriptor(DescriptorType.ENGINEHEUR_DESCRIPTOR);
            owned.add(heur);
            heur.setDescriptors(Attr.ENGINEHEUR_OPERATION_GRAPH, graph)
                    .setEnum(Attr.ENGINEHEUR_MODE, AttrType.HEUR_MODE, mode.value);
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
                if (plans.size() >= max) break;
                long engineIndex = engineIndex(cfg, owned);
                if (plans.stream().anyMatch(p -> p.engineIndex == engineIndex && engineIndex >= 0)) continue;
                Descriptor plan = cudnn.createDescriptor(DescriptorType.EXECUTION_PLAN_DESCRIPTOR);
                plan.setHandle(Attr.EXECUTION_PLAN_HANDLE, handle).setDescriptors(Attr.EXECUTION_PLAN_ENGINE_CONFIG, cfg);
                int fst = plan.tryFinish();
                if (fst != Cudnn.STATUS_SUCCESS) {
                    refusals.add("engine " + engineIndex + " (" + mode + "): " + cudnn.errorString(fst) + " "
                            + cudnn.lastErrorString().strip());
                    plan.close();
                    continue;
                }
                Plan made = new Plan(s, impl, plan, engineIndex, stats);
                made.kernelCfg = kernelCfgOf(cfg, owned);
                plans.add(made);
            }
            if (plans.size() >= max || !plans.isEmpty()) break;
        }
        if (plans.isEmpty()) {
            throw new CudnnException("building a " + impl + " SDPA plan for " + s + " (cuDNN " + cudnn.version() + ")",
                    3000, "CUDNN_STATUS_NOT_SUPPORTED", String.join(" | ", refusals));
        }
        return plans;
    }

    private long engineIndex(Descriptor cfg, List<Descriptor> owned) {
        try {
            List<Descriptor> eng = cfg.getDescriptors(Attr.ENGINECFG_ENGINE, DescriptorType.ENGINE_DESCRIPTOR, 1);
            owned.addAll(eng);
            return eng.isEmpty() ? -1 : eng.getFirst().getInt64(Attr.ENGINE_GLOBAL_INDEX);
        } catch (CudnnException e) {
            return -1;
        }
    }

    /** The KERNEL_CFG knob value an engine config carries, or -1. */
    private long kernelCfgOf(Descriptor cfg, List<Descriptor> owned) {
        for (long[] c : knobChoices(cfg, owned)) if (c[0] == KnobType.KERNEL_CFG.value) return c[1];
        return -1;
    }

    /** (knob type, value) pairs of an engine config; empty if cuDNN does not say. */
    private List<long[]> knobChoices(Descriptor cfg, List<Descriptor> owned) {
        List<long[]> out = new ArrayList<>();
        try {
            List<Descriptor> choices = cfg.getDescriptors(Attr.ENGINECFG_KNOB_CHOICES, DescriptorType.KNOB_CHOICE_DESCRIPTOR, 64);
            owned.addAll(choices);
            for (Descriptor c : choices) {
                int[] type = c.getEnums(Attr.KNOB_CHOICE_KNOB_TYPE, AttrType.KNOB_TYPE, 1);
                if (type.length == 1) out.add(new long[] {type[0], c.getInt64(Attr.KNOB_CHOICE_KNOB_VALUE)});
            }
        } catch (CudnnException e) {
            // no knob information: callers treat the config as opaque
        }
        return out;
    }

    /**
     * Plans for every KERNEL_CFG knob value (at most {@code maxPerEngine} that finalize) of each engine the
     * heuristics rank for {@code impl}; other knobs keep the heuristic config's values.
     */
    private List<Plan> knobVariants(Shape s, Implementation impl, int maxPerEngine) {
        List<Descriptor> owned = new ArrayList<>();
        List<Plan> out = new ArrayList<>();
        try {
            Descriptor graph = impl == Implementation.UNIFIED ? unifiedGraph(s, owned) : compositeGraph(s, owned, false);
            Descriptor heur = cudnn.createDescriptor(DescriptorType.ENGINEHEUR_DESCRIPTOR);
            owned.add(heur);
            heur.setDescriptors(Attr.ENGINEHEUR_OPERATION_GRAPH, graph)
                    .setEnum(Attr.ENGINEHEUR_MODE, AttrType.HEUR_MODE, HeurMode.A.value)
                    .finish();
            long n = heur.countDescriptors(Attr.ENGINEHEUR_RESULTS);
            List<Descriptor> cfgs = n <= 0 ? List.of()
                    : heur.getDescriptors(Attr.ENGINEHEUR_RESULTS, DescriptorType.ENGINECFG_DESCRIPTOR, (int) n);
            owned.addAll(cfgs);
            List<Long> seen = new ArrayList<>();
            for (Descriptor cfg : cfgs) {
                long idx = engineIndex(cfg, owned);
                if (idx < 0 || seen.contains(idx)) continue;
                seen.add(idx);
                List<long[]> base = knobChoices(cfg, owned);
                Descriptor engine = cudnn.createDescriptor(DescriptorType.ENGINE_DESCRIPTOR);
                owned.add(engine);
                engine.setDescriptors(Attr.ENGINE_OPERATION_GRAPH, graph).setInt64(Attr.ENGINE_GLOBAL_INDEX, idx).finish();
                List<Descriptor> infos = engine.getDescriptors(Attr.ENGINE_KNOB_INFO, DescriptorType.KNOB_INFO_DESCRIPTOR, 64);
                owned.addAll(infos);
                long[] range = null;
                for (Descriptor info : infos) {
                    int[] t = info.getEnums(Attr.KNOB_INFO_TYPE, AttrType.KNOB_TYPE, 1);
                    if (t.length == 1 && t[0] == KnobType.KERNEL_CFG.value)
                        range = new long[] {info.getInt64(Attr.KNOB_INFO_MINIMUM_VALUE),
                                info.getInt64(Attr.KNOB_INFO_MAXIMUM_VALUE), Math.max(1, info.getInt64(Attr.KNOB_INFO_STRIDE))};
                }
                if (range == null) continue;
                int made = 0, tried = 0;
                for (long val = range[0]; val <= range[1] && made < maxPerEngine && tried < 256; val += range[2], tried++) {
                    List<Descriptor> choiceDescs = new ArrayList<>();
                    boolean hasKernelCfg = false;
                    for (long[] c : base) {
                        long value = c[0] == KnobType.KERNEL_CFG.value ? val : c[1];
                        hasKernelCfg |= c[0] == KnobType.KERNEL_CFG.value;
                        choiceDescs.add(knobChoice(owned, (int) c[0], value));
                    }
                    if (!hasKernelCfg) choiceDescs.add(knobChoice(owned, KnobType.KERNEL_CFG.value, val));
                    Descriptor cfg2 = cudnn.createDescriptor(DescriptorType.ENGINECFG_DESCRIPTOR);
                    owned.add(cfg2);
                    cfg2.setDescriptors(Attr.ENGINECFG_ENGINE, engine)
                            .setDescriptors(Attr.ENGINECFG_KNOB_CHOICES, choiceDescs.toArray(Descriptor[]::new));
                    if (cfg2.tryFinish() != Cudnn.STATUS_SUCCESS) continue;
                    Descriptor plan = cudnn.createDescriptor(DescriptorType.EXECUTION_PLAN_DESCRIPTOR);
                    plan.setHandle(Attr.EXECUTION_PLAN_HANDLE, handle).setDescriptors(Attr.EXECUTION_PLAN_ENGINE_CONFIG, cfg2);
                    if (plan.tryFinish() != Cudnn.STATUS_SUCCESS) {
                        plan.close();
                        continue;
                    }
                    Plan p = new Plan(s, impl, plan, idx, false);
                    p.kernelCfg = val;
                    out.add(p);
                    made++;
                }
            }
            retained.addAll(owned);
            return out;
        } catch (RuntimeException e) {
            for (Plan p : out) p.close();
            for (Descriptor d : owned) d.close();
            throw e;
        }
    }

    private Descriptor knobChoice(List<Descriptor> owned, int type, long value) {
        Descriptor c = cudnn.createDescriptor(DescriptorType.KNOB_CHOICE_DESCRIPTOR);
        owned.add(c);
        return c.setEnum(Attr.KNOB_CHOICE_KNOB_TYPE, AttrType.KNOB_TYPE, type)
                .setInt64(Attr.KNOB_CHOICE_KNOB_VALUE, value)
                .finish();
    }

    /** One timed candidate of {@link #tune}. {@code relDiff}: rel-L2 vs the heuristic plan's output (sampled). */
    public record Candidate(Implementation implementation, long engine, long kernelCfg, String kernel, double medianMs,
                            double relDiff, boolean accepted) {}

    /** What {@link #tune} found: the chosen plan (now the cached plan of the shape) and every candidate tried. */
    public record Tuning(Plan best, Plan heuristic, List<Candidate> candidates) {}

    /**
     * Autotunes {@code shape}: times the heuristic plan and every KERNEL_CFG variant of the engines cuDNN ranks
     * (both implementations; each distinct kernel once), on the caller's device buffers ({@code o} is
     * overwritten), and caches the fastest whose output matches the heuristic plan's (sampled rel-L2 ≤ 1e-2) and
     * that is at least 2% faster. The output check matters: on cuDNN 9.14/9.19 the sm80 engine finalizes
     * KERNEL_CFG 25–31 for this graph but computes wrong results (rel-L2 0.5–0.7), and those are rejected.
     * Allocates a scratch workspace and events through the driver; call it once per shape before capture, not
     * inside a forward. The chosen plan's {@link Plan#workspaceSize()} may differ from the heuristic one's.
     */
    public synchronized Tuning tune(Shape shape, long q, long k, long v, long o, long stream, int maxPerEngine) {
        Plan heuristic = plan(shape);
        List<Plan> cands = new ArrayList<>();
        for (Implementation impl : new Implementation[] {Implementation.UNIFIED, Implementation.COMPOSITE}) {
            if (impl == Implementation.UNIFIED && !unifiedAvailable()) continue;
            try {
                cands.addAll(knobVariants(shape, impl, maxPerEngine));
            } catch (CudnnException e) {
                // this description of the attention is not supported here; the other one is tried
            }
        }
        CudaDriver drv = CudaDriver.get();
        long maxWs = heuristic.workspaceSize();
        for (Plan p : cands) maxWs = Math.max(maxWs, p.workspaceSize());
        long ws = maxWs > 0 ? drv.memAlloc(maxWs) : 0;
        long e0 = drv.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = drv.eventCreate(CudaDriver.EVENT_DEFAULT);
        List<Candidate> report = new ArrayList<>();
        Plan best = heuristic;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ref = a.allocate(shape.qBytes(), 16), got = a.allocate(shape.qBytes(), 16);
            heuristic.execute(q, k, v, o, ws, stream);
            drv.memcpyDtoHAsync(ref, o, shape.qBytes(), stream);
            drv.streamSynchronize(stream);
            double bestMs = timeMedian(drv, heuristic, q, k, v, o, ws, stream, e0, e1);
            report.add(new Candidate(heuristic.implementation(), heuristic.engineIndex(), heuristic.kernelCfg(),
                    heuristic.kernelName(), bestMs, 0, true));
            // The same kernel reached through another description or engine id cannot be faster: timing it would
            // only let noise pick. Each distinct kernel is timed once.
            java.util.Set<String> seenKernels = new java.util.HashSet<>();
            seenKernels.add(heuristic.kernelName());
            for (Plan p : cands) {
                String kernel = p.kernelName();
                if (!"?".equals(kernel) && !seenKernels.add(kernel)) continue;
                double diff, ms = Double.NaN;
                boolean ok;
                try {
                    p.execute(q, k, v, o, ws, stream);
                    drv.memcpyDtoHAsync(got, o, shape.qBytes(), stream);
                    drv.streamSynchronize(stream);
                    diff = sampledRelDiff(ref, got, shape.dtype());
                    ok = diff <= 1e-2;
                    if (ok) ms = timeMedian(drv, p, q, k, v, o, ws, stream, e0, e1);
                } catch (CudnnException e) {
                    diff = Double.NaN;
                    ok = false;
                }
                report.add(new Candidate(p.implementation(), p.engineIndex(), p.kernelCfg(), kernel, ms, diff, ok));
                if (ok && ms < bestMs * 0.98) {
                    best = p;
                    bestMs = ms;
                }
            }
        } finally {
            drv.eventDestroy(e0);
            drv.eventDestroy(e1);
            if (ws != 0) drv.memFree(ws);
        }
        for (Plan p : cands) if (p != best) p.close();
        if (best != heuristic) {
            extraPlans.add(heuristic);   // callers may still hold it
            extraPlans.add(best);
            cache.put(shape, best);
        }
        return new Tuning(best, heuristic, report);
    }

    private static double timeMedian(CudaDriver drv, Plan p, long q, long k, long v, long o, long ws, long stream,
                                     long e0, long e1) {
        for (int i = 0; i < 3; i++) p.execute(q, k, v, o, ws, stream);
        int n = 15;
        float[] ms = new float[n];
        for (int i = 0; i < n; i++) {
            drv.eventRecord(e0, stream);
            p.execute(q, k, v, o, ws, stream);
            drv.eventRecord(e1, stream);
            drv.eventSynchronize(e1);
            ms[i] = drv.eventElapsedMs(e0, e1);
        }
        java.util.Arrays.sort(ms);
        return ms[n / 2];
    }

    /** rel-L2 between two outputs over every 7th element; +inf if {@code got} has a non-finite sample. */
    private static double sampledRelDiff(MemorySegment ref, MemorySegment got, DType dt) {
        long n = ref.byteSize() / 2;
        double e = 0, r = 0;
        for (long i = 0; i < n; i += 7) {
            double x = half(ref.getAtIndex(ValueLayout.JAVA_SHORT, i), dt), y = half(got.getAtIndex(ValueLayout.JAVA_SHORT, i), dt);
            if (!Double.isFinite(y)) return Double.POSITIVE_INFINITY;
            e += (x - y) * (x - y);
            r += x * x;
        }
        return r == 0 ? (e == 0 ? 0 : Double.POSITIVE_INFINITY) : Math.sqrt(e / r);
    }

    private static double half(short bits, DType dt) {
        return dt == DType.BF16 ? DType.bf16ToFloat(bits) : DType.f16ToFloat(bits);
    }

    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        for (Plan p : cache.values()) p.close();
        for (Plan p : statsCache.values()) p.close();
        for (Plan p : extraPlans) p.close();
        cache.clear();
        statsCache.clear();
        extraPlans.clear();
        for (Descriptor d : retained) d.close();
        retained.clear();
        cudnn.destroy(handle);
    }

    // ------------------------------------------------------------------ plans

    /** A finalized execution plan for one {@link Shape}. */
    public final class Plan implements AutoCloseable {
        private final Shape shape;
        private final Implementation implementation;
        private final Descriptor plan;
        private final long engineIndex;
        private final long workspaceSize;
        private final boolean stats;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment uids, pointers, scaleValue;
        private Descriptor variantPack;
        private long lastQ, lastK, lastV, lastO, lastStats, lastWs;
        double buildMillis;
        long kernelCfg = -1;

        private Plan(Shape shape, Implementation implementation, Descriptor plan, long engineIndex, boolean stats) {
            this.shape = shape;
            this.stats = stats;
            this.implementation = implementation;
            this.plan = plan;
            this.engineIndex = engineIndex;
            this.workspaceSize = plan.getInt64(Attr.EXECUTION_PLAN_WORKSPACE_SIZE);
            this.uids = stats ? arena.allocateFrom(ValueLayout.JAVA_LONG, UID_Q, UID_K, UID_V, UID_O, UID_SCALE, UID_STATS)
                    : arena.allocateFrom(ValueLayout.JAVA_LONG, UID_Q, UID_K, UID_V, UID_O, UID_SCALE);
            this.pointers = arena.allocate(ValueLayout.ADDRESS, stats ? 6 : 5);
            this.scaleValue = arena.allocateFrom(ValueLayout.JAVA_FLOAT, shape.scale());
        }

        public Shape shape() { return shape; }

        /** Whether this plan writes the softmax stats ({@link #statsPlan}). */
        public boolean writesStats() { return stats; }

        public Implementation implementation() { return implementation; }

        /** cuDNN's global index of the chosen engine (-1 if cuDNN did not say). */
        public long engineIndex() { return engineIndex; }

        /** The engine's KERNEL_CFG knob value (which tile configuration), -1 if unknown. */
        public long kernelCfg() { return kernelCfg; }

        /** Device bytes {@link #execute} needs at {@code workspace} (often 0). */
        public long workspaceSize() { return workspaceSize; }

        /** Wall time of graph + heuristics + plan finalization, in ms (shared by plans built together). */
        public double buildMillis() { return buildMillis; }

        /** The plan's JSON description as cuDNN reports it (engine, knobs, kernel names), or null. */
        public String describe() { return plan.getString(Attr.EXECUTION_PLAN_JSON_REPRESENTATION); }

        /** The first kernel name in {@link #describe()} (e.g. {@code cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x128_…}), or "?". */
        public String kernelName() {
            String json = describe();
            if (json == null) return "?";
            Matcher m = KERNEL_NAME.matcher(json);
            return m.find() ? m.group(1) : "?";
        }

        /** {@link #execute(long, long, long, long, long, MemorySegment)} with a raw {@code CUstream} handle. */
        public void execute(long q, long k, long v, long o, long workspace, long stream) {
            execute(q, k, v, o, workspace, MemorySegment.ofAddress(stream));
        }

        /**
         * Enqueues the attention on {@code stream}. Pointers are device addresses (16-byte aligned) of tensors
         * laid out as {@link Shape#layout()} says; {@code workspace} must hold {@link #workspaceSize()} bytes
         * (may be 0 when that is 0). Asynchronous; not thread-safe.
         */
        public void execute(long q, long k, long v, long o, long workspace, MemorySegment stream) {
            if (stats)
                throw new IllegalStateException("this plan for " + shape + " writes softmax stats: call execute(q, k, v, o, stats, workspace, stream)");
            run(q, k, v, o, 0, workspace, stream);
        }

        /**
         * {@link #execute} of a {@link #statsPlan}: also writes the F32 {@code [B, H, Lq]} log-sum-exp at {@code stats}
         * (16-byte aligned).
         */
        public void execute(long q, long k, long v, long o, long stats, long workspace, long stream) {
            if (!this.stats)
                throw new IllegalStateException("this plan for " + shape + " writes no softmax stats; build it with statsPlan(shape)");
            checkPointer("stats", stats);
            run(q, k, v, o, stats, workspace, MemorySegment.ofAddress(stream));
        }

        private void run(long q, long k, long v, long o, long statsPtr, long workspace, MemorySegment stream) {
            checkPointer("q", q);
            checkPointer("k", k);
            checkPointer("v", v);
            checkPointer("o", o);
            if (workspaceSize > 0 && workspace == 0)
                throw new IllegalArgumentException("cuDNN SDPA plan for " + shape + " needs a workspace of "
                        + workspaceSize + " bytes; got a null workspace pointer");
            synchronized (CudnnSdpa.this) {
                if (closed) throw new IllegalStateException("CudnnSdpa is closed");
                if (!stream.equals(boundStream)) {
                    cudnn.setStream(handle, stream);
                    boundStream = stream;
                }
                if (variantPack == null || q != lastQ || k != lastK || v != lastV || o != lastO || statsPtr != lastStats
                        || workspace != lastWs) {
                    rebindVariantPack(q, k, v, o, statsPtr, workspace);
                }
                cudnn.execute(handle, plan, variantPack);
            }
        }

        private void checkPointer(String name, long p) {
            if (p == 0) throw new IllegalArgumentException(name + " is a null device pointer (attention " + shape + ")");
            if ((p & 15) != 0)
                throw new IllegalArgumentException(name + " = 0x" + Long.toHexString(p)
                        + " is not 16-byte aligned; cuDNN SDPA needs 16-byte aligned q/k/v/o");
        }

        private void rebindVariantPack(long q, long k, long v, long o, long statsPtr, long workspace) {
            if (variantPack != null) variantPack.close();
            pointers.setAtIndex(ValueLayout.ADDRESS, 0, MemorySegment.ofAddress(q));
            pointers.setAtIndex(ValueLayout.ADDRESS, 1, MemorySegment.ofAddress(k));
            pointers.setAtIndex(ValueLayout.ADDRESS, 2, MemorySegment.ofAddress(v));
            pointers.setAtIndex(ValueLayout.ADDRESS, 3, MemorySegment.ofAddress(o));
            pointers.setAtIndex(ValueLayout.ADDRESS, 4, scaleValue);
            int n = stats ? 6 : 5;
            if (stats) pointers.setAtIndex(ValueLayout.ADDRESS, 5, MemorySegment.ofAddress(statsPtr));
            Descriptor vp = cudnn.createDescriptor(DescriptorType.VARIANT_PACK_DESCRIPTOR);
            try {
                vp.setInt64(Attr.VARIANT_PACK_UNIQUE_IDS, uids, n)
                        .setPointers(Attr.VARIANT_PACK_DATA_POINTERS, pointers, n)
                        .setPointer(Attr.VARIANT_PACK_WORKSPACE, MemorySegment.ofAddress(workspace))
                        .finish();
            } catch (RuntimeException e) {
                vp.close();
                variantPack = null;
                throw e;
            }
            variantPack = vp;
            lastQ = q;
            lastK = k;
            lastV = v;
            lastO = o;
            lastStats = statsPtr;
            lastWs = workspace;
        }

        @Override
        public void close() {
            synchronized (CudnnSdpa.this) {
                if (variantPack != null) variantPack.close();
                variantPack = null;
                plan.close();
                if (arena.scope().isAlive()) arena.close();
            }
        }

        @Override
        public String toString() {
            return implementation + (stats ? " +stats" : "") + " engine " + engineIndex + " kernel_cfg " + kernelCfg + " ws " + workspaceSize + " B";
        }
    }
}
