package org.dit4j.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * The {@code void** kernelParams} of one launch: a value area (8-byte slots, structs 8-aligned) and the array of
 * pointers into it. The launch copies the values, so one instance is reused for every launch of a backend
 * (single thread). Call {@link #reset()} before adding a launch's arguments in order.
 */
public final class KernelArgs {
    private static final int MAX_ARGS = 32;
    private static final int VALUE_BYTES = 4096;

    private final MemorySegment values;
    private final MemorySegment pointers;
    private int count;
    private long offset;

    public KernelArgs(Arena arena) {
        values = arena.allocate(VALUE_BYTES, 16);
        pointers = arena.allocate(ADDRESS, MAX_ARGS);
    }

    public KernelArgs reset() {
        count = 0;
        offset = 0;
        return this;
    }

    private long slot(long bytes, long align) {
        if (count >= MAX_ARGS) throw new IllegalStateException("more than " + MAX_ARGS + " kernel arguments");
        long o = (offset + align - 1) / align * align;
        if (o + bytes > VALUE_BYTES) throw new IllegalStateException("kernel arguments exceed " + VALUE_BYTES + " bytes");
        pointers.setAtIndex(ADDRESS, count++, values.asSlice(o));
        offset = o + bytes;
        return o;
    }

    /** A pointer or a 64-bit integer. */
    public KernelArgs ptr(long v) { values.set(JAVA_LONG, slot(8, 8), v); return this; }

    public KernelArgs i64(long v) { values.set(JAVA_LONG, slot(8, 8), v); return this; }

    public KernelArgs i32(int v) { values.set(JAVA_INT, slot(4, 4), v); return this; }

    public KernelArgs f32(float v) { values.set(JAVA_FLOAT, slot(4, 4), v); return this; }

    /** A struct passed by value, given as its bytes (laid out as the kernel's C struct, 8-byte aligned). */
    public KernelArgs struct(long[] words) {
        long o = slot(words.length * 8L, 8);
        for (int i = 0; i < words.length; i++) values.set(JAVA_LONG, o + 8L * i, words[i]);
        return this;
    }

    public KernelArgs u8(byte v) { values.set(JAVA_BYTE, slot(1, 1), v); return this; }

    MemorySegment pointers() { return pointers; }
}
