package org.dit4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Typed bindings of the CUDA driver API ({@code libcuda}). Handles (contexts, streams, events, modules, functions,
 * graphs) and device pointers are plain {@code long}s. Every call checks its {@code CUresult} and throws a
 * {@link CudaException} naming the call, the error name and the driver's error string.
 */
public final class CudaDriver {
    // device attributes (CUdevice_attribute)
    public static final int ATTR_MAX_THREADS_PER_BLOCK = 1;
    public static final int ATTR_MULTIPROCESSOR_COUNT = 16;
    public static final int ATTR_L2_CACHE_SIZE = 38;
    public static final int ATTR_COMPUTE_CAPABILITY_MAJOR = 75;
    public static final int ATTR_COMPUTE_CAPABILITY_MINOR = 76;
    public static final int ATTR_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    // function attributes (CUfunction_attribute)
    public static final int FUNC_ATTR_NUM_REGS = 4;
    public static final int FUNC_ATTR_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
    // flags
    public static final int STREAM_NON_BLOCKING = 1;
    public static final int EVENT_DEFAULT = 0;
    public static final int EVENT_DISABLE_TIMING = 2;
    public static final int MEMHOSTALLOC_PORTABLE = 1;
    public static final int CAPTURE_MODE_GLOBAL = 0;
    public static final int CAPTURE_MODE_THREAD_LOCAL = 1;
    public static final int CAPTURE_MODE_RELAXED = 2;
    public static final int CUDA_ERROR_OUT_OF_MEMORY = 2;
    public static final int CUDA_ERROR_NOT_READY = 600;

    private static volatile CudaDriver instance;

    private final MethodHandle cuInit, cuDriverGetVersion, cuGetErrorString, cuGetErrorName;
    private final MethodHandle cuDeviceGetCount, cuDeviceGet, cuDeviceGetName, cuDeviceGetAttribute, cuDeviceTotalMem;
    private final MethodHandle cuDevicePrimaryCtxRetain, cuDevicePrimaryCtxRelease, cuCtxSetCurrent, cuCtxGetCurrent,
            cuCtxSynchronize;
    private final MethodHandle cuStreamCreate, cuStreamDestroy, cuStreamSynchronize, cuStreamWaitEvent,
            cuStreamIsCapturing, cuStreamCreateWithPriority, cuCtxGetStreamPriorityRange;
    private final MethodHandle cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventQuery, cuEventElapsedTime,
            cuEventDestroy;
    private final MethodHandle cuMemAlloc, cuMemFree, cuMemGetInfo, cuMemcpyHtoDAsync, cuMemcpyDtoHAsync,
            cuMemcpyDtoDAsync, cuMemsetD8Async, cuMemsetD32Async, cuMemHostAlloc, cuMemFreeHost;
    private final MethodHandle cuModuleLoadData, cuModuleUnload, cuModuleGetFunction, cuFuncSetAttribute,
            cuFuncGetAttribute, cuLaunchKernel;
    private final MethodHandle cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch,
            cuGraphExecDestroy, cuGraphDestroy;

