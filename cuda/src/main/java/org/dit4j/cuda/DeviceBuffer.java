package org.dit4j.cuda;

import org.dit4j.core.tensor.Buffer;
import org.dit4j.core.tensor.Device;

import java.lang.foreign.MemorySegment;

/** Device memory from a {@link DeviceAllocator}; {@link #release()} returns the block to its pool, not the driver. */
public final class DeviceBuffer implements Buffer {
    private final DeviceAllocator allocator;
    final DeviceAllocator.Pool pool;
    private final Device device;
    private final long address;
    private final long bytes;
    final long blockBytes;
    private boolean released;

    DeviceBuffer(DeviceAllocator allocator, DeviceAllocator.Pool pool, Device device, long address, long bytes, long blockBytes) {
        this.allocator = allocator;
        this.pool = pool;
        this.device = device;
        this.address = address;
        this.bytes = bytes;
        this.blockBytes = blockBytes;
    }

    @Override public Device device() { return device; }

    @Override public long address() { return address; }

    @Override public long byteSize() { return bytes; }

    @Override public MemorySegment segment() {
        throw new IllegalStateException("a " + device + " buffer has no host segment; copy the tensor to the host first (ops.toHost)");
    }

    @Override public void release() {
        if (released) return;
        released = true;
        allocator.free(this);
    }

    @Override public boolean isReleased() { return released; }
}
