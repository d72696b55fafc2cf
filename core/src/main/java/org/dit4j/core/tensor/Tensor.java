package org.dit4j.core.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * A dense, row-major tensor: a shape, an element type, and a window of a {@link Buffer}. Tensors are always
 * contiguous; {@link #view} and {@link #narrowOuter} make zero-copy views that share the buffer but do not own it.
 * Host tensors can be read and written here; device tensors only through their backend's ops.
 */
public final class Tensor implements AutoCloseable {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Shape shape;
    private final DType dtype;
    private final Buffer buffer;
    private final long byteOffset;
    private final boolean owner;

    private Tensor(Shape shape, DType dtype, Buffer buffer, long byteOffset, boolean owner) {
        long need = shape.numel() * dtype.byteSize();
        if (byteOffset < 0 || byteOffset + need > buffer.byteSize())
            throw new IllegalArgumentException("tensor " + shape + " " + dtype + " at byte " + byteOffset
                    + " does not fit its buffer of " + buffer.byteSize() + " bytes");
        this.shape = shape;
        this.dtype = dtype;
        this.buffer = buffer;
        this.byteOffset = byteOffset;
        this.owner = owner;
    }

    /** A tensor that owns {@code buffer}; registered with the current {@link Scope}. Used by backends. */
    public static Tensor owning(Shape shape, DType dtype, Buffer buffer) {
        Tensor t = new Tensor(shape, dtype, buffer, 0, true);
        Scope.track(t);
        return t;
    }

    /** A non-owning tensor over {@code buffer} at {@code byteOffset} (e.g. a tensor inside a mapped file). */
    public static Tensor wrap(Shape shape, DType dtype, Buffer buffer, long byteOffset) {
        return new Tensor(shape, dtype, buffer, byteOffset, false);
    }

    // ------------------------------------------------------------------ host factories

    /** New zero-filled host tensor, tracked by the current scope. */
    public static Tensor zeros(DType dtype, Shape shape) {
        return owning(shape, dtype, HostBuffer.allocate(shape.numel() * dtype.byteSize()));
    }

    public static Tensor zeros(DType dtype, long... dims) { return zeros(dtype, Shape.of(dims)); }

    /** New host tensor of the given dtype holding {@code data} (rounded to nearest even for narrow types). */
    public static Tensor of(DType dtype, float[] data, long... dims) {
        Shape s = Shape.of(dims);
        if (s.numel() != data.length)
            throw new IllegalArgumentException("shape " + s + " needs " + s.numel() + " values, got " + data.length);
        Tensor t = zeros(dtype, s);
        t.setFloats(data);
        return t;
    }

    /** New F32 host tensor holding {@code data}. */
    public static Tensor of(float[] data, long... dims) { return of(DType.F32, data, dims); }

    // ------------------------------------------------------------------ accessors

    public Shape shape() { return shape; }

    public DType dtype() { return dtype; }

    public Device device() { return buffer.device(); }

    public Buffer buffer() { return buffer; }

    public long byteOffset() { return byteOffset; }

    public long numel() { return shape.numel(); }

    public long byteSize() { return shape.numel() * dtype.byteSize(); }

    public int rank() { return shape.rank(); }

    public long dim(int i) { return shape.dim(i); }

    /** Address of the first element (device pointer for device tensors). */
    public long address() { return buffer.address() + byteOffset; }

    /** The tensor's bytes; host tensors only. */
    public MemorySegment segment() {
        requireHost();
        return buffer.segment().asSlice(byteOffset, byteSize());
    }

    public boolean isReleased() { return buffer.isReleased(); }

    // ------------------------------------------------------------------ views

    /** Same bytes, new shape (element count must match). Accepts one -1. */
    public Tensor view(long... dims) { return view(shape.reshape(dims)); }

    public Tensor view(Shape s) {
        if (s.numel() != shape.numel()) throw new IllegalArgumentException("cannot view " + shape + " as " + s);
        return new Tensor(s, dtype, buffer, byteOffset, false);
    }

    /** Rows [start, end) of dimension 0, without copying. */
    public Tensor narrowOuter(long start, long end) {
        if (rank() == 0 || start < 0 || end > shape.dim(0) || start > end)
            throw new IndexOutOfBoundsException("narrowOuter(" + start + ", " + end + ") on shape " + shape);
        long rowBytes = shape.numel() == 0 ? 0 : byteSize() / shape.dim(0);
        return new Tensor(shape.with(0, end - start), dtype, buffer, byteOffset + start * rowBytes, false);
    }

    // ------------------------------------------------------------------ host element access

    /** Element i (flat index) as float, converting from the stored type. Host tensors only. */
    public float getFloat(long i) {
        MemorySegment s = buffer.segment();
        long o = byteOffset + i * dtype.byteSize();
        return switch (dtype) {
            case F32 -> s.get(F32, o);
            case BF16 -> DType.bf16ToFloat(s.get(I16, o));
            case F16 -> DType.f16ToFloat(s.get(I16, o));
            case F8_E4M3 -> DType.e4m3ToFloat(s.get(ValueLayout.JAVA_BYTE, o));
            case F8_E5M2 -> DType.e5m2ToFloat(s.get(ValueLayout.JAVA_BYTE, o));
            case I32 -> s.get(I32, o);
            case I64 -> s.get(I64, o);
            case BOOL -> s.get(ValueLayout.JAVA_BYTE, o) != 0 ? 1f : 0f;
        };
    }

    /** Stores v at flat index i, rounding to nearest even for narrow float types (PyTorch cast rules). */
    public void setFloat(long i, float v) {
        MemorySegment s = buffer.segment();
        long o = byteOffset + i * dtype.byteSize();
        switch (dtype) {
            case F32 -> s.set(F32, o, v);
            case BF16 -> s.set(I16, o, DType.floatToBf16(v));
            case F16 -> s.set(I16, o, DType.floatToF16(v));
            case F8_E4M3 -> s.set(ValueLayout.JAVA_BYTE, o, DType.floatToE4M3(v));
            case F8_E5M2 -> s.set(ValueLayout.JAVA_BYTE, o, DType.floatToE5M2(v));
            case I32 -> s.set(I32, o, (int) v);
            case I64 -> s.set(I64, o, (long) v);
            case BOOL -> s.set(ValueLayout.JAVA_BYTE, o, (byte) (v != 0 ? 1 : 0));
        }
    }

    /** All elements as floats (a copy). Host tensors only. */
    public float[] toFloatArray() {
        requireHost();
        int n = Math.toIntExact(numel());
        float[] out = new float[n];
        if (dtype == DType.F32) {
            MemorySegment.copy(buffer.segment(), F32, byteOffset, out, 0, n);
        } else {
            for (int i = 0; i < n; i++) out[i] = getFloat(i);
        }
        return out;
    }

    /** Overwrites all elements from {@code data}. Host tensors only. */
    public void setFloats(float[] data) {
        requireHost();
        if (data.length != numel()) throw new IllegalArgumentException("expected " + numel() + " values, got " + data.length);
        if (dtype == DType.F32) {
            MemorySegment.copy(data, 0, buffer.segment(), F32, byteOffset, data.length);
        } else {
            for (int i = 0; i < data.length; i++) setFloat(i, data[i]);
        }
    }

    private void requireHost() {
        if (!buffer.device().isCpu())
            throw new IllegalStateException("tensor " + shape + " lives on " + buffer.device() + "; copy it to the host first (ops.toHost)");
    }

    // ------------------------------------------------------------------ lifetime

    /** Releases the memory now if this tensor owns it; views and borrowed tensors ignore close(). */
    @Override public void close() {
        if (owner && !buffer.isReleased()) {
            Scope.untrack(this);
            buffer.release();
        }
    }

    void releaseOwned() {
        if (owner && !buffer.isReleased()) buffer.release();
    }

    @Override public String toString() {
        return "Tensor" + shape + " " + dtype + " on " + device();
    }
}
