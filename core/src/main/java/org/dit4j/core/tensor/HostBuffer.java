package org.dit4j.core.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Host memory for tensors. Each buffer has its own shared arena, so releasing it frees the memory at once and any
 * later access fails with an exception instead of reading freed memory. Buffers that wrap memory owned by
 * someone else (a memory-mapped file) are never freed by release().
 */
public final class HostBuffer implements Buffer {
    private final Arena arena;       // null when the memory is borrowed
    private final MemorySegment segment;
    private boolean released;

    private HostBuffer(Arena arena, MemorySegment segment) {
        this.arena = arena;
        this.segment = segment;
    }

    /** Zero-filled, 64-byte aligned host memory. */
    public static HostBuffer allocate(long bytes) {
        Arena a = Arena.ofShared();
        try {
            return new HostBuffer(a, a.allocate(Math.max(bytes, 1), 64));
        } catch (OutOfMemoryError e) {
            a.close();
            throw new OutOfMemoryError("cannot allocate " + bytes + " bytes of host memory for a tensor: " + e.getMessage());
        }
    }

    /** Wraps memory owned elsewhere (e.g. a mapped safetensors file); release() does not free it. */
    public static HostBuffer borrow(MemorySegment segment) { return new HostBuffer(null, segment); }

    @Override public Device device() { return Device.CPU; }

    @Override public long address() { return segment.address(); }

    @Override public long byteSize() { return segment.byteSize(); }

    @Override public MemorySegment segment() {
        if (released) throw new IllegalStateException("tensor memory was already released (its scope was closed)");
        return segment;
    }

    @Override public synchronized void release() {
        if (released) return;
        released = true;
        if (arena != null) arena.close();
    }

    @Override public boolean isReleased() { return released; }
}
