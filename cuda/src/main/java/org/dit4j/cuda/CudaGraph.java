package org.dit4j.cuda;

/**
 * A CUDA graph captured from the work a {@link Runnable} queues on a backend's stream, replayed with one launch.
 *
 * <p>Use: run the body once eagerly (kernels compile, cuBLASLt plans are cached), then {@link #capture}. While
 * capturing, every allocation comes from a pool private to this graph, so the addresses baked into the graph stay
 * reserved for it: tensors the body frees are reused only inside the capture, and tensors it returns (keep them
 * open) hold the same memory at every replay. Inputs must be device tensors allocated before capture; write new
 * values into them with {@link CudaBackend#copyInto} before {@link #replay}. Host transfers (upload/toHost) and
 * synchronisation inside the body fail the capture.
 */
public final class CudaGraph implements AutoCloseable {
    private final CudaBackend backend;
    private final DeviceAllocator.Pool pool;
    private final long graph;
    private final long exec;
    private boolean closed;

    private CudaGraph(CudaBackend backend, DeviceAllocator.Pool pool, long graph, long exec) {
        this.backend = backend;
        this.pool = pool;
        this.graph = graph;
        this.exec = exec;
    }

    /** Captures the device work of {@code body} on {@code backend}'s stream. */
    public static CudaGraph capture(CudaBackend backend, Runnable body) {
        backend.makeCurrent();
        if (backend.isProfiling())
            throw new IllegalStateException("cannot capture a CUDA graph while the backend is profiling: call stopProfile() first");
        CudaDriver drv = CudaDriver.get();
        long stream = backend.stream();
        DeviceAllocator alloc = backend.allocator();
        DeviceAllocator.Pool pool = alloc.beginPrivatePool();
        long graph = 0;
        boolean ok = false;
        try {
            drv.streamBeginCapture(stream, CudaDriver.CAPTURE_MODE_RELAXED);
            try {
                body.run();
            } catch (RuntimeException | Error e) {
                try {
                    long g = drv.streamEndCapture(stream);
                    if (g != 0) drv.graphDestroy(g);
                } catch (CudaException ignored) {
                    // the capture was already invalidated; the original error matters
                }
                throw e;
            }
            graph = drv.streamEndCapture(stream);
            long exec = drv.graphInstantiate(graph);
            ok = true;
            return new CudaGraph(backend, pool, graph, exec);
        } finally {
            alloc.endPrivatePool();
            if (!ok) {
                if (graph != 0) drv.graphDestroy(graph);
                alloc.closePool(pool);
            }
        }
    }

    /** Queues one replay on the backend's stream (asynchronous, like every op). */
    public void replay() {
        if (closed) throw new IllegalStateException("this CUDA graph is closed");
        backend.makeCurrent();
        CudaDriver.get().graphLaunch(exec, backend.stream());
    }

    /** Waits for pending replays, destroys the graph and hands its private memory back to the backend's pool. */
    @Override public void close() {
        if (closed) return;
        closed = true;
        backend.synchronize();
        CudaDriver drv = CudaDriver.get();
        drv.graphExecDestroy(exec);
        drv.graphDestroy(graph);
        backend.allocator().closePool(pool);
    }
}
