package org.dit4j.models.vae.wan;

import java.util.List;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * 8-bit RGB frames ↔ Wan VAE video tensors [N, 3, T, H, W] in [−1, 1], rounding as diffusers' {@code VideoProcessor}:
 * <ul>
 *   <li>in ({@code preprocess_video} of PIL frames): x = 2·(p/255) − 1 in float32;</li>
 *   <li>out, {@link Rounding#NEAREST_EVEN} ({@code postprocess_video(..., "pil")}): p = round_half_even(clamp(x·0.5 + 0.5,
 *       0, 1)·255) in float32;</li>
 *   <li>out, {@link Rounding#TRUNCATE} ({@code export_to_video} of the pipelines' default {@code "np"} output):
 *       p = ⌊clamp(x·0.5 + 0.5, 0, 1)·255⌋.</li>
 * </ul>
 * The clamp subsumes the [−1, 1] clamp of diffusers' {@code AutoencoderKLWan.decode}, so unclamped decoder output
 * ({@link WanVae}) converts to the same bytes. Frames are interleaved RGB bytes, row-major (PIL's RGB layout): byte
 * {@code 3·(y·width + x) + c}. Tensors are host tensors.
 */
public final class WanVideoFrames {
    private WanVideoFrames() {}

    /** How float pixels become bytes. */
    public enum Rounding {
        /** Round half to even, as {@code VaeImageProcessor.numpy_to_pil} (PIL output, PNG frames). */
        NEAREST_EVEN,
        /** Truncate, as diffusers' {@code export_to_video} does with float frames. */
        TRUNCATE
    }

    /** Host F32 video [1, 3, T, height, width] in [−1, 1] from T interleaved RGB frames of {@code width×height}. */
    public static Tensor fromRgb8(int width, int height, List<byte[]> frames) {
        if (width < 1 || height < 1 || frames.isEmpty())
            throw new IllegalArgumentException("fromRgb8 needs a positive size and at least one frame, got " + width + "×" + height
                    + ", " + frames.size() + " frames");
        int plane = Math.multiplyExact(width, height), t = frames.size();
        float[] out = new float[Math.multiplyExact(3 * t, plane)];
        for (int f = 0; f < t; f++) {
            byte[] rgb = frames.get(f);
            if (rgb.length != 3 * plane)
                throw new IllegalArgumentException("frame " + f + " must hold " + width + "×" + height + "×3 = " + 3 * plane
                        + " RGB bytes, got " + rgb.length);
            for (int i = 0; i < plane; i++)
                for (int c = 0; c < 3; c++) out[(c * t + f) * plane + i] = toUnit(rgb[3 * i + c] & 0xFF);
        }
        return Tensor.of(DType.F32, out, 1, 3, t, height, width);
    }

    /** Interleaved RGB bytes of frame {@code frame} of video {@code batch} of a host tensor [N, 3, T, H, W] (any floating dtype). */
    public static byte[] toRgb8(Tensor video, int batch, int frame, Rounding rounding) {
        if (video.rank() != 5 || video.dim(1) != 3)
            throw new IllegalArgumentException("toRgb8 needs a video tensor [N, 3, T, H, W], got " + video.shape());
        if (batch < 0 || batch >= video.dim(0) || frame < 0 || frame >= video.dim(2))
            throw new IndexOutOfBoundsException("frame " + frame + " of video " + batch + " in a tensor " + video.shape());
        if (!video.device().isCpu())
            throw new IllegalArgumentException("toRgb8 reads host tensors; copy the video with ops.toHost first");
        long t = video.dim(2);
        int plane = Math.toIntExact(video.dim(3) * video.dim(4));
        byte[] rgb = new byte[3 * plane];
        for (int c = 0; c < 3; c++) {
            long base = ((batch * 3L + c) * t + frame) * plane;
            for (int i = 0; i < plane; i++) rgb[3 * i + c] = (byte) toByte(video.getFloat(base + i), rounding);
        }
        return rgb;
    }

    /** p/255·2 − 1 as diffusers computes it in float32. */
    static float toUnit(int p) { return 2f * ((float) p / 255f) - 1f; }

    /** clamp(x·0.5 + 0.5, 0, 1)·255, rounded or truncated, in float32; NaN → 0. */
    static int toByte(float x, Rounding rounding) {
        float v = x * 0.5f + 0.5f;
        if (!(v > 0f)) return 0;   // also NaN
        if (v > 1f) v = 1f;
        float p = v * 255f;
        return rounding == Rounding.NEAREST_EVEN ? (int) Math.rint(p) : (int) p;
    }
}
