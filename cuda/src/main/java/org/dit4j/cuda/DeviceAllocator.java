package org.dit4j.cuda;

import org.dit4j.core.tensor.Device;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Caching device allocator for one backend (one stream). Requests are rounded up to a size class (512 B steps below
 * 1 MiB, 2 MiB steps above); released blocks go to the free list of their class (LIFO) and are handed out again
 * without a driver call. Blocks are reused in stream order, which is safe because every user of these blocks works
 * on the backend's single stream. Only when the driver reports out-of-memory are cached blocks returned to it.
 *
 * <p>While a graph is captured, allocations come from a private {@link Pool}: blocks freed during capture are
 * reused only by the same capture, and the pool stays reserved for the graph's replays until the graph closes.
 */
public final class DeviceAllocator {
    /** A set of free lists. The main pool serves eager work; each captured graph owns one private pool. */
    public final class Pool {
        private final Map<Long, ArrayDeque<Long>> free = new HashMap<>();
        private final Map<Long, Long> owned = new HashMap<>();   // ptr -> size of every block this pool is responsible for
        private boolean closed;
        private long cachedBytes;

        private Long take(long size) {
            ArrayDeque<Long> q = free.get(size);
            if (q == null || q.isEmpty()) return null;
            cachedBytes -= size;
            return q.pollLast();
        }

        private void give(long ptr, long size) {
            free.computeIfAbsent(size, s -> new ArrayDeque<>()).addLast(ptr);
            cachedBytes += size;
        }
    }

    private final CudaDriver drv;
    private final Device device;
    private final Runnable synchronizer;
    private final Pool main = new Pool();
    private Pool active = main;
    private final List<Pool> privatePools = new ArrayList<>();
    private long reservedBytes;     // obtained from the driver and not yet freed
    private long inUseBytes;        // handed out to live buffers
    private long peakInUseBytes;
    private long driverAllocations;
    private boolean closed;

    DeviceAllocator(CudaDriver drv, Device device, Runnable synchronizer) {
        this.drv = drv;
        this.device = device;
        this.synchronizer = synchronizer;
    }

    static long sizeClass(long bytes) {
        long b = Math.max(bytes, 1);
        if (b < (1L << 20)) return (b + 511) & ~511L;
        return (b + (2L << 20) - 1) & ~((2L << 20) - 1);
    }

    public synchronized DeviceBuffer allocate(long bytes) {
        if (closed) throw new IllegalStateException("the CUDA backend of " + device + " is closed");
        long size = sizeClass(bytes);
        Pool pool = active;
        Long ptr = pool.take(size);
        if (ptr == null) {
            ptr = driverAlloc(size, pool);
            pool.owned.put(ptr, size);
        }
        inUseBytes += size;
        peakInUseBytes = Math.max(peakInUseBytes, inUseBytes);
        return new DeviceBuffer(this, pool, device, ptr, bytes, size);
    }

    private long driverAlloc(long size, Pool pool) {
        try {
            driverAllocations++;
            long p = drv.memAlloc(size);
            reservedBytes += size;
            return p;
        } catch (CudaException e) {
            if (e.code() != CudaDriver.CUDA_ERROR_OUT_OF_MEMORY || pool != main) throw oom(size, e);
            emptyCache();
            try {
                long p = drv.memAlloc(size);
                reservedBytes += size;
                return p;
            } catch (CudaException e2) {
                throw oom(size, e2);
            }
        }
    }

    private CudaException oom(long size, CudaException cause) {
        return new CudaException("cannot allocate " + size + " bytes on " + device + ": " + cause.getMessage()
                + " (in use by tensors: " + inUseBytes + " bytes, reserved by dit4j: " + reservedBytes
                + " bytes). Close tensors or scopes that are no longer needed, or use a smaller resolution/batch.",
                cause.code(), cause);
    }

    synchronized void free(DeviceBuffer b) {
        inUseBytes -= b.blockBytes;
        if (closed) return;
        Pool p = b.pool.closed ? main : b.pool;
        p.give(b.address(), b.blockBytes);
        if (p != b.pool) {
            // ownership moves to the main pool with the block
            b.pool.owned.remove(b.address());
            main.owned.put(b.address(), b.blockBytes);
        }
    }

    /** Returns every cached free block of the main pool to the driver (waits for the stream first). */
    public synchronized void emptyCache() {
        synchronizer.run();
        for (Map.Entry<Long, ArrayDeque<Long>> e : main.free.entrySet()) {
            for (long p : e.getValue()) {
                drv.memFree(p);
                reservedBytes -= e.getKey();
                main.owned.remove(p);
            }
        }
        main.free.clear();
        main.cachedBytes = 0;
    }

    /** Starts routing allocations to a new private pool (graph capture). */
    synchronized Pool beginPrivatePool() {
        if (active != main) throw new IllegalStateException("a graph capture is already in progress on " + device);
        active = new Pool();
        privatePools.add(active);
        return active;
    }

    /** Routes allocations back to the main pool; the private pool keeps its blocks for the graph. */
    synchronized void endPrivatePool() {
        active = main;
    }

    /** The graph that owned {@code p} is gone: its free blocks join the main pool, live ones follow when released. */
    synchronized void closePool(Pool p) {
        if (p == main || p.closed) return;
        p.closed = true;
        if (active == p) active = main;
        for (Map.Entry<Long, ArrayDeque<Long>> e : p.free.entrySet()) for (long ptr : e.getValue()) main.give(ptr, e.getKey());
        p.free.clear();
        main.owned.putAll(p.owned);
        p.owned.clear();
        privatePools.remove(p);
    }

    /** Frees everything this allocator obtained from the driver; live buffers become dangling and are ignored. */
    synchronized void close() {
        if (closed) return;
        closed = true;
        List<Pool> pools = new ArrayList<>(privatePools);
        pools.add(main);
        for (Pool p : pools) {
            for (long ptr : p.owned.keySet()) {
                try { drv.memFree(ptr); } catch (CudaException e) { /* context going away */ }
            }
            p.owned.clear();
            p.free.clear();
        }
        reservedBytes = 0;
    }

    public synchronized long inUseBytes() { return inUseBytes; }

    public synchronized long reservedBytes() { return reservedBytes; }

    public synchronized long peakInUseBytes() { return peakInUseBytes; }

    public synchronized void resetPeak() { peakInUseBytes = inUseBytes; }

    /** How many times memory was requested from the driver (constant in steady state). */
    public synchronized long driverAllocations() { return driverAllocations; }
}
