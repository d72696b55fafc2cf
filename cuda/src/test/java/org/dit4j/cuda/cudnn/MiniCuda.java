package org.dit4j.cuda.cudnn;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The few CUDA driver calls the cuDNN tests and benchmark need (context, memory, stream, events).
 * A private stand-in until the cuda module's {@code CudaDriver} lands; not a public API.
 */
final class MiniCuda {
    private static MiniCuda instance;
    private static String unavailable;

    private final MethodHandle cuInit, cuDeviceGet, cuDeviceGetCount, cuDeviceGetName, cuPrimaryCtxRetain, cuCtxSetCurrent,
            cuMemAlloc, cuMemFree, cuMemcpyHtoD, cuMemcpyDtoH, cuMemsetD16, cuStreamCreate, cuStreamSynchronize,
            cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuGetErrorString, cuCtxSynchronize,
            cuBeginCapture, cuEndCapture, cuGraphInstantiate, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy;
    final String deviceName;

    /** The driver with device 0's primary context current on the calling thread, or null (see {@link #whyUnavailable()}). */
    static synchronized MiniCuda get() {
        if (instance != null || unavailable != null) {
            if (instance != null) instance.makeCurrent();
            return instance;
        }
        try {
            instance = new MiniCuda();
        } catch (Throwable t) {
            unavailable = t.getMessage();
        }
        return instance;
    }

    static synchronized String whyUnavailable() { return unavailable; }

    private MemorySegment context;

