package org.dit4j.cuda;

import org.dit4j.core.ops.HostReductions;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Device;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;

/**
 * {@link Ops} on one NVIDIA GPU. All work of a backend goes to its one stream in call order, so no op waits for the
 * device (only {@link #toHost}, {@link #synchronize} and uploads reusing a staging buffer do). Memory comes from a
 * caching {@link DeviceAllocator}; element-wise, normalisation and layout kernels are NVRTC-compiled sources
 * ({@code kernels/*.cu}); matrix products go through cuBLASLt; attention through an {@link AttentionKernel}.
 * A backend is meant to be driven from one thread at a time.
 */
public final class CudaBackend implements Ops {
    private static final int THREADS = 256;
    private static final long STAGING_BYTES = 16L << 20;
    /** Largest im2col buffer a convolution builds at once. */
    private static final long IM2COL_BYTES = 256L << 20;

    private final CudaDriver drv;
    private final Device device;
    private final int cuDevice;
    private final long context;
    private final long stream;
    private final String deviceName;
    private final int ccMajor, ccMinor, smCount, maxSharedOptin;
    private final DeviceAllocator allocator;
    private final KernelCache kernels;
    private final Gemm gemm;
    private final DeviceBuffer gemmWorkspace;
    private final Arena arena = Arena.ofShared();
    private final KernelArgs args;
    /** The context this thread last made current through a backend (avoids a driver call per op). */
    private static final ThreadLocal<Long> CURRENT = new ThreadLocal<>();
    private MemorySegment[] staging;
    private long[] stagingEvents;
    private boolean[] stagingPending;
    private AttentionKernel attentionOverride;
    private org.dit4j.cuda.cudnn.CudnnSdpa sdpa;
    private boolean cudnnBroken;
    private org.dit4j.cuda.cudnn.CudnnConv cudnnConv;
    /** Set when cuDNN convolution failed once on this backend: convolutions use im2col + GEMM from then on. */
    private boolean cudnnConvBroken;
    /**
     * The VAE fast paths: cuDNN convolutions (BF16/F16), the many-block group norm (and its fused SiLU form), the
     * chunked bf16 GEMM attention for head dims no fused kernel takes. Off ({@code -Ddit4j.vae.fast=false} or
     * {@link #setVaeFastPaths}) runs the earlier kernels, for comparisons.
     */
    private boolean vaeFast = !"false".equalsIgnoreCase(System.getProperty("dit4j.vae.fast"));
    /** Warps per block of the flash kernel (4: 64 query rows per block, 8: 128); {@code -Ddit4j.flash.warps}. */
    private int flashWarps = Integer.getInteger("dit4j.flash.warps", 4);
    private final Set<Long> sharedRaised = new HashSet<>();
    /**
     * Whether the "Into" fused forms (qkvNormRopeInto, attentionInto, linearGeluInto) use their own kernels; false
     * runs {@link Ops}' default compositions instead ({@code -Ddit4j.cuda.fused=false}, for comparisons).
     */
    private boolean fusedLayouts = !"false".equalsIgnoreCase(System.getProperty("dit4j.cuda.fused"));
    /** Set when cuDNN refused an attention output with a row stride: attentionInto then uses the default. */
    private boolean stridedSdpaBroken;
    /** Set when cuDNN refused an attention plan with softmax stats: attentionWithLse then uses the flash kernel. */
    private boolean cudnnStatsBroken;
    /** Non-null while profiling ({@link #startProfile}): every launch is bracketed by timing events. */
    private CudaProfiler profiler;
    private CudaProfiler profilerEvents;
    /** Extra profile label of the next launches (which op a shared kernel ran for), or null. */
    private String launchLabel;
    /** The stream launch()/memcpy() queue on: {@link #stream} except inside {@link #copy2d(long, long, long, long, long, long, long)}. */
    private long target;
    /** Second stream for communication (NCCL exchanges that overlap compute), created on first use; 0 until then. */
    private long commStream;
    private boolean closed;

    /** Backend on device 0. */
    public CudaBackend() { this(0); }

    public CudaBackend(int deviceIndex) {
        drv = CudaDriver.get();
        int n = drv.deviceCount();
        if (deviceIndex < 0 || deviceIndex >= n)
            throw new IllegalArgumentException("CUDA device " + deviceIndex + " does not exist (" + n + " visible)");
        device = Device.cuda(deviceIndex);
        cuDevice = drv.device(deviceIndex);
        context = drv.primaryContextRetain(cuDevice);
        drv.contextSetCurrent(context);
        CURRENT.set(context);
        stream = drv.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
        target = stream;
        deviceName = drv.deviceName(cuDevice);
        ccMajor = drv.deviceAttribute(cuDevice, CudaDriver.ATTR_COMPUTE_CAPABILITY_MAJOR);
        ccMinor = drv.deviceAttribute(cuDevice, CudaDriver.ATTR_COMPUTE_CAPABILITY_MINOR);
        smCount = drv.deviceAttribute(cuDevice, CudaDriver.ATTR_MULTIPROCESSOR_COUNT);
        maxSharedOptin = drv.deviceAttribute(cuDevice, CudaDriver.ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        allocator = new DeviceAllocator(drv, device, this::synchronize);
        kernels = new KernelCache(drv, ccMajor, ccMinor, drv.driverVersion());
        args = new KernelArgs(arena);
        gemmWorkspace = allocator.allocate(Gemm.WORKSPACE_BYTES);
        gemm = new Gemm(drv, gemmWorkspace.address());
    }

    // ------------------------------------------------------------------ backend facts

    @Override public Device device() { return device; }

    @Override public String name() {
        return "cuda:" + device.index() + " (" + deviceName + ", " + kernels.arch() + ", " + smCount + " SMs)";
    }

    /** The CUstream every op of this backend is queued on. */
    public long stream() { return stream; }

    /**
     * The backend's communication stream (non-blocking, the context's highest priority so that exchange kernels get
     * SMs ahead of queued compute blocks, {@code -Ddit4j.comm.priority=default} for the default priority; created on
     * first use, destroyed with the backend): NCCL
     * exchanges that overlap the compute {@link #stream()} run there, ordered against it only by events. Whoever queues
     * work on it must join it back to the compute stream (event record + wait) before the compute stream reads the
     * results, before buffers it touches are released to the allocator, and before a graph capture ends.
     */
    long commStream() {
        checkOpen();
        if (commStream == 0) {
            makeCurrent();
            commStream = "default".equalsIgnoreCase(System.getProperty("dit4j.comm.priority"))
                    ? drv.streamCreate(CudaDriver.STREAM_NON_BLOCKING)
                    : drv.streamCreateWithPriority(CudaDriver.STREAM_NON_BLOCKING, drv.greatestStreamPriority());
        }
        return commStream;
    }

    public DeviceAllocator allocator() { return allocator; }

    public int multiprocessorCount() { return smCount; }

    public String architecture() { return kernels.arch(); }

    /** Pins attention to one kernel (null = automatic choice). */
    public void setAttentionKernel(AttentionKernel k) { attentionOverride = k; }

    /** Selects the flash kernel variant: 4 or 8 warps per block (for benchmarks). */
    void setFlashWarps(int warps) {
        if (warps != 4 && warps != 8) throw new IllegalArgumentException("flash attention runs with 4 or 8 warps, not " + warps);
        flashWarps = warps;
    }

    /** The kernel {@link #attention} would use for these arguments. */
    public AttentionKernel attentionKernelFor(Tensor q, Tensor k, Tensor v, Tensor bias) {
        if (attentionOverride != null) {
            String why = attentionOverride.check(q, k, v, bias);
            if (why != null) throw new IllegalArgumentException("attention kernel " + attentionOverride + " was requested but " + why);
            return attentionOverride;
        }
        return AttentionKernel.select(q, k, v, bias);
    }

    /** Number of cached cuBLASLt plans (one per distinct GEMM problem). */
    public int gemmPlanCount() { return gemm.planCount(); }

    /**
     * Starts timing every launch of this backend with device events (see {@link CudaProfiler}); costs a little host
     * time per launch and must not be on while a CUDA graph is captured.
     */
    public void startProfile() {
        checkOpen();
        if (profilerEvents == null) profilerEvents = new CudaProfiler(drv);
        profiler = profilerEvents;
    }

    /** Stops profiling, waits for the device and returns the timed launches since {@link #startProfile}, in order. */
    public java.util.List<CudaProfiler.Span> stopProfile() {
        checkOpen();
        if (profiler == null) throw new IllegalStateException("stopProfile without startProfile");
        profiler = null;
        return profilerEvents.take();
    }

    /** Opens a profiled span for work queued by another binding on this stream (NCCL); no-op unless profiling. */
    void profileBegin() {
        if (profiler != null) profiler.begin(stream);
    }

    /** Closes the span opened by {@link #profileBegin}; no-op unless profiling. */
    void profileEnd(String label) {
        if (profiler != null) profiler.end(stream, CudaProfiler.Category.OTHER, label, 0);
    }

    /** Switches the VAE fast paths (see {@code dit4j.vae.fast}) on or off; for comparisons. */
    public void setVaeFastPaths(boolean on) { vaeFast = on; }

    /** Whether the VAE fast paths are on. */
    public boolean vaeFastPaths() { return vaeFast; }

    /** Switches the fused "Into" forms off (Ops' default compositions) or on again; for comparisons. */
    public void setFusedLayouts(boolean on) { fusedLayouts = on; }

    /** True between {@link #startProfile} and {@link #stopProfile}. */
    public boolean isProfiling() { return profiler != null; }

    /** Forgets which context this thread's backends made current (after a library switched it behind their back). */
    static void forgetCurrent() { CURRENT.remove(); }

    void makeCurrent() {
        Long c = CURRENT.get();
        if (c == null || c != context) {
            drv.contextSetCurrent(context);
            CURRENT.set(context);
        }
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("this CUDA backend (" + device + ") is closed");
        makeCurrent();
    }

    // ------------------------------------------------------------------ memory

    private Tensor alloc(DType dtype, Shape shape) {
        return Tensor.owning(shape, dtype, allocator.allocate(shape.numel() * dtype.byteSize()));
    }

    @Override public Tensor empty(DType dtype, Shape shape) {
        checkOpen();
        return alloc(dtype, shape);
    }

    @Override public Tensor zeros(DType dtype, Shape shape) {
        checkOpen();
        Tensor t = alloc(dtype, shape);
        if (t.byteSize() > 0) memsetZero(t.address(), t.byteSize());
        return t;
    }

    @Override public Tensor upload(Tensor host) {
        checkOpen();
        if (host.device().equals(device)) return copy(host);
        if (!host.device().isCpu()) throw new IllegalArgumentException("upload takes a host tensor, got one on " + host.device());
        if (drv.streamIsCapturing(stream))
            throw new IllegalStateException("upload during CUDA graph capture is not supported: upload inputs before capture "
                    + "and copy into them with copyInto");
        Tensor out = alloc(host.dtype(), host.shape());
        MemorySegment src = host.segment();
        long n = src.byteSize();
        ensureStaging();
        int i = 0;
        for (long off = 0; off < n; off += STAGING_BYTES, i ^= 1) {
            long len = Math.min(STAGING_BYTES, n - off);
            if (stagingPending[i]) drv.eventSynchronize(stagingEvents[i]);
            MemorySegment.copy(src, off, staging[i], 0, len);
            drv.memcpyHtoDAsync(out.address() + off, staging[i], len, stream);
            drv.eventRecord(stagingEvents[i], stream);
            stagingPending[i] = true;
        }
        return out;
    }

    @Override public Tensor toHost(Tensor x) {
        checkOpen();
        requireDevice(x, "x");
        Tensor out = Tensor.zeros(x.dtype(), x.shape());
        MemorySegment dst = out.segment();
        long n = dst.byteSize();
        ensureStaging();
        for (long off = 0; off < n; off += STAGING_BYTES) {
            long len = Math.min(STAGING_BYTES, n - off);
            if (stagingPending[0]) drv.eventSynchronize(stagingEvents[0]);
            drv.memcpyDtoHAsync(staging[0], x.address() + off, len, stream);
            drv.streamSynchronize(stream);
            stagingPending[0] = false;
            MemorySegment.copy(staging[0], 0, dst, off, len);
        }
        return out;
    }

    private void ensureStaging() {
        if (staging != null) return;
        staging = new MemorySegment[] {drv.memHostAlloc(STAGING_BYTES, CudaDriver.MEMHOSTALLOC_PORTABLE),
                drv.memHostAlloc(STAGING_BYTES, CudaDriver.MEMHOSTALLOC_PORTABLE)};
        stagingEvents = new long[] {drv.eventCreate(CudaDriver.EVENT_DISABLE_TIMING), drv.eventCreate(CudaDriver.EVENT_DISABLE_TIMING)};
        stagingPending = new boolean[2];
    }

    @Override public void synchronize() {
        if (closed) return;
        makeCurrent();
        drv.streamSynchronize(stream);
    }

    /**
     * A host tensor in page-locked (pinned) memory, zero-filled: what {@link #copyPinned} moves to and from the device
     * asynchronously, also inside a CUDA graph capture. Closing the tensor frees the pinned memory (after waiting for
     * this backend's stream, since a queued copy may still read or write it).
     */
    public Tensor pinnedHost(DType dtype, Shape shape) {
        checkOpen();
        long bytes = Math.max(1, shape.numel() * dtype.byteSize());
        MemorySegment seg;
        try {
            seg = drv.memHostAlloc(bytes, CudaDriver.MEMHOSTALLOC_PORTABLE);
        } catch (RuntimeException e) {
            throw new IllegalStateException("cannot pin " + bytes + " bytes of host memory for a " + dtype + " " + shape
                    + " tensor (" + e.getMessage() + "); keep it on the GPU instead or free host memory", e);
        }
        seg.fill((byte) 0);
        return Tensor.owning(shape, dtype, new PinnedBuffer(seg));
    }

    /** Pinned host memory from {@link #pinnedHost}. */
    private final class PinnedBuffer implements org.dit4j.core.tensor.Buffer {
        private final MemorySegment segment;
        private boolean released;

        PinnedBuffer(MemorySegment segment) { this.segment = segment; }

        @Override public Device device() { return Device.CPU; }
        @Override public long address() { return segment.address(); }
        @Override public long byteSize() { return segment.byteSize(); }
        @Override public MemorySegment segment() {
            if (released) throw new IllegalStateException("pinned host memory was already released");
            return segment;
        }
        @Override public synchronized void release() {
            if (released) return;
            released = true;
            if (!closed) {
                makeCurrent();
                drv.streamSynchronize(stream);
            }
            drv.memFreeHost(segment);
        }
        @Override public boolean isReleased() { return released; }
    }

    /**
     * Queues a copy between a device tensor and a pinned host tensor of {@link #pinnedHost} (either direction; same
     * dtype and element count) on the stream, without waiting: capturable into a CUDA graph. Read a host destination
     * only after {@link #synchronize}.
     */
    public void copyPinned(Tensor dst, Tensor src) {
        checkOpen();
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel())
            throw new IllegalArgumentException("copyPinned needs equal dtype and size: dst " + dst + ", src " + src);
        long bytes = dst.byteSize();
        if (dst.device().isCpu() && !src.device().isCpu()) {
            requireDevice(src, "src");
            requirePinned(dst, "dst");
            if (profiler != null) profiler.begin(stream);
            drv.memcpyDtoHAsync(dst.segment().reinterpret(bytes), src.address(), bytes, stream);
            if (profiler != null) profiler.end(stream, CudaProfiler.Category.OTHER, "memcpy (device to pinned host)", 0);
        } else if (src.device().isCpu() && !dst.device().isCpu()) {
            requireDevice(dst, "dst");
            requirePinned(src, "src");
            if (profiler != null) profiler.begin(stream);
            drv.memcpyHtoDAsync(dst.address(), src.segment().reinterpret(bytes), bytes, stream);
            if (profiler != null) profiler.end(stream, CudaProfiler.Category.OTHER, "memcpy (pinned host to device)", 0);
        } else {
            throw new IllegalArgumentException("copyPinned copies between the device and pinned host memory, got " + src.device()
                    + " → " + dst.device() + "; use copyInto for device copies");
        }
    }

