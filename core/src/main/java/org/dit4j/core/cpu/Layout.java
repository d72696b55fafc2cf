package org.dit4j.core.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Dtype-agnostic element moves for the layout ops (permute, slice, concat, pad, upsample): a strided "box copy"
 * that copies raw element bits, so every dtype round-trips bit-exactly.
 */
final class Layout {
    private static final ValueLayout.OfShort S = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfInt I = ValueLayout.JAVA_INT_UNALIGNED;
    private static final ValueLayout.OfLong L = ValueLayout.JAVA_LONG_UNALIGNED;
    private static final ValueLayout.OfByte B = ValueLayout.JAVA_BYTE;

    private Layout() {}

    /**
     * For every index vector {@code i} inside {@code extent}: {@code dst[dstOff + Σ i·dstStride] = src[srcOff + Σ i·srcStride]},
     * offsets and strides in elements of {@code elemBytes} bytes. Source strides may be 0 (repetition).
     */
    static void copyBox(MemorySegment src, long srcOff, long[] srcStride,
                        MemorySegment dst, long dstOff, long[] dstStride, long[] extent, int elemBytes) {
        int r = extent.length;
        for (long e : extent) if (e == 0) return;
        if (r == 0) {
            MemorySegment.copy(src, srcOff * elemBytes, dst, dstOff * elemBytes, elemBytes);
            return;
        }
        // merge adjacent dims that are contiguous in both source and destination
        long[] ext = new long[r], ss = new long[r], ds = new long[r];
        int m = 0;
        for (int d = 0; d < r; d++) {
            if (extent[d] == 1) continue;
            if (m > 0 && ss[m - 1] == srcStride[d] * extent[d] && ds[m - 1] == dstStride[d] * extent[d]) {
                ext[m - 1] *= extent[d];
                ss[m - 1] = srcStride[d];
                ds[m - 1] = dstStride[d];
            } else {
                ext[m] = extent[d]; ss[m] = srcStride[d]; ds[m] = dstStride[d]; m++;
            }
        }
        if (m == 0) { ext[0] = 1; ss[0] = 1; ds[0] = 1; m = 1; }
        long inner = ext[m - 1], si = ss[m - 1], di = ds[m - 1];
        boolean contiguous = si == 1 && di == 1;
        long[] idx = new long[m];
        long so = srcOff, dOff = dstOff;
        while (true) {
            if (contiguous) MemorySegment.copy(src, so * elemBytes, dst, dOff * elemBytes, inner * elemBytes);
            else copyStrided(src, so, si, dst, dOff, di, inner, elemBytes);
            int d = m - 2;
            for (; d >= 0; d--) {
                idx[d]++;
                so += ss[d];
                dOff += ds[d];
                if (idx[d] < ext[d]) break;
                so -= ss[d] * ext[d];
                dOff -= ds[d] * ext[d];
                idx[d] = 0;
            }
            if (d < 0) return;
        }
    }

    private static void copyStrided(MemorySegment src, long so, long si, MemorySegment dst, long dOff, long di,
                                    long n, int elemBytes) {
        switch (elemBytes) {
            case 1 -> { for (long i = 0; i < n; i++) dst.set(B, dOff + i * di, src.get(B, so + i * si)); }
            case 2 -> { for (long i = 0; i < n; i++) dst.set(S, (dOff + i * di) * 2, src.get(S, (so + i * si) * 2)); }
            case 4 -> { for (long i = 0; i < n; i++) dst.set(I, (dOff + i * di) * 4, src.get(I, (so + i * si) * 4)); }
            case 8 -> { for (long i = 0; i < n; i++) dst.set(L, (dOff + i * di) * 8, src.get(L, (so + i * si) * 8)); }
            default -> throw new IllegalStateException("internal: element size " + elemBytes);
        }
    }

    /** Fills {@code n} elements from element {@code first} with the raw bit pattern {@code bits}. */
    static void fill(MemorySegment seg, long first, long n, long bits, int elemBytes) {
        if (bits == 0) {
            seg.asSlice(first * elemBytes, n * elemBytes).fill((byte) 0);
            return;
        }
        switch (elemBytes) {
            case 1 -> seg.asSlice(first, n).fill((byte) bits);
            case 2 -> { for (long i = 0; i < n; i++) seg.set(S, (first + i) * 2, (short) bits); }
            case 4 -> { for (long i = 0; i < n; i++) seg.set(I, (first + i) * 4, (int) bits); }
            case 8 -> { for (long i = 0; i < n; i++) seg.set(L, (first + i) * 8, bits); }
            default -> throw new IllegalStateException("internal: element size " + elemBytes);
        }
    }

    /** Row-major strides of {@code dims}, in elements. */
    static long[] strides(long[] dims) {
        long[] s = new long[dims.length];
        long acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) { s[i] = acc; acc *= dims[i]; }
        return s;
    }
}