    private MiniCuda() {
        SymbolLookup l;
        try {
            l = SymbolLookup.libraryLookup("libcuda.so.1", Arena.global());
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("no CUDA driver (libcuda.so.1 not loadable): " + e.getMessage());
        }
        Linker lk = Linker.nativeLinker();
        cuInit = h(l, lk, "cuInit", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
        cuDeviceGet = h(l, lk, "cuDeviceGet", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuDeviceGetCount = h(l, lk, "cuDeviceGetCount", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuDeviceGetName = h(l, lk, "cuDeviceGetName", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
        cuPrimaryCtxRetain = h(l, lk, "cuDevicePrimaryCtxRetain", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuCtxSetCurrent = h(l, lk, "cuCtxSetCurrent", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuCtxSynchronize = h(l, lk, "cuCtxSynchronize", FunctionDescriptor.of(JAVA_INT));
        cuMemAlloc = h(l, lk, "cuMemAlloc_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
        cuMemFree = h(l, lk, "cuMemFree_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
        cuMemcpyHtoD = h(l, lk, "cuMemcpyHtoD_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, ADDRESS, JAVA_LONG));
        cuMemcpyDtoH = h(l, lk, "cuMemcpyDtoH_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
        cuMemsetD16 = h(l, lk, "cuMemsetD16_v2", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_SHORT, JAVA_LONG));
        cuStreamCreate = h(l, lk, "cuStreamCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuStreamSynchronize = h(l, lk, "cuStreamSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuEventCreate = h(l, lk, "cuEventCreate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuEventRecord = h(l, lk, "cuEventRecord", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuEventSynchronize = h(l, lk, "cuEventSynchronize", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        MemorySegment elapsed = l.find("cuEventElapsedTime_v2").orElseGet(() -> l.find("cuEventElapsedTime").orElseThrow());
        cuEventElapsedTime = lk.downcallHandle(elapsed, FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        cuGetErrorString = h(l, lk, "cuGetErrorString", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
        cuBeginCapture = h(l, lk, "cuStreamBeginCapture_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
        cuEndCapture = h(l, lk, "cuStreamEndCapture", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuGraphInstantiate = h(l, lk, "cuGraphInstantiateWithFlags", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
        cuGraphLaunch = h(l, lk, "cuGraphLaunch", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        cuGraphExecDestroy = h(l, lk, "cuGraphExecDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        cuGraphDestroy = h(l, lk, "cuGraphDestroy", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        try (Arena a = Arena.ofConfined()) {
            check((int) cuInit.invokeExact(0), "cuInit");
            MemorySegment n = a.allocate(JAVA_INT);
            check((int) cuDeviceGetCount.invokeExact(n), "cuDeviceGetCount");
            if (n.get(JAVA_INT, 0) < 1) throw new IllegalStateException("CUDA driver present but no GPU visible");
            MemorySegment dev = a.allocate(JAVA_INT);
            check((int) cuDeviceGet.invokeExact(dev, 0), "cuDeviceGet");
            MemorySegment name = a.allocate(256);
            check((int) cuDeviceGetName.invokeExact(name, 256, dev.get(JAVA_INT, 0)), "cuDeviceGetName");
            deviceName = name.getString(0);
            MemorySegment ctx = a.allocate(ADDRESS);
            check((int) cuPrimaryCtxRetain.invokeExact(ctx, dev.get(JAVA_INT, 0)), "cuDevicePrimaryCtxRetain");
            context = ctx.get(ADDRESS, 0);
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        makeCurrent();
    }

    private static MethodHandle h(SymbolLookup l, Linker lk, String name, FunctionDescriptor fd) {
        return lk.downcallHandle(l.find(name).orElseThrow(() -> new IllegalStateException("libcuda lacks " + name)), fd);
    }

    void makeCurrent() {
        try {
            check((int) cuCtxSetCurrent.invokeExact(context), "cuCtxSetCurrent");
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private void check(int st, String call) {
        if (st == 0) return;
        String msg = "?";
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            if ((int) cuGetErrorString.invokeExact(st, p) == 0) msg = p.get(ADDRESS, 0).reinterpret(512).getString(0);
        } catch (Throwable ignored) {
            // keep "?"
        }
        throw new IllegalStateException(call + " failed: CUDA error " + st + " (" + msg + ")");
    }

    private interface Call { int run() throws Throwable; }

    private void call(String name, Call c) {
        int st;
        try {
            st = c.run();
        } catch (RuntimeException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        check(st, name);
    }

    long alloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(JAVA_LONG);
            call("cuMemAlloc(" + bytes + ")", () -> (int) cuMemAlloc.invokeExact(p, bytes));
            return p.get(JAVA_LONG, 0);
        }
    }

    void free(long ptr) { if (ptr != 0) call("cuMemFree", () -> (int) cuMemFree.invokeExact(ptr)); }

    void upload(long dst, MemorySegment src) { call("cuMemcpyHtoD", () -> (int) cuMemcpyHtoD.invokeExact(dst, src, src.byteSize())); }

    void download(MemorySegment dst, long src) { call("cuMemcpyDtoH", () -> (int) cuMemcpyDtoH.invokeExact(dst, src, dst.byteSize())); }

    void fill16(long dst, short value, long count) { call("cuMemsetD16", () -> (int) cuMemsetD16.invokeExact(dst, value, count)); }

    MemorySegment stream() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            call("cuStreamCreate", () -> (int) cuStreamCreate.invokeExact(p, 1 /* non-blocking */));
            return p.get(ADDRESS, 0);
        }
    }

    void sync(MemorySegment stream) { call("cuStreamSynchronize", () -> (int) cuStreamSynchronize.invokeExact(stream)); }

    void syncAll() { call("cuCtxSynchronize", () -> (int) cuCtxSynchronize.invokeExact()); }

    MemorySegment event() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            call("cuEventCreate", () -> (int) cuEventCreate.invokeExact(p, 0));
            return p.get(ADDRESS, 0);
        }
    }

    void record(MemorySegment event, MemorySegment stream) { call("cuEventRecord", () -> (int) cuEventRecord.invokeExact(event, stream)); }

    /**
     * Captures what {@code work} enqueues on {@code stream} (strictest mode: CU_STREAM_CAPTURE_MODE_GLOBAL) and
     * returns the instantiated graph exec; the graph itself is destroyed.
     */
    MemorySegment capture(MemorySegment stream, Runnable work) {
        call("cuStreamBeginCapture", () -> (int) cuBeginCapture.invokeExact(stream, 0));
        RuntimeException failure = null;
        try {
            work.run();
        } catch (RuntimeException e) {
            failure = e;
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment g = a.allocate(ADDRESS);
            call("cuStreamEndCapture", () -> (int) cuEndCapture.invokeExact(stream, g));
            MemorySegment graph = g.get(ADDRESS, 0);
            if (failure != null) {
                if (!graph.equals(MemorySegment.NULL)) call("cuGraphDestroy", () -> (int) cuGraphDestroy.invokeExact(graph));
                throw failure;
            }
            MemorySegment e = a.allocate(ADDRESS);
            call("cuGraphInstantiate", () -> (int) cuGraphInstantiate.invokeExact(e, graph, 0L));
            call("cuGraphDestroy", () -> (int) cuGraphDestroy.invokeExact(graph));
            return e.get(ADDRESS, 0);
        }
    }

    void launch(MemorySegment graphExec, MemorySegment stream) {
        call("cuGraphLaunch", () -> (int) cuGraphLaunch.invokeExact(graphExec, stream));
    }

    void destroyGraphExec(MemorySegment graphExec) {
        call("cuGraphExecDestroy", () -> (int) cuGraphExecDestroy.invokeExact(graphExec));
    }

    /** Milliseconds between two recorded events (waits for the second). */
    float elapsed(MemorySegment start, MemorySegment end) {
        call("cuEventSynchronize", () -> (int) cuEventSynchronize.invokeExact(end));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ms = a.allocate(JAVA_FLOAT);
            call("cuEventElapsedTime", () -> (int) cuEventElapsedTime.invokeExact(ms, start, end));
            return ms.get(JAVA_FLOAT, 0);
        }
    }
}
