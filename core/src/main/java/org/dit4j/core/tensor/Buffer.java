package org.dit4j.core.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A block of memory that one or more tensors view. Backends create buffers; a {@link Scope} or the owning
 * tensor releases them. Host buffers expose a {@link MemorySegment}; device buffers only an address.
 */
public interface Buffer {
    Device device();

    /** Address of the first byte (a device pointer for CUDA buffers). */
    long address();

    long byteSize();

    /** The bytes as a host segment; only for host buffers (including mmapped files). */
    MemorySegment segment();

    /** Returns the memory to its allocator. Called exactly once, by the owner. */
    void release();

    boolean isReleased();
}