    private CudaDriver(SymbolLookup lib) {
        Linker linker = Linker.nativeLinker();
        Binder b = new Binder(linker, lib);
        cuInit = b.fn("cuInit", JAVA_INT);
        cuDriverGetVersion = b.fn("cuDriverGetVersion", ADDRESS);
        cuGetErrorString = b.fn("cuGetErrorString", JAVA_INT, ADDRESS);
        cuGetErrorName = b.fn("cuGetErrorName", JAVA_INT, ADDRESS);
        cuDeviceGetCount = b.fn("cuDeviceGetCount", ADDRESS);
        cuDeviceGet = b.fn("cuDeviceGet", ADDRESS, JAVA_INT);
        cuDeviceGetName = b.fn("cuDeviceGetName", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceGetAttribute = b.fn("cuDeviceGetAttribute", ADDRESS, JAVA_INT, JAVA_INT);
        cuDeviceTotalMem = b.fn("cuDeviceTotalMem_v2", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRetain = b.fn("cuDevicePrimaryCtxRetain", ADDRESS, JAVA_INT);
        cuDevicePrimaryCtxRelease = b.fn("cuDevicePrimaryCtxRelease_v2", JAVA_INT);
        cuCtxSetCurrent = b.fn("cuCtxSetCurrent", JAVA_LONG);
        cuCtxGetCurrent = b.fn("cuCtxGetCurrent", ADDRESS);
        cuCtxSynchronize = b.fn("cuCtxSynchronize");
        cuStreamCreate = b.fn("cuStreamCreate", ADDRESS, JAVA_INT);
        cuStreamDestroy = b.fn("cuStreamDestroy_v2", JAVA_LONG);
        cuStreamSynchronize = b.fn("cuStreamSynchronize", JAVA_LONG);
        cuStreamWaitEvent = b.fn("cuStreamWaitEvent", JAVA_LONG, JAVA_LONG, JAVA_INT);
        cuStreamIsCapturing = b.fn("cuStreamIsCapturing", JAVA_LONG, ADDRESS);
        cuStreamCreateWithPriority = b.fn("cuStreamCreateWithPriority", ADDRESS, JAVA_INT, JAVA_INT);
        cuCtxGetStreamPriorityRange = b.fn("cuCtxGetStreamPriorityRange", ADDRESS, ADDRESS);
        cuEventCreate = b.fn("cuEventCreate", ADDRESS, JAVA_INT);
        cuEventRecord = b.fn("cuEventRecord", JAVA_LONG, JAVA_LONG);
        cuEventSynchronize = b.fn("cuEventSynchronize", JAVA_LONG);
        cuEventQuery = b.fn("cuEventQuery", JAVA_LONG);
        cuEventElapsedTime = b.fnAny(new String[] {"cuEventElapsedTime_v2", "cuEventElapsedTime"}, ADDRESS, JAVA_LONG, JAVA_LONG);
        cuEventDestroy = b.fn("cuEventDestroy_v2", JAVA_LONG);
        cuMemAlloc = b.fn("cuMemAlloc_v2", ADDRESS, JAVA_LONG);
        cuMemFree = b.fn("cuMemFree_v2", JAVA_LONG);
        cuMemGetInfo = b.fn("cuMemGetInfo_v2", ADDRESS, ADDRESS);
        cuMemcpyHtoDAsync = b.fn("cuMemcpyHtoDAsync_v2", JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_LONG);
        cuMemcpyDtoHAsync = b.fn("cuMemcpyDtoHAsync_v2", ADDRESS, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        cuMemcpyDtoDAsync = b.fn("cuMemcpyDtoDAsync_v2", JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG);
        cuMemsetD8Async = b.fn("cuMemsetD8Async", JAVA_LONG, JAVA_BYTE, JAVA_LONG, JAVA_LONG);
        cuMemsetD32Async = b.fn("cuMemsetD32Async", JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG);
        cuMemHostAlloc = b.fn("cuMemHostAlloc", ADDRESS, JAVA_LONG, JAVA_INT);
        cuMemFreeHost = b.fn("cuMemFreeHost", JAVA_LONG);
        cuModuleLoadData = b.fn("cuModuleLoadData", ADDRESS, ADDRESS);
        cuModuleUnload = b.fn("cuModuleUnload", JAVA_LONG);
        cuModuleGetFunction = b.fn("cuModuleGetFunction", ADDRESS, JAVA_LONG, ADDRESS);
        cuFuncSetAttribute = b.fn("cuFuncSetAttribute", JAVA_LONG, JAVA_INT, JAVA_INT);
        cuFuncGetAttribute = b.fn("cuFuncGetAttribute", ADDRESS, JAVA_INT, JAVA_LONG);
        cuLaunchKernel = b.fn("cuLaunchKernel", JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS);
        cuStreamBeginCapture = b.fn("cuStreamBeginCapture_v2", JAVA_LONG, JAVA_INT);
        cuStreamEndCapture = b.fn("cuStreamEndCapture", JAVA_LONG, ADDRESS);
        cuGraphInstantiate = b.fn("cuGraphInstantiateWithFlags", ADDRESS, JAVA_LONG, JAVA_LONG);
        cuGraphLaunch = b.fn("cuGraphLaunch", JAVA_LONG, JAVA_LONG);
        cuGraphExecDestroy = b.fn("cuGraphExecDestroy", JAVA_LONG);
        cuGraphDestroy = b.fn("cuGraphDestroy", JAVA_LONG);
    }

    /** The driver, loaded and initialised ({@code cuInit(0)}) on first use. */
    public static CudaDriver get() {
        CudaDriver d = instance;
        if (d == null) {
            synchronized (CudaDriver.class) {
                d = instance;
                if (d == null) {
                    d = new CudaDriver(CudaLibraries.load(CudaLibraries.Lib.DRIVER));
                    d.init(0);
                    instance = d;
                }
            }
        }
        return d;
    }

    /** Looks up C functions and builds their downcall handles (return type int unless told otherwise). */
    static final class Binder {
        private final Linker linker;
        private final SymbolLookup lib;

        Binder(Linker linker, SymbolLookup lib) {
            this.linker = linker;
            this.lib = lib;
        }

        MethodHandle fn(String name, MemoryLayout... args) {
            return fnRet(name, JAVA_INT, args);
        }

        MethodHandle fnRet(String name, MemoryLayout ret, MemoryLayout... args) {
            MemorySegment sym = lib.find(name).orElseThrow(() -> new CudaException(
                    "symbol " + name + " not found in the loaded library; the library is too old for dit4j "
                            + "(a CUDA 12 or 13 installation is needed)"));
            FunctionDescriptor fd = ret == null ? FunctionDescriptor.ofVoid(args) : FunctionDescriptor.of(ret, args);
            return linker.downcallHandle(sym, fd);
        }

        MethodHandle fnAny(String[] names, MemoryLayout... args) {
            for (String n : names) if (lib.find(n).isPresent()) return fn(n, args);
            throw new CudaException("none of the symbols " + String.join(", ", names) + " found in the loaded library");
        }
    }

    // ------------------------------------------------------------------ errors

    private void check(int res, String call) {
        if (res != 0) throw new CudaException(call + " failed: " + errorName(res) + " (" + res + "): " + errorString(res), res);
    }

    /** CUDA_ERROR_* name of a CUresult. */
    public String errorName(int res) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            int r = (int) cuGetErrorName.invokeExact(res, p);
            if (r != 0) return "unknown error";
            return p.get(ADDRESS, 0).reinterpret(256).getString(0);
        } catch (Throwable t) {
            return "unknown error";
        }
    }

    /** The driver's description of a CUresult. */
    public String errorString(int res) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(ADDRESS);
            int r = (int) cuGetErrorString.invokeExact(res, p);
            if (r != 0) return "no description";
            return p.get(ADDRESS, 0).reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return "no description";
        }
    }

    static RuntimeException wrap(String call, Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new CudaException(call + " could not be called: " + t, 0, t);
    }

    // ------------------------------------------------------------------ init, devices, contexts

    public void init(int flags) {
        try { check((int) cuInit.invokeExact(flags), "cuInit"); } catch (Throwable t) { throw wrap("cuInit", t); }
    }

    /** Driver version as 1000·major + 10·minor (13000 = CUDA 13.0). */
    public int driverVersion() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuDriverGetVersion.invokeExact(v), "cuDriverGetVersion");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuDriverGetVersion", t); }
    }

    public int deviceCount() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuDeviceGetCount.invokeExact(v), "cuDeviceGetCount");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuDeviceGetCount", t); }
    }

    /** CUdevice handle of ordinal {@code index}. */
    public int device(int index) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuDeviceGet.invokeExact(v, index), "cuDeviceGet(" + index + ")");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuDeviceGet", t); }
    }

    public String deviceName(int dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(256);
            check((int) cuDeviceGetName.invokeExact(v, 256, dev), "cuDeviceGetName");
            return v.getString(0);
        } catch (Throwable t) { throw wrap("cuDeviceGetName", t); }
    }

    public int deviceAttribute(int dev, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuDeviceGetAttribute.invokeExact(v, attribute, dev), "cuDeviceGetAttribute(" + attribute + ")");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuDeviceGetAttribute", t); }
    }

    public long deviceTotalMemory(int dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuDeviceTotalMem.invokeExact(v, dev), "cuDeviceTotalMem");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuDeviceTotalMem", t); }
    }

    /** Retains the device's primary context (pair with {@link #primaryContextRelease}). */
    public long primaryContextRetain(int dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuDevicePrimaryCtxRetain.invokeExact(v, dev), "cuDevicePrimaryCtxRetain");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuDevicePrimaryCtxRetain", t); }
    }

    public void primaryContextRelease(int dev) {
        try { check((int) cuDevicePrimaryCtxRelease.invokeExact(dev), "cuDevicePrimaryCtxRelease"); }
        catch (Throwable t) { throw wrap("cuDevicePrimaryCtxRelease", t); }
    }

    public void contextSetCurrent(long ctx) {
        try { check((int) cuCtxSetCurrent.invokeExact(ctx), "cuCtxSetCurrent"); }
        catch (Throwable t) { throw wrap("cuCtxSetCurrent", t); }
    }

    public long contextGetCurrent() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuCtxGetCurrent.invokeExact(v), "cuCtxGetCurrent");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuCtxGetCurrent", t); }
    }

    public void contextSynchronize() {
        try { check((int) cuCtxSynchronize.invokeExact(), "cuCtxSynchronize"); }
        catch (Throwable t) { throw wrap("cuCtxSynchronize", t); }
    }

    /** Free and total device memory of the current context's device, in bytes. */
    public long[] memoryInfo() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment f = a.allocate(JAVA_LONG), tot = a.allocate(JAVA_LONG);
            check((int) cuMemGetInfo.invokeExact(f, tot), "cuMemGetInfo");
            return new long[] {f.get(JAVA_LONG, 0), tot.get(JAVA_LONG, 0)};
        } catch (Throwable t) { throw wrap("cuMemGetInfo", t); }
    }

    // ------------------------------------------------------------------ streams and events

    public long streamCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuStreamCreate.invokeExact(v, flags), "cuStreamCreate");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuStreamCreate", t); }
    }

    /** A stream of the given priority (lower numbers run first; see {@link #greatestStreamPriority}). */
    public long streamCreateWithPriority(int flags, int priority) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuStreamCreateWithPriority.invokeExact(v, flags, priority), "cuStreamCreateWithPriority");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuStreamCreateWithPriority", t); }
    }

    /** The highest stream priority of the current context (numerically the lowest; 0 where priorities are not supported). */
    public int greatestStreamPriority() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment least = a.allocate(JAVA_INT), greatest = a.allocate(JAVA_INT);
            check((int) cuCtxGetStreamPriorityRange.invokeExact(least, greatest), "cuCtxGetStreamPriorityRange");
            return greatest.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuCtxGetStreamPriorityRange", t); }
    }

    public void streamDestroy(long stream) {
        try { check((int) cuStreamDestroy.invokeExact(stream), "cuStreamDestroy"); }
        catch (Throwable t) { throw wrap("cuStreamDestroy", t); }
    }

    public void streamSynchronize(long stream) {
        try { check((int) cuStreamSynchronize.invokeExact(stream), "cuStreamSynchronize"); }
        catch (Throwable t) { throw wrap("cuStreamSynchronize", t); }
    }

    public void streamWaitEvent(long stream, long event) {
        try { check((int) cuStreamWaitEvent.invokeExact(stream, event, 0), "cuStreamWaitEvent"); }
        catch (Throwable t) { throw wrap("cuStreamWaitEvent", t); }
    }

    /** True while {@code stream} is being captured into a graph. */
    public boolean streamIsCapturing(long stream) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuStreamIsCapturing.invokeExact(stream, v), "cuStreamIsCapturing");
            return v.get(JAVA_INT, 0) != 0;
        } catch (Throwable t) { throw wrap("cuStreamIsCapturing", t); }
    }

    public long eventCreate(int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuEventCreate.invokeExact(v, flags), "cuEventCreate");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuEventCreate", t); }
    }

    public void eventRecord(long event, long stream) {
        try { check((int) cuEventRecord.invokeExact(event, stream), "cuEventRecord"); }
        catch (Throwable t) { throw wrap("cuEventRecord", t); }
    }

    public void eventSynchronize(long event) {
        try { check((int) cuEventSynchronize.invokeExact(event), "cuEventSynchronize"); }
        catch (Throwable t) { throw wrap("cuEventSynchronize", t); }
    }

    /** True when all work before the event's record has completed. */
    public boolean eventQuery(long event) {
        try {
            int r = (int) cuEventQuery.invokeExact(event);
            if (r == CUDA_ERROR_NOT_READY) return false;
            check(r, "cuEventQuery");
            return true;
        } catch (Throwable t) { throw wrap("cuEventQuery", t); }
    }

    /** Milliseconds between two recorded (timing) events. */
    public float eventElapsedMs(long start, long end) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_FLOAT);
            check((int) cuEventElapsedTime.invokeExact(v, start, end), "cuEventElapsedTime");
            return v.get(JAVA_FLOAT, 0);
        } catch (Throwable t) { throw wrap("cuEventElapsedTime", t); }
    }

    public void eventDestroy(long event) {
        try { check((int) cuEventDestroy.invokeExact(event), "cuEventDestroy"); }
        catch (Throwable t) { throw wrap("cuEventDestroy", t); }
    }

    // ------------------------------------------------------------------ memory

    /** cuMemAlloc; the returned CudaException has code {@link #CUDA_ERROR_OUT_OF_MEMORY} when the device is full. */
    public long memAlloc(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuMemAlloc.invokeExact(v, bytes), "cuMemAlloc(" + bytes + " bytes)");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuMemAlloc", t); }
    }

    public void memFree(long dptr) {
        try { check((int) cuMemFree.invokeExact(dptr), "cuMemFree"); }
        catch (Throwable t) { throw wrap("cuMemFree", t); }
    }

    public void memcpyHtoDAsync(long dst, MemorySegment src, long bytes, long stream) {
        try { check((int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyHtoDAsync"); }
        catch (Throwable t) { throw wrap("cuMemcpyHtoDAsync", t); }
    }

    public void memcpyDtoHAsync(MemorySegment dst, long src, long bytes, long stream) {
        try { check((int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyDtoHAsync"); }
        catch (Throwable t) { throw wrap("cuMemcpyDtoHAsync", t); }
    }

    public void memcpyDtoDAsync(long dst, long src, long bytes, long stream) {
        try { check((int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream), "cuMemcpyDtoDAsync"); }
        catch (Throwable t) { throw wrap("cuMemcpyDtoDAsync", t); }
    }

    public void memsetD8Async(long dst, byte value, long count, long stream) {
        try { check((int) cuMemsetD8Async.invokeExact(dst, value, count, stream), "cuMemsetD8Async"); }
        catch (Throwable t) { throw wrap("cuMemsetD8Async", t); }
    }

    public void memsetD32Async(long dst, int value, long count, long stream) {
        try { check((int) cuMemsetD32Async.invokeExact(dst, value, count, stream), "cuMemsetD32Async"); }
        catch (Throwable t) { throw wrap("cuMemsetD32Async", t); }
    }

    /** Page-locked host memory of {@code bytes}, as a segment of that size. Free with {@link #memFreeHost}. */
    public MemorySegment memHostAlloc(long bytes, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(ADDRESS);
            check((int) cuMemHostAlloc.invokeExact(v, bytes, flags), "cuMemHostAlloc(" + bytes + " bytes)");
            return v.get(ADDRESS, 0).reinterpret(bytes);
        } catch (Throwable t) { throw wrap("cuMemHostAlloc", t); }
    }

    public void memFreeHost(MemorySegment p) {
        try { check((int) cuMemFreeHost.invokeExact(p.address()), "cuMemFreeHost"); }
        catch (Throwable t) { throw wrap("cuMemFreeHost", t); }
    }

    // ------------------------------------------------------------------ modules and launches

    /** Loads a CUBIN/PTX/fatbin image into the current context. */
    public long moduleLoadData(MemorySegment image) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuModuleLoadData.invokeExact(v, image), "cuModuleLoadData");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuModuleLoadData", t); }
    }

    public void moduleUnload(long module) {
        try { check((int) cuModuleUnload.invokeExact(module), "cuModuleUnload"); }
        catch (Throwable t) { throw wrap("cuModuleUnload", t); }
    }

    public long moduleGetFunction(long module, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuModuleGetFunction.invokeExact(v, module, a.allocateFrom(name)), "cuModuleGetFunction(" + name + ")");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuModuleGetFunction", t); }
    }

    public void funcSetAttribute(long func, int attribute, int value) {
        try { check((int) cuFuncSetAttribute.invokeExact(func, attribute, value), "cuFuncSetAttribute(" + attribute + ", " + value + ")"); }
        catch (Throwable t) { throw wrap("cuFuncSetAttribute", t); }
    }

    public int funcGetAttribute(long func, int attribute) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check((int) cuFuncGetAttribute.invokeExact(v, attribute, func), "cuFuncGetAttribute(" + attribute + ")");
            return v.get(JAVA_INT, 0);
        } catch (Throwable t) { throw wrap("cuFuncGetAttribute", t); }
    }

    /**
     * cuLaunchKernel. {@code params} is an array of pointers, one per kernel parameter, each pointing at the
     * parameter's bytes (see {@link KernelArgs}).
     */
    public void launchKernel(long func, int gx, int gy, int gz, int bx, int by, int bz, int sharedBytes, long stream,
                             MemorySegment params, String name) {
        int r;
        try {
            r = (int) cuLaunchKernel.invokeExact(func, gx, gy, gz, bx, by, bz, sharedBytes, stream, params, MemorySegment.NULL);
        } catch (Throwable t) { throw wrap("cuLaunchKernel", t); }
        if (r != 0) check(r, "cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + bx + "x" + by
                + "x" + bz + ", shared " + sharedBytes + ")");
    }

    // ------------------------------------------------------------------ graphs

    public void streamBeginCapture(long stream, int mode) {
        try { check((int) cuStreamBeginCapture.invokeExact(stream, mode), "cuStreamBeginCapture"); }
        catch (Throwable t) { throw wrap("cuStreamBeginCapture", t); }
    }

    /** Ends capture; returns the CUgraph. */
    public long streamEndCapture(long stream) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuStreamEndCapture.invokeExact(stream, v), "cuStreamEndCapture");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuStreamEndCapture", t); }
    }

    /** Instantiates a graph; returns the CUgraphExec. */
    public long graphInstantiate(long graph) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_LONG);
            check((int) cuGraphInstantiate.invokeExact(v, graph, 0L), "cuGraphInstantiate");
            return v.get(JAVA_LONG, 0);
        } catch (Throwable t) { throw wrap("cuGraphInstantiate", t); }
    }

    public void graphLaunch(long exec, long stream) {
        try { check((int) cuGraphLaunch.invokeExact(exec, stream), "cuGraphLaunch"); }
        catch (Throwable t) { throw wrap("cuGraphLaunch", t); }
    }

    public void graphExecDestroy(long exec) {
        try { check((int) cuGraphExecDestroy.invokeExact(exec), "cuGraphExecDestroy"); }
        catch (Throwable t) { throw wrap("cuGraphExecDestroy", t); }
    }

    public void graphDestroy(long graph) {
        try { check((int) cuGraphDestroy.invokeExact(graph), "cuGraphDestroy"); }
        catch (Throwable t) { throw wrap("cuGraphDestroy", t); }
    }
}
