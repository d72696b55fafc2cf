package org.dit4j.core.parallel;

import java.lang.foreign.MemorySegment;

/** Strided element copies between host segments (raw bits, any dtype): the data movement of {@link LocalCommunicator}. */
final class HostCopy {
    private HostCopy() {}

    /**
     * For every index vector i inside {@code extent}: dst[dstOff + Σ i·dstStride] = src[srcOff + Σ i·srcStride];
     * offsets and strides in elements of {@code elemBytes} bytes; the last dimension must be contiguous in both.
     */
    static void copyBox(MemorySegment src, long srcOff, long[] srcStride, MemorySegment dst, long dstOff, long[] dstStride,
                        long[] extent, int elemBytes) {
        int r = extent.length;
        for (long e : extent) if (e == 0) return;
        if (r == 0) {
            MemorySegment.copy(src, srcOff * elemBytes, dst, dstOff * elemBytes, elemBytes);
            return;
        }
        if (srcStride[r - 1] != 1 || dstStride[r - 1] != 1) throw new IllegalStateException("internal: last dim not contiguous");
        // merge trailing dims that are contiguous in both source and destination into one run
        int last = r - 1;
        long run = extent[last];
        while (last > 0 && srcStride[last - 1] == run && dstStride[last - 1] == run) run *= extent[--last];
        long[] idx = new long[last];
        long so = srcOff, dof = dstOff;
        while (true) {
            MemorySegment.copy(src, so * elemBytes, dst, dof * elemBytes, run * elemBytes);
            int d = last - 1;
            for (; d >= 0; d--) {
                idx[d]++;
                so += srcStride[d];
                dof += dstStride[d];
                if (idx[d] < extent[d]) break;
                so -= srcStride[d] * extent[d];
                dof -= dstStride[d] * extent[d];
                idx[d] = 0;
            }
            if (d < 0) return;
        }
    }
}
