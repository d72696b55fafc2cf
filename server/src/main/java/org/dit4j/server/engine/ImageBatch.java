package org.dit4j.server.engine;

import java.util.Arrays;
import java.util.Objects;

/** ComfyUI's IMAGE value: [B, H, W, C] float32 in 0..1, row-major, C = 3 (RGB) as VAEDecode and LoadImage produce. */
public record ImageBatch(int batch, int height, int width, int channels, float[] pixels) {

    public ImageBatch {
        Objects.requireNonNull(pixels, "pixels");
        if (batch <= 0 || height <= 0 || width <= 0 || channels <= 0)
            throw new IllegalArgumentException("image dimensions must be positive, got [" + batch + ", " + height + ", " + width + ", " + channels + "]");
        if ((long) batch * height * width * channels != pixels.length)
            throw new IllegalArgumentException("image [" + batch + ", " + height + ", " + width + ", " + channels + "] needs "
                    + (long) batch * height * width * channels + " values, got " + pixels.length);
    }

    /** Index of pixel (b, y, x, c). */
    public int index(int b, int y, int x, int c) { return ((b * height + y) * width + x) * channels + c; }

    @Override public boolean equals(Object o) {
        return o instanceof ImageBatch i && batch == i.batch && height == i.height && width == i.width && channels == i.channels
                && Arrays.equals(pixels, i.pixels);
    }

    @Override public int hashCode() { return Arrays.hashCode(pixels); }

    @Override public String toString() { return "<IMAGE [" + batch + ", " + height + ", " + width + ", " + channels + "]>"; }
}
