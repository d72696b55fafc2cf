package org.dit4j.models.vae;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * 8-bit RGB ↔ VAE image tensors, rounding exactly as diffusers' {@code VaeImageProcessor}:
 * <ul>
 *   <li>in: x = 2·(p/255) − 1 in float32 ({@code pil_to_numpy} then {@code normalize});</li>
 *   <li>out: p = round_half_even(clamp(x·0.5 + 0.5, 0, 1)·255) in float32 ({@code denormalize} then
 *       {@code numpy_to_pil}).</li>
 * </ul>
 * Pixels are interleaved RGB bytes, row-major (PIL's RGB layout):
 * byte {@code 3·(y·width + x) + c}. Tensors are host tensors [N, 3, H, W].
 */
public final class VaeImages {
    private VaeImages() {}

    /** Host F32 tensor [N, 3, height, width] in [−1, 1] from N interleaved RGB images of {@code width×height}. */
    public static Tensor fromRgb8(int width, int height, byte[]... images) {
        if (width < 1 || height < 1 || images.length == 0)
            throw new IllegalArgumentException("fromRgb8 needs a positive size and at least one image, got " + width + "×"
                    + height + ", " + images.length + " images");
        int plane = width * height;
        float[] out = new float[Math.multiplyExact(images.length, 3 * plane)];
        for (int n = 0; n < images.length; n++) {
            byte[] rgb = images[n];
            if (rgb.length != 3 * plane)
                throw new IllegalArgumentException("image " + n + " must hold " + width + "×" + height + "×3 = " + 3 * plane
                        + " RGB bytes, got " + rgb.length);
            int base = n * 3 * plane;
            for (int i = 0; i < plane; i++) {
                for (int c = 0; c < 3; c++) out[base + c * plane + i] = toUnit(rgb[3 * i + c] & 0xFF);
            }
        }
        return Tensor.of(DType.F32, out, images.length, 3, height, width);
    }

    /** Interleaved RGB bytes of image {@code index} of a host tensor [N, 3, H, W] (any floating dtype). */
    public static byte[] toRgb8(Tensor images, int index) {
        if (images.rank() != 4 || images.dim(1) != 3)
            throw new IllegalArgumentException("toRgb8 needs an image tensor [N, 3, H, W], got " + images.shape());
        if (index < 0 || index >= images.dim(0))
            throw new IndexOutOfBoundsException("image " + index + " of a batch of " + images.dim(0));
        if (!images.device().isCpu())
            throw new IllegalArgumentException("toRgb8 reads host tensors; copy the images with ops.toHost first");
        int plane = Math.toIntExact(images.dim(2) * images.dim(3));
        long base = (long) index * 3 * plane;
        byte[] rgb = new byte[3 * plane];
        for (int i = 0; i < plane; i++) {
            for (int c = 0; c < 3; c++) rgb[3 * i + c] = (byte) toByte(images.getFloat(base + (long) c * plane + i));
        }
        return rgb;
    }

    /** p/255·2 − 1 as diffusers computes it in float32. */
    static float toUnit(int p) { return 2f * ((float) p / 255f) - 1f; }

    /** round_half_even(clamp(x·0.5 + 0.5, 0, 1)·255), in float32; NaN → 0. */
    static int toByte(float x) {
        float v = x * 0.5f + 0.5f;
        if (!(v > 0f)) return 0;   // also NaN
        if (v > 1f) v = 1f;
        return (int) Math.rint(v * 255f);
    }
}
