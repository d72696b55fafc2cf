package org.dit4j.server.engine;

import java.util.Arrays;
import java.util.Objects;

/** ComfyUI's MASK value: [B, H, W] float32 in 0..1 (1 = masked). */
public record Mask(int batch, int height, int width, float[] values) {

    public Mask {
        Objects.requireNonNull(values, "values");
        if (batch <= 0 || height <= 0 || width <= 0)
            throw new IllegalArgumentException("mask dimensions must be positive, got [" + batch + ", " + height + ", " + width + "]");
        if ((long) batch * height * width != values.length)
            throw new IllegalArgumentException("mask [" + batch + ", " + height + ", " + width + "] needs "
                    + (long) batch * height * width + " values, got " + values.length);
    }

    @Override public boolean equals(Object o) {
        return o instanceof Mask m && batch == m.batch && height == m.height && width == m.width && Arrays.equals(values, m.values);
    }

    @Override public int hashCode() { return Arrays.hashCode(values); }

    @Override public String toString() { return "<MASK [" + batch + ", " + height + ", " + width + "]>"; }
}