    private static void requirePinned(Tensor t, String name) {
        if (!(t.buffer() instanceof PinnedBuffer))
            throw new IllegalArgumentException(name + " " + t.shape() + " is ordinary host memory; copyPinned needs a tensor from "
                    + "pinnedHost (pageable memory cannot be copied asynchronously or inside a CUDA graph)");
        if (t.isReleased()) throw new IllegalStateException(name + " " + t.shape() + " was already released");
    }

    /** Copies src into the existing tensor dst (same dtype and element count), e.g. a graph's static input. */
    public void copyInto(Tensor dst, Tensor src) {
        checkOpen();
        requireDevice(dst, "dst");
        if (dst.dtype() != src.dtype() || dst.numel() != src.numel())
            throw new IllegalArgumentException("copyInto needs equal dtype and size: dst " + dst + ", src " + src);
        if (src.device().isCpu()) {
            try (Tensor d = upload(src)) {
                memcpy(dst.address(), d.address(), dst.byteSize(), "copyInto");
            }
        } else {
            requireDevice(src, "src");
            if (dst.byteSize() > 0) memcpy(dst.address(), src.address(), dst.byteSize(), "copyInto");
        }
    }

    @Override public void close() {
        if (closed) return;
        makeCurrent();
        drv.streamSynchronize(stream);
        closed = true;
        profiler = null;
        if (profilerEvents != null) profilerEvents.close();
        if (sdpa != null) sdpa.close();
        if (cudnnConv != null) cudnnConv.close();
        gemm.close();
        kernels.close();
        allocator.close();
        if (staging != null) {
            for (MemorySegment s : staging) drv.memFreeHost(s);
            for (long e : stagingEvents) drv.eventDestroy(e);
        }
        if (commStream != 0) {
            drv.streamSynchronize(commStream);
            drv.streamDestroy(commStream);
        }
        drv.streamDestroy(stream);
        drv.primaryContextRelease(cuDevice);
        arena.close();
    }

    // ------------------------------------------------------------------ launching

    private KernelArgs args() { return args.reset(); }

    private void launch(String file, String name, int gx, int gy, int gz, int block, int shared) {
        long fn = kernels.function(file, name);
        if (profiler != null) profiler.begin(target);
        drv.launchKernel(fn, gx, gy, gz, block, 1, 1, shared, target, args.pointers(), name);
        if (profiler != null) profiler.end(target, file.contains("attention") ? CudaProfiler.Category.ATTENTION
                : CudaProfiler.Category.OTHER, launchLabel == null ? name : name + " (" + launchLabel + ")", 0);
    }

    /** Device-to-device copy of {@code bytes} on the stream. */
    private void memcpy(long dst, long src, long bytes, String what) {
        if (profiler != null) profiler.begin(target);
        drv.memcpyDtoDAsync(dst, src, bytes, target);
        if (profiler != null) profiler.end(target, CudaProfiler.Category.OTHER, "memcpy (" + what + ")", 0);
    }

    private void memsetZero(long dst, long bytes) {
        if (profiler != null) profiler.begin(stream);
        drv.memsetD8Async(dst, (byte) 0, bytes, stream);
        if (profiler != null) profiler.end(stream, CudaProfiler.Category.OTHER, "memset", 0);
    }

    /** One cuBLASLt product; {@code what} names it in profiles ("linear", "matmul", "conv"). */
    private void gemm(Gemm.Key key, long a, long b, long d, long bias, String what) {
        if (profiler != null) profiler.begin(stream);
        gemm.run(key, a, b, d, bias, stream);
        if (profiler != null) profiler.end(stream, CudaProfiler.Category.GEMM, gemmLabel(key, what),
                2.0 * key.m() * key.n() * key.k() * key.batch());
    }

    private static String gemmLabel(Gemm.Key k, String what) {
        String epi = switch (k.epilogue()) {
            case CublasLt.EPILOGUE_BIAS -> " +bias";
            case CublasLt.EPILOGUE_GELU -> " +gelu";
            case CublasLt.EPILOGUE_GELU_BIAS -> " +bias+gelu";
            default -> "";
        };
        // linear: tokens × out × in (row-major terms); others: cuBLASLt's m × n × k
        String dims = what.startsWith("linear") ? k.n() + "x" + k.m() + "x" + k.k() : k.m() + "x" + k.n() + "x" + k.k();
        return "gemm " + what + " " + dims + (k.batch() > 1 ? " batch " + k.batch() : "") + epi;
    }

