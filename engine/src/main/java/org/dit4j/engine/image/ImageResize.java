package org.dit4j.engine.image;

/**
 * Lanczos resizing of 8-bit RGB images as Pillow's {@code Image.resize(size, Image.LANCZOS)} computes it
 * (libImaging/Resample.c), which the BFL and diffusers Kontext pipelines use on the reference image:
 * <ul>
 *   <li>per axis, output pixel i samples around center = (i + 0.5)·scale, scale = in/out; the kernel
 *       sinc(x)·sinc(x/3) on |x| &lt; 3 is stretched by max(scale, 1) (anti-aliasing when shrinking); taps from
 *       ⌊center − support + 0.5⌋ to ⌊center + support + 0.5⌋ clipped to the image; weights normalised to sum 1;</li>
 *   <li>weights in fixed point with 22 fractional bits (rounded half away from zero), sums started at one half and
 *       shifted back, clamped to 0..255;</li>
 *   <li>the horizontal pass first, rounded to 8 bits, then the vertical pass; an axis whose size does not change is
 *       not resampled.</li>
 * </ul>
 * This reproduces Pillow's integer arithmetic; the weights are computed in double as in C, so results are expected to
 * be identical to Pillow's (verified here only on hand-computed cases, not against Pillow itself).
 */
public final class ImageResize {
    private ImageResize() {}

    private static final double SUPPORT = 3.0;
    private static final int PRECISION_BITS = 32 - 8 - 2;

    /** {@code image} resized to {@code width × height} with Pillow's Lanczos filter. */
    public static RgbImage lanczos(RgbImage image, int width, int height) {
        if (width < 1 || height < 1) throw new IllegalArgumentException("target size must be positive, got " + width + "×" + height);
        RgbImage out = image;
        if (width != image.width()) out = horizontal(out, width);
        if (height != image.height()) out = vertical(out, height);
        return out == image ? new RgbImage(image.width(), image.height(), image.rgb().clone()) : out;
    }

    /** Fixed-point taps of one axis: for output i, taps start at bounds[2i], count bounds[2i+1], weights k[i·ksize..]. */
    private record Coeffs(int ksize, int[] bounds, int[] k) {}

    static Coeffs coeffs(int inSize, int outSize) {
        double scale = (double) inSize / outSize;
        double filterscale = Math.max(scale, 1.0);
        double support = SUPPORT * filterscale;
        int ksize = (int) Math.ceil(support) * 2 + 1;
        int[] bounds = new int[2 * outSize];
        int[] kk = new int[outSize * ksize];
        double[] w = new double[ksize];
        for (int xx = 0; xx < outSize; xx++) {
            double center = (xx + 0.5) * scale;
            double ss = 1.0 / filterscale;
            int xmin = (int) (center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int) (center + support + 0.5);
            if (xmax > inSize) xmax = inSize;
            xmax -= xmin;
            double ww = 0;
            for (int x = 0; x < xmax; x++) {
                double v = lanczos((x + xmin - center + 0.5) * ss);
                w[x] = v;
                ww += v;
            }
            for (int x = 0; x < xmax; x++) {
                double v = ww != 0.0 ? w[x] / ww : w[x];
                kk[xx * ksize + x] = v < 0 ? (int) (-0.5 + v * (1 << PRECISION_BITS)) : (int) (0.5 + v * (1 << PRECISION_BITS));
            }
            bounds[2 * xx] = xmin;
            bounds[2 * xx + 1] = xmax;
        }
        return new Coeffs(ksize, bounds, kk);
    }

    private static double sinc(double x) {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.sin(x) / x;
    }

    private static double lanczos(double x) {
        return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
    }

    private static int clip8(int v) {
        int s = v >> PRECISION_BITS;
        return s < 0 ? 0 : Math.min(s, 255);
    }

    private static RgbImage horizontal(RgbImage in, int outW) {
        Coeffs c = coeffs(in.width(), outW);
        int h = in.height(), inW = in.width();
        byte[] src = in.rgb(), dst = new byte[3 * outW * h];
        for (int y = 0; y < h; y++) {
            int row = 3 * y * inW;
            for (int xx = 0; xx < outW; xx++) {
                int xmin = c.bounds[2 * xx], xmax = c.bounds[2 * xx + 1], kb = xx * c.ksize;
                for (int ch = 0; ch < 3; ch++) {
                    int ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < xmax; x++) ss += (src[row + 3 * (x + xmin) + ch] & 0xFF) * c.k[kb + x];
                    dst[3 * (y * outW + xx) + ch] = (byte) clip8(ss);
                }
            }
        }
        return new RgbImage(outW, h, dst);
    }

    private static RgbImage vertical(RgbImage in, int outH) {
        Coeffs c = coeffs(in.height(), outH);
        int w = in.width();
        byte[] src = in.rgb(), dst = new byte[3 * w * outH];
        for (int yy = 0; yy < outH; yy++) {
            int ymin = c.bounds[2 * yy], ymax = c.bounds[2 * yy + 1], kb = yy * c.ksize;
            for (int x = 0; x < 3 * w; x++) {
                int ss = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < ymax; y++) ss += (src[3 * (y + ymin) * w + x] & 0xFF) * c.k[kb + y];
                dst[3 * yy * w + x] = (byte) clip8(ss);
            }
        }
        return new RgbImage(w, outH, dst);
    }
}
