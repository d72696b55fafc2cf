package org.dit4j.server.image;

import org.dit4j.server.engine.ImageBatch;

import java.util.List;
import java.util.Map;

/**
 * ComfyUI's SaveImage/PreviewImage PNGs: pixels converted as ComfyUI does ({@code clip(255·x, 0, 255).astype(uint8)}
 * in float32, i.e. truncated, not rounded), then encoded by the engine's {@link org.dit4j.engine.image.Png} with the
 * {@code prompt}/{@code workflow} text chunks before the image data, as PIL writes them.
 */
public final class Png {

    private Png() {}

    /** ComfyUI's float → uint8 conversion of one channel value. */
    public static int toByte(float v) {
        float s = 255f * v;
        if (!(s > 0f)) return 0;            // also maps NaN to 0, as numpy's clip + astype does on x86
        if (s >= 255f) return 255;
        return (int) s;
    }

    /**
     * Encodes image {@code index} of the batch (3 channels → RGB, 4 → RGBA).
     * @param texts    text chunks in order (keyword → text; ComfyUI's JSON is ASCII, so these are tEXt)
     * @param level    zlib level (SaveImage: 4, PreviewImage: 1)
     */
    public static byte[] encode(ImageBatch images, int index, List<Map.Entry<String, String>> texts, int level) {
        int w = images.width(), h = images.height(), c = images.channels();
        if (c != 3 && c != 4) throw new IllegalArgumentException("PNG needs 3 (RGB) or 4 (RGBA) channels, got " + c);
        byte[] px = new byte[h * w * c];
        float[] src = images.pixels();
        int base = images.index(index, 0, 0, 0);
        for (int i = 0; i < px.length; i++) px[i] = (byte) toByte(src[base + i]);
        return org.dit4j.engine.image.Png.encode(w, h, c, px, texts, level);
    }
}