    /** Grid size for grid-stride loops over n elements. */
    private int blocksFor(long n) {
        return (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, smCount * 32L));
    }

    private void launch1d(String file, String name, long n) {
        launch(file, name, blocksFor(n), 1, 1, THREADS, 0);
    }

    /** Threads per block for one-block-per-row kernels over rows of length d. */
    private static int rowThreads(long d) {
        long t = (d / 4 + 31) / 32 * 32;
        return (int) Math.max(32, Math.min(512, t));
    }

    private static int code(DType t) { return t.ordinal(); }

    /** True when every non-null tensor has activation dtype t and a 16-byte aligned address (vector kernels). */
    private static boolean vec(DType t, Tensor... ts) {
        if (t != DType.F32 && t != DType.BF16 && t != DType.F16) return false;
        for (Tensor x : ts) if (x != null && (x.dtype() != t || (x.address() & 15) != 0)) return false;
        return true;
    }

    /**
     * True when activation dtype t is BF16/F16 and every non-null side tensor (weight, bias, shift, scale, gate) is F32
     * and 16-byte aligned: the "_sf_" vector kernels read such sides as floats (Wan keeps its modulation in F32).
     */
    private static boolean sideF32(DType t, Tensor... sides) {
        if (t != DType.BF16 && t != DType.F16) return false;
        boolean any = false;
        for (Tensor x : sides) {
            if (x == null) continue;
            if (x.dtype() != DType.F32 || (x.address() & 15) != 0) return false;
            any = true;
        }
        return any;
    }

    /** Elements per 16-byte vector. */
    private static int vecN(DType t) { return t == DType.F32 ? 4 : 8; }

    private static String sfx(DType t) {
        return switch (t) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case F16 -> "f16";
            default -> throw new IllegalArgumentException("no vector kernels for " + t);
        };
    }

    private static long addr(Tensor t) { return t == null ? 0 : t.address(); }

    private static int codeOrZero(Tensor t) { return t == null ? 0 : code(t.dtype()); }

    // ------------------------------------------------------------------ checks

    private void requireDevice(Tensor t, String name) {
        if (t == null) throw new IllegalArgumentException(name + " must not be null");
        if (!t.device().equals(device))
            throw new IllegalArgumentException(name + " lives on " + t.device() + " but this backend computes on " + device
                    + "; upload it first (ops.upload)");
        if (t.isReleased()) throw new IllegalStateException(name + " " + t.shape() + " was already released (its scope closed)");
    }

    private void requireFloat(Tensor t, String name) {
        requireDevice(t, name);
        if (!t.dtype().isFloating()) throw new IllegalArgumentException(name + " must be a floating tensor, got " + t.dtype());
    }

    private static void requireActivation(Tensor t, String name) {
        DType d = t.dtype();
        if (d != DType.F32 && d != DType.BF16 && d != DType.F16)
            throw new IllegalArgumentException(name + " must be F32, BF16 or F16 (activation dtype), got " + d
                    + "; cast it first (ops.cast)");
    }

    private static IllegalArgumentException shapeError(String arg, String expected, Shape actual) {
        return new IllegalArgumentException(arg + " must have shape " + expected + ", got " + actual);
    }

    /** t in dtype d: t itself, or a converted temporary the caller must close (see {@link #closeIfTemp}). */
    private Tensor as(Tensor t, DType d) {
        if (t == null || t.dtype() == d) return t;
        return cast(t, d);
    }

    private static void closeIfTemp(Tensor temp, Tensor original) {
        if (temp != null && temp != original) temp.close();
    }

    // ------------------------------------------------------------------ layout

    @Override public Tensor copy(Tensor x) {
        checkOpen();
        requireDevice(x, "x");
        Tensor out = alloc(x.dtype(), x.shape());
        if (x.byteSize() > 0) memcpy(out.address(), x.address(), x.byteSize(), "copy");
        return out;
    }

    @Override public Tensor cast(Tensor x, DType dtype) {
        checkOpen();
        requireDevice(x, "x");
        if (x.dtype() == dtype) return copy(x);
        Tensor out = alloc(dtype, x.shape());
        long n = x.numel();
        if (n == 0) return out;
        args().ptr(out.address()).i32(code(dtype)).ptr(x.address()).i32(code(x.dtype())).i64(n);
        launch1d("elementwise", "cast", n);
        return out;
    }

    @Override public Tensor permute(Tensor x, int... perm) {
        checkOpen();
        requireDevice(x, "x");
        int r = x.rank();
        if (perm.length != r) throw new IllegalArgumentException("permute of " + x.shape() + " needs " + r + " axes, got " + Arrays.toString(perm));
        boolean[] seen = new boolean[r];
        long[] dims = new long[r], st = new long[r];
        long[] inSt = x.shape().strides();
        for (int i = 0; i < r; i++) {
            int p = perm[i] < 0 ? perm[i] + r : perm[i];
            if (p < 0 || p >= r || seen[p]) throw new IllegalArgumentException("permute " + Arrays.toString(perm) + " is not a permutation of " + r + " axes");
            seen[p] = true;
            dims[i] = x.dim(p);
            st[i] = inSt[p];
        }
        Tensor out = alloc(x.dtype(), Shape.of(dims));
        gather(out, x, dims, st);
        return out;
    }

    /** out[i] = x[Σ coord_d(i)·st[d]] over out's dims (rank ≤ 8 after merging). */
    private void gather(Tensor out, Tensor x, long[] dims, long[] st) {
        long n = out.numel();
        if (n == 0) return;
        // merge adjacent dims that are contiguous in the input
        long[] md = new long[dims.length], ms = new long[dims.length];
        int r = 0;
        for (int i = 0; i < dims.length; i++) {
            if (dims[i] == 1) continue;
            if (r > 0 && ms[r - 1] == st[i] * dims[i]) {
                md[r - 1] *= dims[i];
                ms[r - 1] = st[i];
            } else {
                md[r] = dims[i];
                ms[r] = st[i];
                r++;
            }
        }
        if (r == 0) { md[0] = 1; ms[0] = 0; r = 1; }
        if (r > 8) throw new IllegalArgumentException("tensors of more than 8 non-mergeable dims are not supported on CUDA: " + out.shape());
        long[] words = new long[18];
        words[0] = n;
        words[1] = r;
        for (int i = 0; i < r; i++) { words[2 + i] = md[i]; words[10 + i] = ms[i]; }
        args().ptr(out.address()).ptr(x.address()).struct(words);
        launch1d("layout", "gather_" + x.dtype().byteSize(), n);
    }

    @Override public Tensor slice(Tensor x, int dim, long start, long end) {
        checkOpen();
        requireDevice(x, "x");
        int d = dim < 0 ? dim + x.rank() : dim;
        if (d < 0 || d >= x.rank()) throw new IllegalArgumentException("slice dim " + dim + " out of range for " + x.shape());
        long size = x.dim(d);
        if (start < 0 || end > size || start > end)
            throw new IllegalArgumentException("slice [" + start + ", " + end + ") out of range for dim " + d + " of size " + size + " in " + x.shape());
        Tensor out = alloc(x.dtype(), x.shape().with(d, end - start));
        long inner = 1, outer = 1;
        for (int i = d + 1; i < x.rank(); i++) inner *= x.dim(i);
        for (int i = 0; i < d; i++) outer *= x.dim(i);
        long es = x.dtype().byteSize();
        long rowBytes = (end - start) * inner * es;
        copyRows(out.address(), rowBytes, x.address() + start * inner * es, size * inner * es, rowBytes, outer, "slice");
        return out;
    }

    /**
     * Strided 2-D byte copy on this backend's stream: rows × rowBytes from src (row pitch srcPitch) to dst (pitch
     * dstPitch), device addresses. For the NCCL communicator's chunk layouts.
     */
    void copy2d(long dst, long dstPitch, long src, long srcPitch, long rowBytes, long rows) {
        checkOpen();
        copyRows(dst, dstPitch, src, srcPitch, rowBytes, rows, "copy2d");
    }

    /**
     * {@link #copy2d(long, long, long, long, long, long)} queued on {@code onStream} (e.g. {@link #commStream()})
     * instead; not in profiles (the profiler times the compute stream).
     */
    void copy2d(long onStream, long dst, long dstPitch, long src, long srcPitch, long rowBytes, long rows) {
        checkOpen();
        long saved = target;
        CudaProfiler savedProfiler = profiler;
        target = onStream;
        profiler = null;
        try {
            copyRows(dst, dstPitch, src, srcPitch, rowBytes, rows, "copy2d");
        } finally {
            target = saved;
            profiler = savedProfiler;
        }
    }

    /** rows × rowBytes from src (pitch srcPitch) to dst (pitch dstPitch), all in bytes; {@code what} names it in profiles. */
    private void copyRows(long dst, long dstPitch, long src, long srcPitch, long rowBytes, long rows, String what) {
        if (rowBytes == 0 || rows == 0) return;
        if (rows == 1 || (dstPitch == rowBytes && srcPitch == rowBytes)) {
            memcpy(dst, src, rowBytes * rows, what);
            return;
        }
        int u = 16;
        while (u > 1 && ((dst | src | dstPitch | srcPitch | rowBytes) % u) != 0) u >>= 1;
        long units = rowBytes / u;
        args().ptr(dst).i64(dstPitch / u).ptr(src).i64(srcPitch / u).i64(units).i64(rows);
        launchLabel = what;
        try {
            launch1d("layout", "copy_rows_" + u, units * rows);
        } finally {
            launchLabel = null;
        }
    }

    @Override public void writeSlice(Tensor dst, int dim, long start, Tensor src) {
        checkOpen();
        requireDevice(dst, "dst");
        requireDevice(src, "src");
        int d = dim < 0 ? dim + dst.rank() : dim;
        if (d < 0 || d >= dst.rank()) throw new IllegalArgumentException("writeSlice dim " + dim + " out of range for dst " + dst.shape());
        if (src.rank() != dst.rank()) throw shapeError("src", dst.shape().with(d, src.rank() > d ? src.dim(d) : 0).toString(), src.shape());
        for (int j = 0; j < dst.rank(); j++)
            if (j != d && src.dim(j) != dst.dim(j)) throw shapeError("src", dst.shape().with(d, src.dim(d)).toString(), src.shape());
        long n = src.dim(d), size = dst.dim(d);
        if (start < 0 || start + n > size)
            throw new IllegalArgumentException("writeSlice: rows [" + start + ", " + (start + n) + ") of dim " + d
                    + " must lie within [0, " + size + "] of dst " + dst.shape());
        long inner = 1, outer = 1;
        for (int i = d + 1; i < dst.rank(); i++) inner *= dst.dim(i);
        for (int i = 0; i < d; i++) outer *= dst.dim(i);
        long es = dst.dtype().byteSize();
        Tensor sc = as(src, dst.dtype());
        long rowBytes = n * inner * es;
        copyRows(dst.address() + start * inner * es, size * inner * es, sc.address(), rowBytes, rowBytes, outer, "writeSlice");
        closeIfTemp(sc, src);
    }

    @Override public Tensor concat(int dim, Tensor... xs) {
        checkOpen();
        if (xs.length == 0) throw new IllegalArgumentException("concat needs at least one tensor");
        Tensor first = xs[0];
        requireDevice(first, "xs[0]");
        int d = dim < 0 ? dim + first.rank() : dim;
        if (d < 0 || d >= first.rank()) throw new IllegalArgumentException("concat dim " + dim + " out of range for " + first.shape());
        long total = 0;
        for (int i = 0; i < xs.length; i++) {
            requireDevice(xs[i], "xs[" + i + "]");
            if (xs[i].rank() != first.rank()) throw shapeError("xs[" + i + "]", "rank " + first.rank(), xs[i].shape());
            for (int j = 0; j < first.rank(); j++)
                if (j != d && xs[i].dim(j) != first.dim(j))
                    throw shapeError("xs[" + i + "]", first.shape().with(d, xs[i].dim(d)).toString(), xs[i].shape());
            total += xs[i].dim(d);
        }
        Tensor out = alloc(first.dtype(), first.shape().with(d, total));
        long inner = 1, outer = 1;
        for (int i = d + 1; i < first.rank(); i++) inner *= first.dim(i);
        for (int i = 0; i < d; i++) outer *= first.dim(i);
        long es = first.dtype().byteSize();
        long off = 0;
        for (Tensor x : xs) {
            Tensor xc = as(x, first.dtype());
            long rowBytes = x.dim(d) * inner * es;
            copyRows(out.address() + off * inner * es, total * inner * es, xc.address(), rowBytes, rowBytes, outer, "concat");
            closeIfTemp(xc, x);
            off += x.dim(d);
        }
        return out;
    }

    @Override public Tensor pad(Tensor x, long[] pads, float value) {
        checkOpen();
        requireDevice(x, "x");
        int r = x.rank();
        if (pads.length % 2 != 0 || pads.length / 2 > r)
            throw new IllegalArgumentException("pads must hold (before, after) pairs for at most " + r + " dims, got " + Arrays.toString(pads));
        if (r > 8) throw new IllegalArgumentException("pad supports rank ≤ 8 on CUDA, got " + x.shape());
        long[] od = x.shape().dims(), before = new long[r];
        for (int i = 0; i < pads.length / 2; i++) {
            int dd = r - 1 - i;
            before[dd] = pads[2 * i];
            od[dd] = x.dim(dd) + pads[2 * i] + pads[2 * i + 1];
            if (od[dd] < 0) throw new IllegalArgumentException("pads " + Arrays.toString(pads) + " crop dim " + dd + " of " + x.shape() + " below zero");
        }
        Tensor out = alloc(x.dtype(), Shape.of(od));
        long n = out.numel();
        if (n == 0) return out;
        long[] ist = x.shape().strides();
        long[] w = new long[34];
        w[0] = n;
        w[1] = r;
        for (int i = 0; i < r; i++) {
            w[2 + i] = od[i];
            w[10 + i] = x.dim(i);
            w[18 + i] = before[i];
            w[26 + i] = ist[i];
        }
        args().ptr(out.address()).ptr(x.address()).i64(valueBits(x.dtype(), value)).struct(w);
        launch1d("layout", "pad_" + x.dtype().byteSize(), n);
        return out;
    }

    /** The bit pattern of value in dtype t (PyTorch rounding). */
    static long valueBits(DType t, float v) {
        return switch (t) {
            case F32 -> Float.floatToRawIntBits(v) & 0xFFFFFFFFL;
            case BF16 -> DType.floatToBf16(v) & 0xFFFFL;
            case F16 -> DType.floatToF16(v) & 0xFFFFL;
            case F8_E4M3 -> DType.floatToE4M3(v) & 0xFFL;
            case F8_E5M2 -> DType.floatToE5M2(v) & 0xFFL;
            case I32 -> ((int) v) & 0xFFFFFFFFL;
            case I64 -> (long) v;
            case BOOL -> v != 0 ? 1 : 0;
        };
    }

    // ------------------------------------------------------------------ linear algebra

    @Override public Tensor linear(Tensor x, Tensor w, Tensor bias) {
        return linearImpl(x, w, bias, false);
    }

    @Override public Tensor linearGelu(Tensor x, Tensor w, Tensor bias, boolean tanh) {
        if (!tanh) {
            Tensor h = linearImpl(x, w, bias, false);
            Tensor out = gelu(h, false);
            h.close();
            return out;
        }
        return linearImpl(x, w, bias, true);
    }

    private Tensor linearImpl(Tensor x, Tensor w, Tensor bias, boolean geluTanh) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        requireFloat(w, "w");
        if (x.rank() < 1) throw shapeError("x", "[..., in]", x.shape());
        long k = x.dim(-1);
        if (w.rank() != 2 || w.dim(1) != k) throw shapeError("w", "[out, " + k + "]", w.shape());
        long nOut = w.dim(0);
        if (bias != null) {
            requireFloat(bias, "bias");
            if (bias.rank() != 1 || bias.dim(0) != nOut) throw shapeError("bias", "[" + nOut + "]", bias.shape());
        }
        DType t = x.dtype();
        long m = x.numel() / Math.max(1, k);
        Tensor out = alloc(t, x.shape().with(-1, nOut));
        if (out.numel() == 0) return out;
        if (k == 0) {
            memsetZero(out.address(), out.byteSize());
            Tensor r = bias == null ? out : add(out, bias);
            if (r != out) out.close();
            return geluTanh ? geluReplace(r) : r;
        }
        Tensor wc = as(w, t), bc = as(bias, t);
        int epi = bias == null ? (geluTanh ? CublasLt.EPILOGUE_GELU : CublasLt.EPILOGUE_DEFAULT)
                : (geluTanh ? CublasLt.EPILOGUE_GELU_BIAS : CublasLt.EPILOGUE_BIAS);
        int align = Gemm.alignment(wc.address(), x.address(), out.address(), k * t.byteSize(), nOut * t.byteSize());
        Gemm.Key key = new Gemm.Key(Gemm.cudaType(t), true, false, nOut, m, k, k, k, nOut, 1, 0, 0, 0, epi, align);
        gemm(key, wc.address(), x.address(), out.address(), addr(bc), "linear");
        closeIfTemp(wc, w);
        closeIfTemp(bc, bias);
        return out;
    }

    @Override public void linearGeluInto(Tensor out, long col, Tensor x, Tensor w, Tensor bias, boolean tanh) {
        checkOpen();
        requireFloat(out, "out");
        requireFloat(x, "x");
        requireFloat(w, "w");
        if (!fusedLayouts || !tanh || x.rank() < 1 || x.dim(-1) == 0 || out.dtype() != x.dtype() || w.rank() != 2) {
            Ops.super.linearGeluInto(out, col, x, w, bias, tanh);
            return;
        }
        requireActivation(x, "x");
        long k = x.dim(-1), nOut = w.dim(0), width = out.dim(-1);
        if (w.dim(1) != k) throw shapeError("w", "[out, " + k + "]", w.shape());
        if (bias != null) {
            requireFloat(bias, "bias");
            if (bias.rank() != 1 || bias.dim(0) != nOut) throw shapeError("bias", "[" + nOut + "]", bias.shape());
        }
        long m = x.numel() / k;
        if (out.rank() != x.rank() || out.numel() / Math.max(1, width) != m || !out.shape().with(-1, k).equals(x.shape()))
            throw shapeError("out", x.shape().with(-1, width) + " (x's leading dims)", out.shape());
        if (col < 0 || col + nOut > width)
            throw new IllegalArgumentException("linearGeluInto: columns [" + col + ", " + (col + nOut) + ") must lie within the "
                    + width + " columns of out " + out.shape());
        if (m == 0 || nOut == 0) return;
        DType t = x.dtype();
        Tensor wc = as(w, t), bc = as(bias, t);
        long d = out.address() + col * t.byteSize();
        int epi = bias == null ? CublasLt.EPILOGUE_GELU : CublasLt.EPILOGUE_GELU_BIAS;
        int align = Gemm.alignment(wc.address(), x.address(), d, k * t.byteSize(), width * t.byteSize());
        Gemm.Key key = new Gemm.Key(Gemm.cudaType(t), true, false, nOut, m, k, k, k, width, 1, 0, 0, 0, epi, align);
        gemm(key, wc.address(), x.address(), d, addr(bc), "linear");
        closeIfTemp(wc, w);
        closeIfTemp(bc, bias);
    }

    private Tensor geluReplace(Tensor h) {
        Tensor g = gelu(h, true);
        h.close();
        return g;
    }

    @Override public Tensor matmul(Tensor a, Tensor b) {
        checkOpen();
        requireFloat(a, "a");
        requireActivation(a, "a");
        requireFloat(b, "b");
        if (a.rank() < 2) throw shapeError("a", "[..., M, K]", a.shape());
        if (b.rank() < 2) throw shapeError("b", "[..., K, N]", b.shape());
        long m = a.dim(-2), k = a.dim(-1), n = b.dim(-1);
        if (b.dim(-2) != k) throw shapeError("b", "[..., " + k + ", N]", b.shape());
        long[] ab = Arrays.copyOf(a.shape().dims(), a.rank() - 2), bb = Arrays.copyOf(b.shape().dims(), b.rank() - 2);
        long[] batch = broadcastShape(ab, bb, "a batch dims", "b batch dims");
        long count = 1;
        for (long d : batch) count *= d;
        long[] outDims = Arrays.copyOf(batch, batch.length + 2);
        outDims[batch.length] = m;
        outDims[batch.length + 1] = n;
        DType t = a.dtype();
        Tensor out = alloc(t, Shape.of(outDims));
        if (out.numel() == 0) return out;
        if (k == 0) {
            memsetZero(out.address(), out.byteSize());
            return out;
        }
        Tensor bc = as(b, t);
        Tensor ae = expandBatch(a, batch, m, k), be = expandBatch(bc, batch, k, n);
        if (count > Integer.MAX_VALUE) throw new IllegalArgumentException("matmul batch of " + count + " is too large");
        int align = Gemm.alignment(ae.address(), be.address(), out.address(), k * t.byteSize(), n * t.byteSize());
        // column-major: out^T [n × m] = b^T [n × k] · a^T [k × m]
        Gemm.Key key = new Gemm.Key(Gemm.cudaType(t), false, false, n, m, k, n, k, n, (int) count, k * n, m * k, m * n,
                CublasLt.EPILOGUE_DEFAULT, align);
        gemm(key, be.address(), ae.address(), out.address(), 0, "matmul");
        closeIfTemp(ae, a);
        closeIfTemp(be, bc);
        closeIfTemp(bc, b);
        return out;
    }

    /** x [..., r, c] with batch dims broadcast to {@code batch}: x itself when no expansion is needed. */
    private Tensor expandBatch(Tensor x, long[] batch, long r, long c) {
        long xCount = x.numel() / (r * c);
        long count = 1;
        for (long d : batch) count *= d;
        if (xCount == count) return x;
        long[] xd = x.shape().dims();
        int off = batch.length - (xd.length - 2);
        long[] dims = Arrays.copyOf(batch, batch.length + 2);
        dims[batch.length] = r;
        dims[batch.length + 1] = c;
        long[] xs = x.shape().strides();
        long[] st = new long[dims.length];
        for (int i = 0; i < batch.length; i++) {
            int xi = i - off;
            st[i] = xi < 0 || xd[xi] == 1 ? 0 : xs[xi];
        }
        st[batch.length] = c;
        st[batch.length + 1] = 1;
        Tensor out = alloc(x.dtype(), Shape.of(dims));
        gather(out, x, dims, st);
        return out;
    }

    static long[] broadcastShape(long[] a, long[] b, String an, String bn) {
        int r = Math.max(a.length, b.length);
        long[] out = new long[r];
        for (int i = 0; i < r; i++) {
            long da = i - (r - a.length) >= 0 ? a[i - (r - a.length)] : 1;
            long db = i - (r - b.length) >= 0 ? b[i - (r - b.length)] : 1;
            if (da != db && da != 1 && db != 1)
                throw new IllegalArgumentException(an + " " + Arrays.toString(a) + " and " + bn + " " + Arrays.toString(b) + " do not broadcast");
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        return attention(q, k, v, bias, scale, null);
    }

    /**
     * {@link #attention} plus the rows' log-sum-exp, on the device: cuDNN's softmax stats (the COMPOSITE graph with its
     * stats bound, {@link org.dit4j.cuda.cudnn.CudnnSdpa#statsPlan}) where cuDNN attention is chosen, else the flash or
     * reference kernel's row max and sum. Only the GEMM fallback (head dims above 256) computes on the host.
     */
    @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        checkOpen();
        requireFloat(q, "q");
        requireActivation(q, "q");
        if (q.rank() != 4) throw shapeError("q", "[B, Lq, H, d]", q.shape());
        Tensor lse = alloc(DType.F32, Shape.of(q.dim(0), q.dim(2), q.dim(1)));
        Tensor out;
        try {
            out = attention(q, k, v, bias, scale, lse);
        } catch (RuntimeException | Error e) {
            lse.close();
            throw e;
        }
        if (out == null) {
            lse.close();
            return Ops.super.attentionWithLse(q, k, v, bias, scale);
        }
        return new PartialAttention(out, lse);
    }

    /**
     * Log-sum-exp merge on the device (kernel attention_merge): weights in double rounded to f32, combination in f32,
     * output in a.out's dtype; a.out and b.out may differ in dtype (e.g. an F32 accumulator and a BF16 part).
     */
    @Override public PartialAttention mergeAttention(PartialAttention a, PartialAttention b) {
        checkOpen();
        if (a == null || b == null) throw new IllegalArgumentException("mergeAttention: a and b must not be null");
        requireFloat(a.out(), "a.out");
        requireFloat(b.out(), "b.out");
        requireFloat(a.lse(), "a.lse");
        requireFloat(b.lse(), "b.lse");
        Shape o = a.out().shape();
        if (o.rank() != 4 || !b.out().shape().equals(o))
            throw new IllegalArgumentException("mergeAttention: a.out and b.out must both be [B, Lq, H, dv], got " + o + " and " + b.out().shape());
        Shape ls = Shape.of(o.dim(0), o.dim(2), o.dim(1));
        if (!a.lse().shape().equals(ls) || !b.lse().shape().equals(ls) || a.lse().dtype() != DType.F32 || b.lse().dtype() != DType.F32)
            throw new IllegalArgumentException("mergeAttention: a.lse and b.lse must be F32 " + ls + " ([B, H, Lq] of out " + o
                    + "), got " + a.lse().dtype() + " " + a.lse().shape() + " and " + b.lse().dtype() + " " + b.lse().shape());
        if (o.dim(1) > Integer.MAX_VALUE || o.dim(2) > Integer.MAX_VALUE || o.dim(3) > Integer.MAX_VALUE)
            throw new IllegalArgumentException("mergeAttention: out " + o + " is too large for the merge kernel (dims below 2^31)");
        Tensor out = alloc(a.out().dtype(), o), lse = alloc(DType.F32, ls);
        long rows = o.dim(0) * o.dim(1) * o.dim(2);
        if (rows > 0) {
            args().ptr(out.address()).i32(code(out.dtype())).ptr(lse.address())
                    .ptr(a.out().address()).i32(code(a.out().dtype())).ptr(a.lse().address())
                    .ptr(b.out().address()).i32(code(b.out().dtype())).ptr(b.lse().address())
                    .i32((int) o.dim(2)).i32((int) o.dim(1)).i32((int) o.dim(3)).i64(rows);
            int warpsPerBlock = THREADS / 32;
            launch("attention_merge", "attention_merge", (int) Math.max(1, Math.min((rows + warpsPerBlock - 1) / warpsPerBlock, smCount * 16L)),
                    1, 1, THREADS, 0);
        }
        return new PartialAttention(out, lse);
    }

    /**
     * Attention; with {@code lse} (F32 [B, H, Lq]) the rows' log-sum-exp is written there too, and null is returned
     * when no device kernel can produce it (the GEMM fallback) — the caller then computes on the host.
     */
    private Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale, Tensor lse) {
        checkOpen();
        requireFloat(q, "q");
        requireActivation(q, "q");
        requireFloat(k, "k");
        requireFloat(v, "v");
        if (q.rank() != 4) throw shapeError("q", "[B, Lq, H, d]", q.shape());
        long bsz = q.dim(0), lq = q.dim(1), h = q.dim(2), d = q.dim(3);
        if (k.rank() != 4 || k.dim(0) != bsz || k.dim(2) != h || k.dim(3) != d)
            throw shapeError("k", "[" + bsz + ", Lk, " + h + ", " + d + "]", k.shape());
        long lk = k.dim(1);
        if (v.rank() != 4 || v.dim(0) != bsz || v.dim(1) != lk || v.dim(2) != h)
            throw shapeError("v", "[" + bsz + ", " + lk + ", " + h + ", dv]", v.shape());
        long dv = v.dim(3);
        if (lq > Integer.MAX_VALUE || lk > Integer.MAX_VALUE) throw new IllegalArgumentException("sequence too long for CUDA attention: " + q.shape());
        Tensor kc = as(k, q.dtype()), vc = as(v, q.dtype());
        long[] bst = new long[4];
        Tensor biasF = null;
        if (bias != null) {
            requireFloat(bias, "bias");
            if (bias.rank() > 4) throw shapeError("bias", "broadcastable to [" + bsz + ", " + h + ", " + lq + ", " + lk + "]", bias.shape());
            long[] target = {bsz, h, lq, lk};
            long[] bd = bias.shape().dims(), bs = bias.shape().strides();
            int off = 4 - bd.length;
            for (int i = 0; i < 4; i++) {
                int bi = i - off;
                if (bi < 0) continue;
                if (bd[bi] != 1 && bd[bi] != target[i])
                    throw shapeError("bias", "broadcastable to " + Arrays.toString(target), bias.shape());
                bst[i] = bd[bi] == 1 ? 0 : bs[bi];
            }
            biasF = as(bias, DType.F32);
        }
        Tensor out = alloc(q.dtype(), Shape.of(bsz, lq, h, dv));
        if (out.numel() == 0) {
            closeIfTemp(kc, k);
            closeIfTemp(vc, v);
            closeIfTemp(biasF, bias);
            if (lse != null && lse.numel() > 0) {   // dv = 0: nothing to compute but the lse; the host does it
                out.close();
                return null;
            }
            return out;
        }
        AttentionKernel kernel = attentionKernelFor(q, kc, vc, biasF);
        if (lse != null && kernel == AttentionKernel.GEMM) {
            out.close();
            closeIfTemp(kc, k);
            closeIfTemp(vc, v);
            closeIfTemp(biasF, bias);
            return null;
        }
        if (kernel == AttentionKernel.CUDNN_SDPA) {
            if (lse != null ? cudnnAttentionStats(out, lse, q, kc, vc, scale) : cudnnAttention(out, q, kc, vc, scale)) {
                closeIfTemp(kc, k);
                closeIfTemp(vc, v);
                return out;
            }
            kernel = AttentionKernel.FLASH_MMA;
        }
        switch (kernel) {
            case FLASH_MMA -> {
                boolean bf = q.dtype() == DType.BF16;
                int warps = flashWarps;
                int rowsPerBlock = 16 * warps;
                int smem = (rowsPerBlock + 4 * 64) * ((int) d + 8) * 2;
                String name = "flash_attn_" + (bf ? "bf16" : "f16") + "_d" + d + "_w" + warps;
                long fn = kernels.function("flash_attention", name);
                if (smem > 48 * 1024) {
                    if (smem > maxSharedOptin) throw new IllegalStateException("flash attention needs " + smem + " bytes of shared memory, the device allows " + maxSharedOptin);
                    if (sharedRaised.add(fn)) drv.funcSetAttribute(fn, CudaDriver.FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem);
                }
                args().ptr(out.address()).ptr(q.address()).ptr(kc.address()).ptr(vc.address()).i32((int) h).i32((int) lq)
                        .i32((int) lk).f32(scale).ptr(addr(biasF)).struct(bst).ptr(addr(lse));
                launch("flash_attention", name, (int) ((lq + rowsPerBlock - 1) / rowsPerBlock), (int) h, (int) bsz, 32 * warps, smem);
            }
            case CUDNN_SDPA -> throw new IllegalStateException("unreachable: cuDNN attention handled above");
            case REFERENCE -> {
                args().ptr(out.address()).ptr(q.address()).ptr(kc.address()).ptr(vc.address()).i32(code(q.dtype()))
                        .i32((int) h).i32((int) lq).i32((int) lk).i32((int) d).i32((int) dv).f32(scale)
                        .ptr(addr(biasF)).i32(codeOrZero(biasF)).struct(bst).ptr(addr(lse));
                launch("attention_ref", "attention_ref", (int) ((lq + 3) / 4), (int) h, (int) bsz, 128, 0);
            }
            case GEMM -> {
                if (vaeFast && biasF == null && (q.dtype() == DType.BF16 || q.dtype() == DType.F16)) {
                    attentionByHalfGemm(out, q, kc, vc, scale);
                } else {
                    long scores = bsz * h * lq * lk;
                    if (scores > (1L << 31))
                        throw new IllegalArgumentException("f32 GEMM attention needs at most 2^31 scores (B·H·Lq·Lk), got "
                                + scores + " for q " + q.shape() + ", k " + k.shape() + "; use BF16/F16 inputs without bias");
                    Tensor r = attentionByGemm(q, kc, vc, biasF, scale);
                    copyInto(out, r);
                    r.close();
                }
            }
        }
        closeIfTemp(kc, k);
        closeIfTemp(vc, v);
        closeIfTemp(biasF, bias);
        return out;
    }

    /**
     * cuDNN attention that also writes the softmax stats (= the rows' log-sum-exp) into lse; false when cuDNN cannot
     * build or run such a plan here (then it is not tried again on this backend, and the flash kernel writes the lse).
     */
    private boolean cudnnAttentionStats(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, float scale) {
        if (cudnnBroken || cudnnStatsBroken) return false;
        try {
            if (sdpa == null) sdpa = new org.dit4j.cuda.cudnn.CudnnSdpa();
            var shape = new org.dit4j.cuda.cudnn.CudnnSdpa.Shape((int) q.dim(0), (int) q.dim(2), (int) q.dim(1), (int) k.dim(1),
                    (int) q.dim(3), q.dtype(), scale, org.dit4j.cuda.cudnn.CudnnSdpa.Layout.BSHD);
            var plan = sdpa.statsPlan(shape);
            long ws = plan.workspaceSize();
            DeviceBuffer workspace = ws > 0 ? allocator.allocate(ws) : null;
            try {
                if (profiler != null) profiler.begin(stream);
                plan.execute(q.address(), k.address(), v.address(), out.address(), lse.address(),
                        workspace == null ? 0 : workspace.address(), stream);
                if (profiler != null) profiler.end(stream, CudaProfiler.Category.ATTENTION, "attention cudnn +lse " + shape.batch() + "x"
                        + shape.seqQ() + "x" + shape.seqKv() + "x" + shape.heads() + "x" + shape.headDim(), shape.flops());
            } finally {
                if (workspace != null) workspace.release();
            }
            return true;
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            if (attentionOverride == AttentionKernel.CUDNN_SDPA) throw e;
            cudnnStatsBroken = true;
            System.err.println("dit4j: cuDNN attention with softmax stats failed on " + device + " (" + e.getMessage()
                    + "); attentionWithLse uses the FLASH_MMA kernel from now on");
            return false;
        }
    }

    /**
     * softmax(q·kᵀ·scale + bias)·v as two f32 batched products around a softmax: q:[B, Lq, H, d] → [B, Lq, H, dv] in q's
     * dtype. Holds the f32 score matrix [B, H, Lq, Lk]. Fully masked rows give 0, as the other kernels.
     */
    private Tensor attentionByGemm(Tensor q, Tensor k, Tensor v, Tensor biasF, float scale) {
        try (org.dit4j.core.tensor.Scope s = org.dit4j.core.tensor.Scope.open()) {
            Tensor qh = permute(as(q, DType.F32), 0, 2, 1, 3);           // [B, H, Lq, d]
            Tensor kt = permute(as(k, DType.F32), 0, 2, 3, 1);           // [B, H, d, Lk]
            Tensor scores = scale(matmul(qh, kt), scale);                  // [B, H, Lq, Lk]
            if (biasF != null) scores = add(scores, biasF);
            Tensor p = softmax(scores, true);
            Tensor vh = permute(as(v, DType.F32), 0, 2, 1, 3);           // [B, H, Lk, dv]
            Tensor o = permute(matmul(p, vh), 0, 2, 1, 3);                 // [B, Lq, H, dv]
            return s.keep(o.dtype() == q.dtype() ? o : cast(o, q.dtype()));
        }
    }

    /** Largest f32 score block the chunked GEMM attention holds at once (tests lower it to exercise the chunking). */
    private long attnScoreBytes = 256L << 20;

    /** Sets the chunked GEMM attention's f32 score budget in bytes (for tests). */
    void setAttentionScoreBudget(long bytes) {
        if (bytes < 4) throw new IllegalArgumentException("the score budget must hold at least one f32, got " + bytes);
        attnScoreBytes = bytes;
    }

    /**
     * softmax(q·kᵀ·scale)·v for BF16/F16 q, k, v of any head dims, no bias: per batch and head, query rows in chunks
     * of at most {@code attnScoreBytes} of f32 scores: S = q·kᵀ (bf16 operands, f32 accumulation and output), a
     * softmax kernel writing P in q's dtype, O = P·v (f32 accumulation) straight into out's rows.
     */
    private void attentionByHalfGemm(Tensor out, Tensor q, Tensor k, Tensor v, float scale) {
        DType t = q.dtype();
        long bsz = q.dim(0), lq = q.dim(1), h = q.dim(2), d = q.dim(3), lk = k.dim(1), dv = v.dim(3);
        long es = t.byteSize();
        long rows = Math.max(1, Math.min(lq, attnScoreBytes / (lk * 4)));
        DeviceBuffer sBuf = allocator.allocate(rows * lk * 4);
        DeviceBuffer pBuf = allocator.allocate(rows * lk * es);
        int ty = Gemm.cudaType(t);
        try {
            for (long b = 0; b < bsz; b++) {
                for (long hi = 0; hi < h; hi++) {
                    long kA = k.address() + ((b * lk * h + hi) * d) * es;
                    long vA = v.address() + ((b * lk * h + hi) * dv) * es;
                    for (long r0 = 0; r0 < lq; r0 += rows) {
                        long r = Math.min(rows, lq - r0);
                        long qA = q.address() + (((b * lq + r0) * h + hi) * d) * es;
                        long oA = out.address() + (((b * lq + r0) * h + hi) * dv) * es;
                        // S (col-major lk × r, ld lk) = Kᵀ-view: op(A) = K [lk × d] (stored d × lk, ld H·d), B = Q [d × r]
                        int a1 = Gemm.alignment(kA, qA, sBuf.address(), h * d * es, lk * 4);
                        Gemm.Key k1 = new Gemm.Key(ty, true, false, lk, r, d, h * d, h * d, lk, 1, 0, 0, 0,
                                CublasLt.EPILOGUE_DEFAULT, a1, CublasLt.R_32F);
                        gemm(k1, kA, qA, sBuf.address(), 0, "attention q·k");
                        boolean v4 = lk % 4 == 0 && (sBuf.address() & 15) == 0 && (pBuf.address() & 7) == 0;
                        args().ptr(pBuf.address()).ptr(sBuf.address()).i64(lk).f32(scale).i32(v4 ? 1 : 0);
                        launch("attention_gemm", "softmax_scores_" + sfx(t), (int) r, 1, 1, 512, 0);
                        // O (col-major dv × r, ld H·dv) = V [dv × lk] (ld H·dv) · P [lk × r] (ld lk)
                        int a2 = Gemm.alignment(vA, pBuf.address(), oA, h * dv * es, lk * es);
                        Gemm.Key k2 = new Gemm.Key(ty, false, false, dv, r, lk, h * dv, lk, h * dv, 1, 0, 0, 0,
                                CublasLt.EPILOGUE_DEFAULT, a2);
                        gemm(k2, vA, pBuf.address(), oA, 0, "attention p·v");
                    }
                }
            }
        } finally {
            sBuf.release();   // stream order keeps them valid for the kernels
            pBuf.release();
        }
    }

    /**
     * Runs attention through cuDNN; false when cuDNN cannot run it here (then it is not tried again on this
     * backend and the caller falls back), unless cuDNN was requested explicitly, which rethrows.
     */
    private boolean cudnnAttention(Tensor out, Tensor q, Tensor k, Tensor v, float scale) {
        return cudnnAttention(out.address(), 0, q, k, v, scale);
    }

    /**
     * cuDNN attention writing o at {@code o} with {@code oRowStride} elements between sequence positions (0 = packed).
     * A strided o that cuDNN refuses only turns strided outputs off ({@link #stridedSdpaBroken}).
     */
    private boolean cudnnAttention(long o, long oRowStride, Tensor q, Tensor k, Tensor v, float scale) {
        if (cudnnBroken || (oRowStride != 0 && stridedSdpaBroken)) return false;
        try {
            if (sdpa == null) sdpa = new org.dit4j.cuda.cudnn.CudnnSdpa();
            var shape = new org.dit4j.cuda.cudnn.CudnnSdpa.Shape((int) q.dim(0), (int) q.dim(2), (int) q.dim(1), (int) k.dim(1),
                    (int) q.dim(3), q.dtype(), scale, org.dit4j.cuda.cudnn.CudnnSdpa.Layout.BSHD, oRowStride);
            var plan = sdpa.plan(shape);
            long ws = plan.workspaceSize();
            DeviceBuffer workspace = ws > 0 ? allocator.allocate(ws) : null;
            try {
                if (profiler != null) profiler.begin(stream);
                plan.execute(q.address(), k.address(), v.address(), o, workspace == null ? 0 : workspace.address(), stream);
                if (profiler != null) profiler.end(stream, CudaProfiler.Category.ATTENTION, "attention cudnn " + shape.batch() + "x"
                        + shape.seqQ() + "x" + shape.seqKv() + "x" + shape.heads() + "x" + shape.headDim()
                        + (oRowStride != 0 ? " o row stride " + oRowStride : ""), shape.flops());
            } finally {
                if (workspace != null) workspace.release();   // stream order keeps it valid for the kernel
            }
            return true;
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            if (oRowStride != 0) {
                stridedSdpaBroken = true;
                System.err.println("dit4j: cuDNN attention with an o row stride failed on " + device + " (" + e.getMessage()
                        + "); attentionInto writes through a copy from now on");
                return false;
            }
            if (attentionOverride == AttentionKernel.CUDNN_SDPA) throw e;
            cudnnBroken = true;
            System.err.println("dit4j: cuDNN attention failed on " + device + " (" + e.getMessage()
                    + "); using the FLASH_MMA kernel from now on");
            return false;
        }
    }

    @Override public void attentionInto(Tensor out, long col, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        checkOpen();
        requireFloat(out, "out");
        requireFloat(q, "q");
        requireFloat(k, "k");
        requireFloat(v, "v");
        if (fusedLayouts && bias == null && q.rank() == 4 && k.rank() == 4 && v.rank() == 4 && out.rank() == 3
                && out.dtype() == q.dtype() && k.dtype() == q.dtype() && v.dtype() == q.dtype()
                && k.dim(0) == q.dim(0) && k.dim(2) == q.dim(2) && k.dim(3) == q.dim(3) && v.shape().equals(k.shape())
                && out.dim(0) == q.dim(0) && out.dim(1) == q.dim(1) && col >= 0 && col + q.dim(2) * q.dim(3) <= out.dim(2)
                && out.dim(2) % 8 == 0 && ((out.address() + col * out.dtype().byteSize()) % 16) == 0
                && attentionKernelFor(q, k, v, null) == AttentionKernel.CUDNN_SDPA
                && cudnnAttention(out.address() + col * out.dtype().byteSize(), out.dim(2), q, k, v, scale)) {
            return;
        }
        Ops.super.attentionInto(out, col, q, k, v, bias, scale);
    }

    // ------------------------------------------------------------------ normalisation

    @Override public Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, float eps) {
        return layerNormImpl(x, weight, bias, null, null, eps);
    }

    @Override public Tensor layerNormModulate(Tensor x, Tensor shift, Tensor scale, float eps) {
        return layerNormImpl(x, null, null, shift, scale, eps);
    }

    private Tensor layerNormImpl(Tensor x, Tensor w, Tensor b, Tensor shift, Tensor scale, float eps) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        long d = x.dim(-1);
        if (w != null) { requireFloat(w, "weight"); if (w.numel() != d) throw shapeError("weight", "[" + d + "]", w.shape()); }
        if (b != null) { requireFloat(b, "bias"); if (b.numel() != d) throw shapeError("bias", "[" + d + "]", b.shape()); }
        long rows = x.numel() / Math.max(1, d);
        long l = 1;
        if (shift != null) {
            requireFloat(shift, "shift");
            requireFloat(scale, "scale");
            l = modulationL(x, shift, scale);
        }
        Tensor out = alloc(x.dtype(), x.shape());
        if (out.numel() == 0) return out;
        DType t = x.dtype();
        boolean sf = vec(t, x, out) && sideF32(t, w, b, shift, scale);
        String ln = sf ? "sf_" : "";
        if ((sf || vec(t, x, w, b, shift, scale, out)) && d % (32L * vecN(t)) == 0 && d / (32L * vecN(t)) <= 16) {
            // one warp per row, the row in registers (D up to 4096 halves / 2048 floats)
            long blocks = (rows + 7) / 8;
            if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows (" + rows + ") for one launch");
            args().ptr(out.address()).ptr(x.address()).i64(rows).i32((int) (d / (32L * vecN(t)))).f32(eps).ptr(addr(w))
                    .ptr(addr(b)).ptr(addr(shift)).ptr(addr(scale)).i64(l);
            launch("norm_vec", "layer_norm_warp_" + ln + sfx(t), (int) blocks, 1, 1, 256, 0);
            return out;
        }
        if ((sf || vec(t, x, w, b, shift, scale, out)) && d % vecN(t) == 0 && d / vecN(t) <= 4 * 256) {
            long dv = d / vecN(t);
            int threads = (int) Math.max(32, Math.min(256, (dv + 31) / 32 * 32));
            args().ptr(out.address()).ptr(x.address()).i64(dv).f32(eps).ptr(addr(w)).ptr(addr(b)).ptr(addr(shift))
                    .ptr(addr(scale)).i64(l);
            if (rows > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows (" + rows + ") for one launch");
            launch("norm_vec", "layer_norm_vec_" + ln + sfx(t), (int) rows, 1, 1, threads, 0);
            return out;
        }
        args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).i64(d).f32(eps)
                .ptr(addr(w)).i32(codeOrZero(w)).ptr(addr(b)).i32(codeOrZero(b))
                .ptr(addr(shift)).i32(codeOrZero(shift)).ptr(addr(scale)).i32(codeOrZero(scale)).i64(l);
        launchRows("norm", "layer_norm", rows, d);
        return out;
    }

    private void launchRows(String file, String name, long rows, long d) {
        if (rows > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows (" + rows + ") for one launch");
        launch(file, name, (int) rows, 1, 1, rowThreads(d), 0);
    }

    /** L for x:[B, L, D] against shift/scale:[B, D] (any leading shape of x whose first dim is B). */
    private static long modulationL(Tensor x, Tensor shift, Tensor scale) {
        long d = x.dim(-1);
        if (x.rank() < 2) throw shapeError("x", "[B, L, D]", x.shape());
        long b = x.dim(0);
        String want = "[" + b + ", " + d + "]";
        if (shift.numel() != b * d || shift.dim(-1) != d) throw shapeError("shift", want, shift.shape());
        if (scale.numel() != b * d || scale.dim(-1) != d) throw shapeError("scale", want, scale.shape());
        return x.numel() / (b * d);
    }

    @Override public Tensor rmsNorm(Tensor x, Tensor weight, float eps) {
        return rmsImpl(x, weight, eps, null, null);
    }

    @Override public Tensor rmsNormRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        return rmsImpl(x, w, eps, cos, sin);
    }

    private Tensor rmsImpl(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        long d = x.dim(-1);
        if (w != null) { requireFloat(w, "weight"); if (w.numel() != d) throw shapeError("weight", "[" + d + "]", w.shape()); }
        long rows = x.numel() / Math.max(1, d);
        long l = 1, h = 1, cb = 0;
        Tensor cf = null, sf = null;
        if (cos != null) {
            long[] ropeDims = ropeDims(x, cos, sin);
            l = ropeDims[0];
            h = ropeDims[1];
            cb = ropeDims[2];
            cf = as(cos, DType.F32);
            sf = as(sin, DType.F32);
        }
        Tensor out = alloc(x.dtype(), x.shape());
        DType t = x.dtype();
        if (out.numel() > 0 && (d == 64 || d == 128 || d == 256) && (w == null || w.dtype() == t)
                && (t == DType.F32 || t == DType.BF16 || t == DType.F16)) {
            long blocks = (rows + 7) / 8;
            if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException("too many rows (" + rows + ") for one launch");
            args().ptr(out.address()).ptr(x.address()).i64(rows).f32(eps).ptr(addr(w)).ptr(addr(cf)).ptr(addr(sf))
                    .i64(l).i64(h).i64(cb);
            launch("norm_vec", "rms_rope_warp" + (d / 32) + "_" + sfx(t), (int) blocks, 1, 1, 256, 0);
        } else if (out.numel() > 0 && cos == null && d >= 256 && vec(t, x, w, out)
                && rmsRowVec(out, x, d, eps, w, null, null, d, 1, 0)) {
            // long rows (e.g. Wan's q/k norm across heads): one block per row, the row in registers
        } else if (out.numel() > 0) {
            args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).i64(d).f32(eps).ptr(addr(w)).i32(codeOrZero(w))
                    .ptr(addr(cf)).ptr(addr(sf)).i64(l).i64(h).i64(cb);
            launchRows("norm", "rms_norm", rows, cos != null ? d / 2 * 4 : d);
        }
        closeIfTemp(cf, cos);
        closeIfTemp(sf, sin);
        return out;
    }

    @Override public Tensor rmsNormAcrossHeadsRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        long[] rd = ropeDims(x, cos, sin);
        long b = x.dim(0), l = x.dim(1), d = x.dim(2) * x.dim(3);
        if (w != null) { requireFloat(w, "weight"); if (w.numel() != d) throw shapeError("weight", "[" + d + "]", w.shape()); }
        Tensor cf = as(cos, DType.F32), sf = as(sin, DType.F32);
        Tensor out = alloc(x.dtype(), x.shape());
        DType t = x.dtype();
        if (out.numel() > 0 && vec(t, x, w, out) && x.dim(3) % vecN(t) == 0 && rmsRowVec(out, x, d, eps, w, cf, sf, x.dim(3), l, rd[2])) {
            // one block per token, the row in registers
        } else if (out.numel() > 0) {
            args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).i64(d).i64(x.dim(3)).f32(eps).ptr(addr(w))
                    .i32(codeOrZero(w)).ptr(cf.address()).ptr(sf.address()).i64(l).i64(rd[2]);
            launchRows("norm", "rms_rope_row", b * l, d / 2 * 4);
        }
        closeIfTemp(cf, cos);
        closeIfTemp(sf, sin);
        return out;
    }

    /**
     * The vector RMS-norm kernel over rows of d values (one block per row; d a whole number of vectors, at most
     * 1024 of them), optionally RoPE per head of hd values after it; false (nothing launched) when d does not fit.
     */
    private boolean rmsRowVec(Tensor out, Tensor x, long d, float eps, Tensor w, Tensor cos, Tensor sin, long hd, long l, long cosBatch) {
        DType t = x.dtype();
        int vn = vecN(t);
        long dv = d / vn, rows = x.numel() / d;
        if (d % vn != 0 || dv > 4L * 256 || rows > Integer.MAX_VALUE) return false;
        int threads = (int) Math.max(32, Math.min(256, (dv + 31) / 32 * 32));
        args().ptr(out.address()).ptr(x.address()).i64(dv).f32(eps).ptr(addr(w)).ptr(addr(cos)).ptr(addr(sin)).i64(hd)
                .i64(l).i64(cosBatch);
        launch("norm_vec", "rms_row_vec_" + sfx(t), (int) rows, 1, 1, threads, 0);
        return true;
    }

    @Override public void qkvNormRopeInto(Tensor qkv, Tensor qWeight, Tensor kWeight, float eps, Tensor cos, Tensor sin,
                                          Tensor q, Tensor k, Tensor v, long offset) {
        checkOpen();
        requireFloat(qkv, "qkv");
        requireFloat(q, "q");
        requireFloat(k, "k");
        requireFloat(v, "v");
        requireFloat(cos, "cos");
        requireFloat(sin, "sin");
        if (q.rank() != 4) throw shapeError("q", "[B, Lt, H, d]", q.shape());
        long b = q.dim(0), lt = q.dim(1), h = q.dim(2), d = q.dim(3);
        if (!k.shape().equals(q.shape())) throw shapeError("k", q.shape().toString(), k.shape());
        if (!v.shape().equals(q.shape())) throw shapeError("v", q.shape().toString(), v.shape());
        if (qkv.rank() != 3 || qkv.dim(0) != b || qkv.dim(2) != 3 * h * d)
            throw shapeError("qkv", "[" + b + ", L, " + 3 * h * d + "] (3·H·d for q " + q.shape() + ")", qkv.shape());
        long len = qkv.dim(1);
        if (offset < 0 || offset + len > lt)
            throw new IllegalArgumentException("qkvNormRopeInto: rows [" + offset + ", " + (offset + len) + ") must lie within the "
                    + lt + " rows of q " + q.shape());
        if (qWeight != null) { requireFloat(qWeight, "qWeight"); if (qWeight.numel() != d) throw shapeError("qWeight", "[" + d + "]", qWeight.shape()); }
        if (kWeight != null) { requireFloat(kWeight, "kWeight"); if (kWeight.numel() != d) throw shapeError("kWeight", "[" + d + "]", kWeight.shape()); }
        boolean two = cos.rank() == 2 && cos.dim(0) == len && cos.dim(1) == d / 2;
        boolean three = cos.rank() == 3 && cos.dim(0) == b && cos.dim(1) == len && cos.dim(2) == d / 2;
        if (d % 2 != 0 || (!two && !three)) throw shapeError("cos", "[" + len + ", " + d / 2 + "] or [" + b + ", " + len + ", " + d / 2 + "]", cos.shape());
        if (!sin.shape().equals(cos.shape())) throw shapeError("sin", cos.shape().toString(), sin.shape());
        DType t = qkv.dtype();
        boolean act = t == DType.F32 || t == DType.BF16 || t == DType.F16;
        int vn = act ? vecN(t) : 0;
        long g = vn == 0 ? 0 : d / vn;
        boolean fast = fusedLayouts && act && d % vn == 0 && g > 0 && g <= 32 && Long.bitCount(g) == 1
                && vec(t, qkv, q, k, v, qWeight, kWeight) && cos.dtype() == DType.F32 && sin.dtype() == DType.F32;
        if (!fast) {
            Ops.super.qkvNormRopeInto(qkv, qWeight, kWeight, eps, cos, sin, q, k, v, offset);
            return;
        }
        long rows = b * len;
        if (rows == 0) return;
        long threads = rows * 3 * h * g;
        long blocks = (threads + THREADS - 1) / THREADS;
        if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException("qkv " + qkv.shape() + " is too large for one launch");
        args().ptr(q.address()).ptr(k.address()).ptr(v.address()).ptr(qkv.address()).i64(rows).i64(len).i32((int) h)
                .i32((int) g).f32(eps).ptr(addr(qWeight)).ptr(addr(kWeight)).ptr(cos.address()).ptr(sin.address())
                .i64(three ? len : 0).i64(lt).i64(offset);
        launch("qkv_vec", "qkv_norm_rope_" + sfx(t), (int) blocks, 1, 1, THREADS, 0);
    }

    /** {L, H, cosBatch} for x:[B, L, H, d] and cos/sin:[L, d/2] or [B, L, d/2]. */
    private long[] ropeDims(Tensor x, Tensor cos, Tensor sin) {
        requireFloat(cos, "cos");
        requireFloat(sin, "sin");
        if (x.rank() != 4) throw shapeError("x", "[B, L, H, d]", x.shape());
        long b = x.dim(0), l = x.dim(1), h = x.dim(2), d = x.dim(3);
        if (d % 2 != 0) throw shapeError("x", "[B, L, H, d] with even d", x.shape());
        String want = "[" + l + ", " + d / 2 + "] or [" + b + ", " + l + ", " + d / 2 + "]";
        boolean two = cos.rank() == 2 && cos.dim(0) == l && cos.dim(1) == d / 2;
        boolean three = cos.rank() == 3 && cos.dim(0) == b && cos.dim(1) == l && cos.dim(2) == d / 2;
        if (!two && !three) throw shapeError("cos", want, cos.shape());
        if (!sin.shape().equals(cos.shape())) throw shapeError("sin", cos.shape().toString(), sin.shape());
        return new long[] {l, h, three ? l : 0};
    }

    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        long[] rd = ropeDims(x, cos, sin);
        Tensor cf = as(cos, DType.F32), sf = as(sin, DType.F32);
        Tensor out = alloc(x.dtype(), x.shape());
        long pairs = x.numel() / 2;
        if (pairs > 0) {
            args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).ptr(cf.address()).ptr(sf.address())
                    .i64(rd[0]).i64(rd[1]).i64(x.dim(3)).i64(rd[2]).i64(pairs);
            launch1d("norm", "rope", pairs);
        }
        closeIfTemp(cf, cos);
        closeIfTemp(sf, sin);
        return out;
    }

    @Override public Tensor groupNorm(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        return groupNormImpl(x, groups, weight, bias, eps, false);
    }

    @Override public Tensor groupNormSilu(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        return groupNormImpl(x, groups, weight, bias, eps, true);
    }

    private Tensor groupNormImpl(Tensor x, int groups, Tensor weight, Tensor bias, float eps, boolean silu) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        if (x.rank() < 2) throw shapeError("x", "[N, C, ...]", x.shape());
        long n = x.dim(0), c = x.dim(1);
        if (groups <= 0 || c % groups != 0) throw new IllegalArgumentException("groups " + groups + " must divide the " + c + " channels of x " + x.shape());
        if (weight != null) { requireFloat(weight, "weight"); if (weight.numel() != c) throw shapeError("weight", "[" + c + "]", weight.shape()); }
        if (bias != null) { requireFloat(bias, "bias"); if (bias.numel() != c) throw shapeError("bias", "[" + c + "]", bias.shape()); }
        long s = x.numel() / Math.max(1, n * c);
        Tensor out = alloc(x.dtype(), x.shape());
        if (out.numel() == 0) return out;
        DType t = x.dtype();
        if (vaeFast && vec(t, x, out) && s % vecN(t) == 0) {
            groupNormVec(out, x, n, c, s, groups, weight, bias, eps, silu);
            return out;
        }
        if (silu) {
            Tensor normed = groupNormImpl(x, groups, weight, bias, eps, false);
            Tensor r = silu(normed);
            normed.close();
            out.close();
            return r;
        }
        args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).i64(c).i64(s).i32(groups).f32(eps)
                .ptr(addr(weight)).i32(codeOrZero(weight)).ptr(addr(bias)).i32(codeOrZero(bias));
        launch("norm", "group_norm", (int) (n * groups), 1, 1, 512, 0);
        return out;
    }

    /**
     * Group norm over many blocks (groupnorm_vec.cu): partial f64 statistics of each group's slices, then the
     * normalisation (+ SiLU) of each slice. x, out: one activation type, 16-byte aligned, S whole vectors.
     */
    private void groupNormVec(Tensor out, Tensor x, long n, long c, long s, int groups, Tensor w, Tensor b, float eps, boolean silu) {
        DType t = x.dtype();
        long ng = n * groups;
        if (ng > 65535) throw new IllegalArgumentException("group norm over " + ng + " (batch × groups) is more than one launch takes");
        long lv = (c / groups) * s / vecN(t);
        // enough blocks to fill the device (8 per SM), at least 256 vectors each, at most 1024 slices per group
        long want = (smCount * 8L + ng - 1) / ng;
        int p = (int) Math.max(1, Math.min(1024, Math.min(want, lv / 256)));
        DeviceBuffer part = allocator.allocate(ng * p * 2 * 8);
        try {
            args().ptr(part.address()).ptr(x.address()).i64(lv);
            launch("groupnorm_vec", "gn_stats_" + sfx(t), p, (int) ng, 1, 256, 0);
            args().ptr(out.address()).ptr(x.address()).ptr(part.address()).i32(p).i64(lv).i64(s).i64(c / groups)
                    .i32(groups).f32(eps).ptr(addr(w)).i32(codeOrZero(w)).ptr(addr(b)).i32(codeOrZero(b)).i32(silu ? 1 : 0);
            launch("groupnorm_vec", "gn_apply_" + sfx(t), p, (int) ng, 1, 256, 0);
        } finally {
            part.release();   // stream order keeps it valid for the kernels
        }
    }

    // ------------------------------------------------------------------ element-wise

    private static final int OP_ADD = 0, OP_SUB = 1, OP_MUL = 2;

    @Override public Tensor add(Tensor a, Tensor b) { return binary(a, b, OP_ADD); }

    @Override public Tensor sub(Tensor a, Tensor b) { return binary(a, b, OP_SUB); }

    @Override public Tensor mul(Tensor a, Tensor b) { return binary(a, b, OP_MUL); }

    private Tensor binary(Tensor a, Tensor b, int op) {
        checkOpen();
        requireDevice(a, "a");
        requireDevice(b, "b");
        long[] od = broadcastShape(a.shape().dims(), b.shape().dims(), "a", "b");
        Tensor out = alloc(a.dtype(), Shape.of(od));
        binaryInto(out, a, b, op);
        return out;
    }

    /** out = a op b with broadcasting to out's shape (out may be a itself: same-index in-place is safe). */
    private void binaryInto(Tensor out, Tensor a, Tensor b, int op) {
        long n = out.numel();
        if (n == 0) return;
        long[] od = out.shape().dims();
        if (isTiledSuffix(a.shape().dims(), od) && isTiledSuffix(b.shape().dims(), od)) {
            DType t = out.dtype();
            int vn = vec(t, out, a, b) ? vecN(t) : 0;
            if (vn > 0 && n % vn == 0 && a.numel() % vn == 0 && b.numel() % vn == 0) {
                args().ptr(out.address()).ptr(a.address()).i64(a.numel() / vn).ptr(b.address()).i64(b.numel() / vn)
                        .i64(n / vn).i32(op);
                launch1d("elementwise_vec", "binary_vec_" + sfx(t), n / vn);
                return;
            }
            args().ptr(out.address()).i32(code(out.dtype())).ptr(a.address()).i32(code(a.dtype())).i64(a.numel())
                    .ptr(b.address()).i32(code(b.dtype())).i64(b.numel()).i64(n).i32(op);
            launch1d("elementwise", "binary_tiled", n);
            return;
        }
        // general broadcast: merge nothing, rank ≤ 8
        int r = od.length;
        if (r > 8) throw new IllegalArgumentException("broadcasting beyond rank 8 is not supported on CUDA: " + out.shape());
        long[] w = new long[26];
        w[0] = n;
        w[1] = r;
        long[] sa = bstrides(a.shape().dims(), r), sb = bstrides(b.shape().dims(), r);
        for (int i = 0; i < r; i++) { w[2 + i] = od[i]; w[10 + i] = sa[i]; w[18 + i] = sb[i]; }
        args().ptr(out.address()).i32(code(out.dtype())).ptr(a.address()).i32(code(a.dtype())).ptr(b.address())
                .i32(code(b.dtype())).struct(w).i32(op);
        launch1d("elementwise", "binary_bcast", n);
    }

    /** True when x (right-aligned) equals out's trailing dims after leading 1s: x repeats as a block over out. */
    private static boolean isTiledSuffix(long[] x, long[] out) {
        int off = out.length - x.length;
        int firstNonOne = 0;
        while (firstNonOne < x.length && x[firstNonOne] == 1) firstNonOne++;
        for (int i = firstNonOne; i < x.length; i++) if (x[i] != out[i + off]) return false;
        return true;
    }

    /** Element strides of x (right-aligned to rank r) with 0 on broadcast dims. */
    private static long[] bstrides(long[] x, int r) {
        long[] s = new long[r];
        long acc = 1;
        for (int i = x.length - 1; i >= 0; i--) {
            s[i + r - x.length] = x[i] == 1 ? 0 : acc;
            acc *= x[i];
        }
        return s;
    }

    private static final int U_SCALE = 0, U_SILU = 1, U_GELU_TANH = 2, U_GELU_ERF = 3;

    private Tensor unary(Tensor x, int op, float alpha) {
        checkOpen();
        requireFloat(x, "x");
        Tensor out = alloc(x.dtype(), x.shape());
        long n = x.numel();
        if (n == 0) return out;
        DType t = x.dtype();
        if (vec(t, x, out) && n % vecN(t) == 0) {
            args().ptr(out.address()).ptr(x.address()).i64(n / vecN(t)).i32(op).f32(alpha);
            launch1d("elementwise_vec", "unary_vec_" + sfx(t), n / vecN(t));
            return out;
        }
        args().ptr(out.address()).i32(code(x.dtype())).ptr(x.address()).i32(code(x.dtype())).i64(n).i32(op).f32(alpha);
        launch1d("elementwise", "unary", n);
        return out;
    }

    @Override public Tensor scale(Tensor x, float s) { return unary(x, U_SCALE, s); }

    @Override public Tensor silu(Tensor x) { return unary(x, U_SILU, 0f); }

    @Override public Tensor gelu(Tensor x, boolean tanh) { return unary(x, tanh ? U_GELU_TANH : U_GELU_ERF, 0f); }

    @Override public Tensor softmax(Tensor x) { return softmax(x, false); }

    /** Softmax over the last dim; with maskedZero a row that is −∞ everywhere gives zeros instead of NaN. */
    private Tensor softmax(Tensor x, boolean maskedZero) {
        checkOpen();
        requireFloat(x, "x");
        long d = x.rank() == 0 ? 1 : x.dim(-1);
        Tensor out = alloc(x.dtype(), x.shape());
        if (out.numel() == 0) return out;
        args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).i64(d).i32(maskedZero ? 1 : 0);
        launchRows("norm", "softmax", x.numel() / d, d);
        return out;
    }

    /**
     * {@link Ops#absSums} on the device: one block per {@link HostReductions#CHUNK} elements (f64 partials), the partials
     * added in chunk order by one thread, and only the two sums cross to the host (one synchronisation, 16 bytes) —
     * instead of both tensors. Same chunking as the CPU reference; inside a chunk the order differs (f64, ≈1e-16).
     */
    @Override public double[] absSums(Tensor a, Tensor b) {
        checkOpen();
        HostReductions.checkAbsSums(a, b);
        requireDevice(a, "a");
        requireDevice(b, "b");
        long n = a.numel();
        if (n == 0) return new double[] {0, 0};
        long chunks = (n + HostReductions.CHUNK - 1) / HostReductions.CHUNK;
        if (chunks > Integer.MAX_VALUE) throw new IllegalArgumentException("absSums: " + n + " elements is more than this kernel's grid covers");
        // f64 pairs in F32 tensors (4 floats = 2 doubles per chunk)
        try (Tensor part = alloc(DType.F32, Shape.of(chunks * 4)); Tensor sums = alloc(DType.F32, Shape.of(4))) {
            args().ptr(part.address()).ptr(a.address()).i32(code(a.dtype())).ptr(b.address()).i32(code(b.dtype()))
                    .i64(n).i64(HostReductions.CHUNK);
            launch("norm", "abs_sums_chunks", (int) chunks, 1, 1, 256, 0);
            args().ptr(sums.address()).ptr(part.address()).i64(chunks);
            launch("norm", "abs_sums_total", 1, 1, 1, 32, 0);
            try (Tensor host = toHost(sums)) {
                MemorySegment m = host.segment();
                return new double[] {m.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, 0), m.get(ValueLayout.JAVA_DOUBLE_UNALIGNED, 8)};
            }
        }
    }

    @Override public Tensor modulate(Tensor x, Tensor shift, Tensor scale) {
        checkOpen();
        requireFloat(x, "x");
        requireFloat(shift, "shift");
        requireFloat(scale, "scale");
        long l = modulationL(x, shift, scale), d = x.dim(-1);
        Tensor out = alloc(x.dtype(), x.shape());
        long n = x.numel();
        if (n == 0) return out;
        DType t = x.dtype();
        boolean sf = vec(t, x, out) && sideF32(t, shift, scale);
        if ((sf || vec(t, x, shift, scale, out)) && d % vecN(t) == 0) {
            int vn = vecN(t);
            args().ptr(out.address()).ptr(x.address()).ptr(shift.address()).ptr(scale.address()).i64(l).i64(d / vn).i64(n / vn);
            launch1d("elementwise_vec", "modulate_vec_" + (sf ? "sf_" : "") + sfx(t), n / vn);
            return out;
        }
        args().ptr(out.address()).ptr(x.address()).i32(code(x.dtype())).ptr(shift.address()).i32(code(shift.dtype()))
                .ptr(scale.address()).i32(code(scale.dtype())).i64(l).i64(d).i64(n);
        launch1d("elementwise", "modulate", n);
        return out;
    }

    @Override public Tensor gatedResidual(Tensor residual, Tensor gate, Tensor y) {
        checkOpen();
        requireFloat(residual, "residual");
        requireFloat(gate, "gate");
        requireFloat(y, "y");
        if (!y.shape().equals(residual.shape())) throw shapeError("y", residual.shape().toString(), y.shape());
        long l = modulationL(residual, gate, gate), d = residual.dim(-1);
        Tensor out = alloc(residual.dtype(), residual.shape());
        long n = residual.numel();
        if (n == 0) return out;
        DType t = residual.dtype();
        boolean sf = vec(t, residual, y, out) && sideF32(t, gate);
        if ((sf || vec(t, residual, gate, y, out)) && d % vecN(t) == 0) {
            int vn = vecN(t);
            args().ptr(out.address()).ptr(residual.address()).ptr(gate.address()).ptr(y.address()).i64(l).i64(d / vn).i64(n / vn);
            launch1d("elementwise_vec", "gated_residual_vec_" + (sf ? "sf_" : "") + sfx(t), n / vn);
            return out;
        }
        args().ptr(out.address()).ptr(residual.address()).i32(code(residual.dtype())).ptr(gate.address())
                .i32(code(gate.dtype())).ptr(y.address()).i32(code(y.dtype())).i64(l).i64(d).i64(n);
        launch1d("elementwise", "gated_residual", n);
        return out;
    }

    // ------------------------------------------------------------------ convolution and resampling

    @Override public Tensor conv2d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding, int groups) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        requireFloat(w, "w");
        if (x.rank() != 4) throw shapeError("x", "[N, C, H, W]", x.shape());
        long n = x.dim(0), c = x.dim(1), hh = x.dim(2), ww = x.dim(3);
        if (groups <= 0 || c % groups != 0) throw new IllegalArgumentException("groups " + groups + " must divide the " + c + " input channels");
        long cg = c / groups;
        if (w.rank() != 4 || w.dim(1) != cg || w.dim(0) % groups != 0)
            throw shapeError("w", "[O, " + cg + ", kh, kw] with O divisible by " + groups, w.shape());
        long o = w.dim(0), og = o / groups;
        int kh = (int) w.dim(2), kw = (int) w.dim(3);
        int sh = stride[0], sw = stride.length > 1 ? stride[1] : stride[0];
        int ph = padding[0], pw = padding.length > 1 ? padding[1] : padding[0];
        long ho = (hh + 2L * ph - kh) / sh + 1, wo = (ww + 2L * pw - kw) / sw + 1;
        if (ho <= 0 || wo <= 0) throw new IllegalArgumentException("conv2d output would be empty for x " + x.shape() + " and w " + w.shape());
        checkBias(bias, o);
        DType t = x.dtype();
        long es = t.byteSize();
        Tensor out = alloc(t, Shape.of(n, o, ho, wo));
        Tensor wc = as(w, t);
        boolean pointwise = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
        if (groups == 1 && !pointwise && cudnnConvolution(out, x, wc, new long[] {sh, sw}, new long[] {ph, pw})) {
            closeIfTemp(wc, w);
            addChannelBias(out, bias, o);
            return out;
        }
        long kdim = cg * kh * kw;
        long hw = ho * wo;
        boolean direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
        long rowsPerChunk = direct ? ho : Math.max(1, Math.min(ho, IM2COL_BYTES / Math.max(1, kdim * wo * es)));
        Tensor col = direct ? null : alloc(t, Shape.of(kdim * rowsPerChunk * wo));
        for (long ni = 0; ni < n; ni++) {
            for (int g = 0; g < groups; g++) {
                long xg = x.address() + ((ni * c + g * cg) * hh * ww) * es;
                long wg = wc.address() + g * og * kdim * es;
                for (long y0 = 0; y0 < ho; y0 += rowsPerChunk) {
                    long rows = Math.min(rowsPerChunk, ho - y0);
                    long p = rows * wo;
                    long a;
                    if (direct) {
                        a = xg + y0 * wo * es;
                    } else {
                        args().ptr(col.address()).ptr(xg).i64(cg).i64(hh).i64(ww).i32(kh).i32(kw).i32(sh).i32(sw)
                                .i32(ph).i32(pw).i64(wo).i64(y0).i64(rows);
                        launch1d("conv", "im2col2d_" + es, kdim * p);
                        a = col.address();
                    }
                    long d = out.address() + ((ni * o + g * og) * hw + y0 * wo) * es;
                    long lda = direct ? hw : p;
                    convGemm(t, a, lda, wg, d, hw, p, og, kdim);
                }
            }
        }
        if (col != null) col.close();
        closeIfTemp(wc, w);
        addChannelBias(out, bias, o);
        return out;
    }

    /**
     * out = conv(x, w) through cuDNN (no bias) when the fast paths are on and cuDNN takes it: BF16/F16, 16-byte aligned
     * tensors. False when it did not run (the caller then uses im2col + GEMM); a cuDNN failure turns the path off for
     * this backend with a note on stderr.
     */
    private boolean cudnnConvolution(Tensor out, Tensor x, Tensor w, long[] stride, long[] padding) {
        DType t = x.dtype();
        if (!vaeFast || cudnnConvBroken || (t != DType.BF16 && t != DType.F16) || w.dtype() != t) return false;
        if (((x.address() | w.address() | out.address()) & 15) != 0) return false;
        if (!org.dit4j.cuda.cudnn.Cudnn.isAvailable()) {
            cudnnConvBroken = true;
            return false;
        }
        try {
            if (cudnnConv == null) cudnnConv = new org.dit4j.cuda.cudnn.CudnnConv();
            var shape = new org.dit4j.cuda.cudnn.CudnnConv.Shape(t, x.shape().dims(), w.shape().dims(), stride, padding);
            var plan = cudnnConv.tunedPlan(shape, x.address(), w.address(), out.address(), stream, CONV_TUNE_CANDIDATES);
            long ws = plan.workspaceSize();
            DeviceBuffer workspace = ws > 0 ? allocator.allocate(ws) : null;
            try {
                if (profiler != null) profiler.begin(stream);
                plan.execute(x.address(), w.address(), out.address(), workspace == null ? 0 : workspace.address(), stream);
                if (profiler != null) profiler.end(stream, CudaProfiler.Category.GEMM, "conv cudnn " + shape, shape.flops());
            } finally {
                if (workspace != null) workspace.release();   // stream order keeps it valid for the kernel
            }
            return true;
        } catch (RuntimeException | UnsatisfiedLinkError e) {
            cudnnConvBroken = true;
            System.err.println("dit4j: cuDNN convolution failed on " + device + " (" + e.getMessage()
                    + "); convolutions use im2col + GEMM from now on");
            return false;
        }
    }

    /**
     * How many cuDNN engine configs are timed the first time a convolution shape runs ({@code -Ddit4j.conv.autotune};
     * 1 = take the heuristics' first). The heuristics' first pick ran the 16-channel conv_in of the Flux VAE at 1 TFLOP/s.
     */
    private static final int CONV_TUNE_CANDIDATES = Integer.getInteger("dit4j.conv.autotune", 6);

    /** Number of cached cuDNN convolution plans (for tests). */
    public int cudnnConvPlanCount() { return cudnnConv == null ? 0 : cudnnConv.planCount(); }

    /** out (col-major p × og, ld ldd) = A (col-major p × kdim, ld lda) · B (col-major kdim × og, ld kdim). */
    private void convGemm(DType t, long a, long lda, long b, long d, long ldd, long p, long og, long kdim) {
        int align = Gemm.alignment(a, b, d, lda * t.byteSize(), kdim * t.byteSize(), ldd * t.byteSize());
        Gemm.Key key = new Gemm.Key(Gemm.cudaType(t), false, false, p, og, kdim, lda, kdim, ldd, 1, 0, 0, 0,
                CublasLt.EPILOGUE_DEFAULT, align);
        gemm(key, a, b, d, 0, "conv");
    }

    private void checkBias(Tensor bias, long o) {
        if (bias == null) return;
        requireFloat(bias, "bias");
        if (bias.numel() != o) throw shapeError("bias", "[" + o + "]", bias.shape());
    }

    /** out[n, o, ...] += bias[o], in place. */
    private void addChannelBias(Tensor out, Tensor bias, long o) {
        if (bias == null) return;
        long s = out.numel() / (out.dim(0) * o);
        DType t = out.dtype();
        if (vaeFast && vec(t, out) && s % vecN(t) == 0) {
            long nv = out.numel() / vecN(t);
            args().ptr(out.address()).ptr(bias.address()).i32(code(bias.dtype())).i64(s / vecN(t)).i64(o).i64(nv);
            launch1d("conv_vec", "channel_bias_vec_" + sfx(t), nv);
            return;
        }
        Tensor bv = bias.view(o, 1);
        Tensor ov = out.view(out.dim(0), o, s);
        binaryInto(ov, ov, bv, OP_ADD);
    }

    @Override public Tensor conv3d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding) {
        checkOpen();
        requireFloat(x, "x");
        requireActivation(x, "x");
        requireFloat(w, "w");
        if (x.rank() != 5) throw shapeError("x", "[N, C, T, H, W]", x.shape());
        long n = x.dim(0), c = x.dim(1), tt = x.dim(2), hh = x.dim(3), ww = x.dim(4);
        if (w.rank() != 5 || w.dim(1) != c) throw shapeError("w", "[O, " + c + ", kt, kh, kw]", w.shape());
        long o = w.dim(0), kt = w.dim(2), kh = w.dim(3), kw = w.dim(4);
        long st = stride[0], sh = stride.length > 1 ? stride[1] : st, sw = stride.length > 2 ? stride[2] : sh;
        long pt = padding[0], ph = padding.length > 1 ? padding[1] : pt, pw = padding.length > 2 ? padding[2] : ph;
        long to = (tt + 2 * pt - kt) / st + 1, ho = (hh + 2 * ph - kh) / sh + 1, wo = (ww + 2 * pw - kw) / sw + 1;
        if (to <= 0 || ho <= 0 || wo <= 0) throw new IllegalArgumentException("conv3d output would be empty for x " + x.shape() + " and w " + w.shape());
        checkBias(bias, o);
        DType t = x.dtype();
        long es = t.byteSize();
        Tensor out = alloc(t, Shape.of(n, o, to, ho, wo));
        Tensor wc = as(w, t);
        if (cudnnConvolution(out, x, wc, new long[] {st, sh, sw}, new long[] {pt, ph, pw})) {
            closeIfTemp(wc, w);
            addChannelBias(out, bias, o);
            return out;
        }
        long kdim = c * kt * kh * kw;
        long positions = to * ho * wo;
        long chunk = Math.max(1, Math.min(positions, IM2COL_BYTES / Math.max(1, kdim * es)));
        Tensor col = alloc(t, Shape.of(kdim * chunk));
        long[] g = {c, tt, hh, ww, kt, kh, kw, st, sh, sw, pt, ph, pw, to, ho, wo};
        for (long ni = 0; ni < n; ni++) {
            long xn = x.address() + ni * c * tt * hh * ww * es;
            for (long q0 = 0; q0 < positions; q0 += chunk) {
                long p = Math.min(chunk, positions - q0);
                args().ptr(col.address()).ptr(xn).struct(g).i64(q0).i64(p);
                launch1d("conv", "im2col3d_" + es, kdim * p);
                long d = out.address() + (ni * o * positions + q0) * es;
                convGemm(t, col.address(), p, wc.address(), d, positions, p, o, kdim);
            }
        }
        col.close();
        closeIfTemp(wc, w);
        addChannelBias(out, bias, o);
        return out;
    }

    @Override public Tensor upsampleNearest2d(Tensor x, int factor) {
        checkOpen();
        requireDevice(x, "x");
        if (x.rank() < 2) throw shapeError("x", "[..., H, W]", x.shape());
        if (factor < 1) throw new IllegalArgumentException("upsampling factor must be ≥ 1, got " + factor);
        long h = x.dim(-2), w = x.dim(-1);
        Tensor out = alloc(x.dtype(), x.shape().with(-2, h * factor).with(-1, w * factor));
        long n = out.numel();
        if (n == 0) return out;
        if (vaeFast && factor == 2 && x.dtype().byteSize() == 2 && w % 8 == 0 && ((x.address() | out.address()) & 15) == 0) {
            long nv = x.numel() / 8;
            args().ptr(out.address()).ptr(x.address()).i64(w / 8).i64(nv);
            launch1d("conv_vec", "upsample2_vec_2", nv);
            return out;
        }
        args().ptr(out.address()).ptr(x.address()).i64(h).i64(w).i32(factor).i64(n);
        launch1d("layout", "upsample_" + x.dtype().byteSize(), n);
        return out;
    }
}
