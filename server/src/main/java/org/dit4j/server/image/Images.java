package org.dit4j.server.image;

import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.Mask;

import javax.imageio.IIOImage;
import javax.imageio.ImageIO;
import javax.imageio.ImageWriteParam;
import javax.imageio.ImageWriter;
import javax.imageio.stream.MemoryCacheImageOutputStream;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Image decoding (LoadImage), JPEG previews (/view?preview=jpeg) and ComfyUI's center-crop + Lanczos resize. */
public final class Images {

    private Images() {}

    /** LoadImage's outputs: RGB image [1, H, W, 3] and mask [1, H, W] = 1 − alpha (a 64×64 zero mask without alpha). */
    public record Loaded(ImageBatch image, Mask mask) {}

    /** Decodes PNG, JPEG, BMP or GIF (first frame). */
    public static Loaded read(Path file) throws IOException {
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(Files.readAllBytes(file)));
        if (img == null)
            throw new IOException(file.getFileName() + ": not an image this server can decode (PNG, JPEG, BMP and GIF are supported)");
        int w = img.getWidth(), h = img.getHeight();
        boolean alpha = img.getColorModel().hasAlpha();
        float[] px = new float[h * w * 3];
        float[] mask = alpha ? new float[h * w] : new float[64 * 64];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int argb = img.getRGB(x, y);
                int i = (y * w + x) * 3;
                px[i] = ((argb >>> 16) & 0xff) / 255f;
                px[i + 1] = ((argb >>> 8) & 0xff) / 255f;
                px[i + 2] = (argb & 0xff) / 255f;
                if (alpha) mask[y * w + x] = 1f - ((argb >>> 24) & 0xff) / 255f;
            }
        return new Loaded(new ImageBatch(1, h, w, 3, px), alpha ? new Mask(1, h, w, mask) : new Mask(1, 64, 64, mask));
    }

    /** Re-encodes an image file as JPEG (quality 1..100) for /view previews; alpha is dropped. */
    public static byte[] jpeg(byte[] source, int quality) throws IOException {
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(source));
        if (img == null) throw new IOException("not a decodable image");
        BufferedImage rgb = new BufferedImage(img.getWidth(), img.getHeight(), BufferedImage.TYPE_INT_RGB);
        rgb.getGraphics().drawImage(img, 0, 0, null);
        ImageWriter writer = ImageIO.getImageWritersByFormatName("jpeg").next();
        ByteArrayOutputStream bos = new ByteArrayOutputStream();
        try (var out = new MemoryCacheImageOutputStream(bos)) {
            writer.setOutput(out);
            ImageWriteParam p = writer.getDefaultWriteParam();
            p.setCompressionMode(ImageWriteParam.MODE_EXPLICIT);
            p.setCompressionQuality(Math.max(1, Math.min(100, quality)) / 100f);
            writer.write(null, new IIOImage(rgb, null, null), p);
        } finally {
            writer.dispose();
        }
        return bos.toByteArray();
    }

    /**
     * {@code comfy.utils.common_upscale(image, width, height, "lanczos", "center")}: crop the center to the target
     * aspect ratio, then resize with a Lanczos-3 filter whose support widens when downscaling (as PIL's
     * resample=LANCZOS), going through 8-bit values before and after as ComfyUI's PIL round trip does.
     * Not bit-identical to PIL's fixed-point implementation (differences of ±1 in 8-bit values).
     */
    public static ImageBatch centerCropLanczos(ImageBatch in, int width, int height) {
        int ow = in.width(), oh = in.height();
        double oldAspect = (double) ow / oh, newAspect = (double) width / height;
        int x0 = 0, y0 = 0;
        if (oldAspect > newAspect) x0 = (int) Math.round((ow - ow * (newAspect / oldAspect)) / 2);
        else if (oldAspect < newAspect) y0 = (int) Math.round((oh - oh * (oldAspect / newAspect)) / 2);
        int cw = ow - 2 * x0, ch = oh - 2 * y0;
        int c = in.channels();
        float[] out = new float[in.batch() * height * width * c];
        for (int b = 0; b < in.batch(); b++) {
            float[] src = new float[ch * cw * c];
            for (int y = 0; y < ch; y++)
                for (int x = 0; x < cw; x++)
                    for (int k = 0; k < c; k++) src[(y * cw + x) * c + k] = Png.toByte(in.pixels()[in.index(b, y + y0, x + x0, k)]);
            float[] horiz = resample(src, cw, ch, c, width, true);
            float[] both = resample(horiz, width, ch, c, height, false);
            for (int i = 0; i < both.length; i++) {
                float v = Math.round(Math.max(0, Math.min(255, both[i])));
                out[b * height * width * c + i] = v / 255f;
            }
        }
        return new ImageBatch(in.batch(), height, width, c, out);
    }

    private static float[] resample(float[] src, int w, int h, int c, int target, boolean horizontal) {
        int inLen = horizontal ? w : h;
        double scale = (double) inLen / target;
        double support = 3.0 * Math.max(1.0, scale);
        double filterScale = Math.max(1.0, scale);
        int ow = horizontal ? target : w, oh = horizontal ? h : target;
        float[] out = new float[ow * oh * c];
        for (int o = 0; o < target; o++) {
            double center = (o + 0.5) * scale;
            int lo = Math.max(0, (int) Math.floor(center - support));
            int hi = Math.min(inLen, (int) Math.ceil(center + support));
            double[] wts = new double[hi - lo];
            double sum = 0;
            for (int i = lo; i < hi; i++) {
                double v = lanczos((i + 0.5 - center) / filterScale);
                wts[i - lo] = v;
                sum += v;
            }
            if (sum != 0) for (int i = 0; i < wts.length; i++) wts[i] /= sum;
            int lines = horizontal ? h : w;
            for (int line = 0; line < lines; line++)
                for (int k = 0; k < c; k++) {
                    double acc = 0;
                    for (int i = lo; i < hi; i++) {
                        int idx = horizontal ? (line * w + i) * c + k : (i * w + line) * c + k;
                        acc += wts[i - lo] * src[idx];
                    }
                    int oi = horizontal ? (line * ow + o) * c + k : (o * ow + line) * c + k;
                    out[oi] = (float) acc;
                }
        }
        return out;
    }

    private static double lanczos(double x) {
        if (x == 0) return 1;
        if (Math.abs(x) >= 3) return 0;
        double px = Math.PI * x;
        return 3 * Math.sin(px) * Math.sin(px / 3) / (px * px);
    }
}
