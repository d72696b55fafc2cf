package org.dit4j.server.preview;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.ImageOutputStream;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.Locale;

/**
 * ComfyUI's latent2rgb step previews ({@code latent_preview.Latent2RGBPreviewer} and {@code server.send_image}):
 * <ol>
 *   <li>x0 of the first batch element (of a video latent: its first latent frame), in the model's latent space;</li>
 *   <li>per latent cell rgb = Σ_c x0[c]·factor[c] + bias (float32), clamped to [−1, 1], (v + 1)·127.5 rounded to
 *       8 bits;</li>
 *   <li>scaled to fit a square of the preview size (default 512) keeping the aspect ratio, as PIL's
 *       {@code ImageOps.contain} sizes it (a latent-sized image is usually enlarged), bilinear;</li>
 *   <li>JPEG, quality 95, sent as a binary WebSocket message: event type 1 (PREVIEW_IMAGE) and image type 1 (JPEG), each
 *       a 4-byte big-endian integer, then the JPEG bytes.</li>
 * </ol>
 */
public final class LatentPreview {

    private LatentPreview() {}

    /** ComfyUI's BinaryEventTypes.PREVIEW_IMAGE. */
    public static final int PREVIEW_IMAGE = 1;
    /** Image type numbers of a preview message. */
    public static final int JPEG = 1, PNG = 2;
    /** ComfyUI's default --preview-size. */
    public static final int DEFAULT_SIZE = 512;

    /** How the server makes previews ({@code --preview-method}). */
    public enum Method {
        NONE, LATENT2RGB;

        /** none, auto (latent2rgb, as ComfyUI's auto without TAESD decoders) or latent2rgb. */
        public static Method parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "none" -> NONE;
                case "auto", "latent2rgb" -> LATENT2RGB;
                default -> throw new IllegalArgumentException("--preview-method must be none, auto or latent2rgb, got '" + s
                        + "' (dit4j has no TAESD previews)");
            };
        }
    }

    /** The latent2rgb image of x0 (see the class comment), one pixel per latent cell. */
    public static BufferedImage latentToImage(LatentFormat format, float[] x0, long[] shape) {
        if (shape.length != 4 && shape.length != 5)
            throw new IllegalArgumentException("a preview needs a latent [B, C, H, W] or [B, C, T, H, W], got rank " + shape.length);
        int c = (int) shape[1], h = (int) shape[shape.length - 2], w = (int) shape[shape.length - 1];
        if (c != format.channels())
            throw new IllegalArgumentException(format + " previews read " + format.channels() + " latent channels, got " + c);
        long frames = shape.length == 5 ? shape[2] : 1;
        long channelStride = frames * h * w;                                   // x0[0, ch, 0] starts at ch·T·H·W
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int rgb = 0;
                for (int k = 0; k < 3; k++) {
                    float v = 0f;
                    for (int ch = 0; ch < c; ch++) v += x0[(int) (ch * channelStride) + y * w + x] * format.factor(ch, k);
                    v += format.bias(k);
                    rgb = (rgb << 8) | toByte(v);
                }
                img.setRGB(x, y, rgb);
            }
        return img;
    }

    /** clamp(v, −1, 1), + 1, · 127.5, rounded half to even (torch.round), as uint8. */
    static int toByte(float v) {
        float c = v < -1f ? -1f : v > 1f ? 1f : v;
        if (Float.isNaN(c)) return 0;
        return (int) Math.rint((c + 1f) * 127.5f);
    }

    /** The size PIL's ImageOps.contain gives a w×h image in a max×max box (the aspect ratio kept, Python rounding). */
    public static int[] containSize(int w, int h, int max) {
        double imRatio = (double) w / h;
        if (imRatio > 1.0) return new int[] {max, (int) Math.rint((double) h / w * max)};
        if (imRatio < 1.0) return new int[] {(int) Math.rint((double) w / h * max), max};
        return new int[] {max, max};
    }

    /** The preview JPEG of x0 fitted into a {@code maxSize} square. */
    public static byte[] jpeg(LatentFormat format, float[] x0, long[] shape, int maxSize) {
        BufferedImage small = latentToImage(format, x0, shape);
        int[] size = containSize(small.getWidth(), small.getHeight(), maxSize);
        BufferedImage out = small;
        if (size[0] != small.getWidth() || size[1] != small.getHeight()) {
            out = new BufferedImage(Math.max(1, size[0]), Math.max(1, size[1]), BufferedImage.TYPE_INT_RGB);
            Graphics2D g = out.createGraphics();
            g.setRenderingHint(RenderingHints.KEY_INTERPOLATION, RenderingHints.VALUE_INTERPOLATION_BILINEAR);
            g.drawImage(small, 0, 0, out.getWidth(), out.getHeight(), null);
            g.dispose();
        }
        return encodeJpeg(out, 0.95f);
    }

    static byte[] encodeJpeg(BufferedImage img, float quality) {
        ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        try (ImageOutputStream ios = ImageIO.createImageOutputStream(bytes)) {
            writer.setOutput(ios);
            ImageWriteParam p = writer.getDefaultWriteParam();
            p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
            p.setCompressionQuality(quality);
            writer.write(null, new IIOImage(img, null, null), p);
        } catch (IOException e) {
            throw new UncheckedIOException("JPEG encoding of a preview failed: " + e.getMessage(), e);
        } finally {
            writer.dispose();
        }
        return bytes.toByteArray();
    }

    /**
     * Encodes one tiny preview so that the first real one does not pay for loading ImageIO's JPEG writer and the colour
     * classes (hundreds of milliseconds on a cold JVM, inside the first sampler step); the server calls it on a
     * background thread at start.
     */
    public static void warmUp() {
        jpeg(LatentFormat.FLUX, new float[16 * 2 * 2], new long[] {1, 16, 2, 2}, 8);
    }

    /** The binary WebSocket message of a preview: event type, image type (big-endian 32-bit each), image bytes. */
    public static byte[] message(int imageType, byte[] image) {
        return ByteBuffer.allocate(8 + image.length).putInt(PREVIEW_IMAGE).putInt(imageType).put(image).array();
    }
}
