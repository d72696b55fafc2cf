package org.dit4j.core.cpu;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.HostBuffer;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Bulk conversions between host tensors of any dtype and {@code float[]} working arrays, and allocation of output
 * tensors. Everything the CPU backend computes goes through here once on the way in and once on the way out.
 */
final class HostArrays {
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final int CHUNK = 4096;
    private static final float[] E4M3 = table(DType.F8_E4M3);
    private static final float[] E5M2 = table(DType.F8_E5M2);
    private static final ThreadLocal<short[]> SHORTS = ThreadLocal.withInitial(() -> new short[CHUNK]);
    private static final ThreadLocal<byte[]> BYTES = ThreadLocal.withInitial(() -> new byte[CHUNK]);

    private HostArrays() {}

    private static float[] table(DType t) {
        float[] f = new float[256];
        for (int i = 0; i < 256; i++)
            f[i] = t == DType.F8_E4M3 ? DType.e4m3ToFloat((byte) i) : DType.e5m2ToFloat((byte) i);
        return f;
    }

    /** Number of elements of {@code t} as an int, or a clear error for tensors too large for Java arrays. */
    static int count(Tensor t, String what) { return count(t.shape(), what); }

    static int count(Shape s, String what) {
        long n = s.numel();
        if (n > Integer.MAX_VALUE - 64)
            throw new IllegalArgumentException(what + " " + s + " has " + n
                    + " elements; the CPU backend handles at most 2^31 elements per tensor");
        return (int) n;
    }

    /** All elements of a host tensor as floats (a new array). */
    static float[] toFloats(Tensor t) {
        float[] out = new float[count(t, "tensor")];
        decode(t.segment(), t.dtype(), 0, out, 0, out.length);
        return out;
    }

    /**
     * Decodes {@code n} elements of dtype {@code dtype} starting at element {@code first} of {@code seg} into
     * {@code dst[off..off+n)}.
     */
    static void decode(MemorySegment seg, DType dtype, long first, float[] dst, int off, int n) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(seg, F32, first * 4, dst, off, n);
            case BF16 -> {
                short[] tmp = SHORTS.get();
                for (int done = 0; done < n; ) {
                    int m = Math.min(tmp.length, n - done);
                    MemorySegment.copy(seg, I16, (first + done) * 2, tmp, 0, m);
                    for (int i = 0; i < m; i++) dst[off + done + i] = Float.intBitsToFloat(tmp[i] << 16);
                    done += m;
                }
            }
            case F16 -> {
                short[] tmp = SHORTS.get();
                for (int done = 0; done < n; ) {
                    int m = Math.min(tmp.length, n - done);
                    MemorySegment.copy(seg, I16, (first + done) * 2, tmp, 0, m);
                    for (int i = 0; i < m; i++) dst[off + done + i] = Float.float16ToFloat(tmp[i]);
                    done += m;
                }
            }
            case F8_E4M3, F8_E5M2 -> {
                float[] lut = dtype == DType.F8_E4M3 ? E4M3 : E5M2;
                byte[] tmp = BYTES.get();
                for (int done = 0; done < n; ) {
                    int m = Math.min(tmp.length, n - done);
                    MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, first + done, tmp, 0, m);
                    for (int i = 0; i < m; i++) dst[off + done + i] = lut[tmp[i] & 0xFF];
                    done += m;
                }
            }
            case I32 -> { for (int i = 0; i < n; i++) dst[off + i] = seg.get(I32, (first + i) * 4); }
            case I64 -> { for (int i = 0; i < n; i++) dst[off + i] = seg.get(I64, (first + i) * 8); }
            case BOOL -> { for (int i = 0; i < n; i++) dst[off + i] = seg.get(ValueLayout.JAVA_BYTE, first + i) != 0 ? 1f : 0f; }
        }
    }

    /** Encodes {@code src[off..off+n)} into {@code seg} as dtype elements starting at element {@code first}. */
    static void encode(float[] src, int off, int n, MemorySegment seg, DType dtype, long first) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(src, off, seg, F32, first * 4, n);
            case BF16, F16 -> {
                short[] tmp = SHORTS.get();
                boolean bf = dtype == DType.BF16;
                for (int done = 0; done < n; ) {
                    int m = Math.min(tmp.length, n - done);
                    if (bf) for (int i = 0; i < m; i++) tmp[i] = DType.floatToBf16(src[off + done + i]);
                    else for (int i = 0; i < m; i++) tmp[i] = Float.floatToFloat16(src[off + done + i]);
                    MemorySegment.copy(tmp, 0, seg, I16, (first + done) * 2, m);
                    done += m;
                }
            }
            case F8_E4M3, F8_E5M2 -> {
                byte[] tmp = BYTES.get();
                boolean e4 = dtype == DType.F8_E4M3;
                for (int done = 0; done < n; ) {
                    int m = Math.min(tmp.length, n - done);
                    for (int i = 0; i < m; i++) {
                        float v = src[off + done + i];
                        tmp[i] = e4 ? DType.floatToE4M3(v) : DType.floatToE5M2(v);
                    }
                    MemorySegment.copy(tmp, 0, seg, ValueLayout.JAVA_BYTE, first + done, m);
                    done += m;
                }
            }
            case I32 -> { for (int i = 0; i < n; i++) seg.set(I32, (first + i) * 4, (int) src[off + i]); }
            case I64 -> { for (int i = 0; i < n; i++) seg.set(I64, (first + i) * 8, (long) src[off + i]); }
            case BOOL -> { for (int i = 0; i < n; i++) seg.set(ValueLayout.JAVA_BYTE, first + i, (byte) (src[off + i] != 0 ? 1 : 0)); }
        }
    }

    /** New zero-filled host tensor, owned by the current scope. Must be called on the caller's thread. */
    static Tensor allocate(Shape shape, DType dtype) {
        return Tensor.owning(shape, dtype, HostBuffer.allocate(shape.numel() * dtype.byteSize()));
    }

    /** New tensor of {@code dtype} holding {@code data} (rounded as PyTorch casts). */
    static Tensor fromFloats(float[] data, Shape shape, DType dtype) {
        if (data.length != shape.numel())
            throw new IllegalStateException("internal: " + data.length + " values for shape " + shape);
        Tensor t = allocate(shape, dtype);
        encode(data, 0, data.length, t.segment(), dtype, 0);
        return t;
    }

    /** The raw bit pattern of {@code value} in {@code dtype}, for filling (pad values). */
    static long bitsOf(float value, DType dtype) {
        return switch (dtype) {
            case F32 -> Float.floatToRawIntBits(value) & 0xFFFFFFFFL;
            case BF16 -> DType.floatToBf16(value) & 0xFFFFL;
            case F16 -> Float.floatToFloat16(value) & 0xFFFFL;
            case F8_E4M3 -> DType.floatToE4M3(value) & 0xFFL;
            case F8_E5M2 -> DType.floatToE5M2(value) & 0xFFL;
            case I32 -> ((int) value) & 0xFFFFFFFFL;
            case I64 -> (long) value;
            case BOOL -> value != 0 ? 1 : 0;
        };
    }
}
