package org.dit4j.engine.flux;

import org.dit4j.engine.image.ImageResize;
import org.dit4j.engine.image.RgbImage;

/**
 * Kontext reference-image sizing (models.md §1.8): the image is resized to the entry of BFL's
 * {@code PREFERED_KONTEXT_RESOLUTIONS} whose aspect ratio is closest to its own, as BFL's {@code prepare_kontext}, the
 * diffusers FluxKontextPipeline ({@code _auto_resize}) and ComfyUI's FluxKontextImageScale choose it: the minimum of
 * (|w_in/h_in − w/h|, w, h) in Python tuple order, so ties go to the smaller width. The resize is Pillow's Lanczos
 * ({@link ImageResize#lanczos}) without cropping, as BFL and diffusers do (ComfyUI crops the centre to the target
 * aspect ratio first, so ComfyUI's reference differs slightly for inputs whose aspect ratio is not in the list).
 */
public final class Kontext {
    private Kontext() {}

    /** (width, height) pairs, all multiples of 16, about one megapixel each. */
    public static final int[][] PREFERRED_RESOLUTIONS = {
        {672, 1568}, {688, 1504}, {720, 1456}, {752, 1392}, {800, 1328}, {832, 1248}, {880, 1184}, {944, 1104}, {1024, 1024},
        {1104, 944}, {1184, 880}, {1248, 832}, {1328, 800}, {1392, 752}, {1456, 720}, {1504, 688}, {1568, 672}};

    /** The preferred (width, height) for an input of {@code width × height}. */
    public static int[] preferredSize(int width, int height) {
        double ar = (double) width / height;
        int[] best = null;
        double bestD = 0;
        for (int[] r : PREFERRED_RESOLUTIONS) {
            double d = Math.abs(ar - (double) r[0] / r[1]);
            if (best == null || d < bestD || (d == bestD && (r[0] < best[0] || (r[0] == best[0] && r[1] < best[1])))) {
                best = r;
                bestD = d;
            }
        }
        return best.clone();
    }

    /** The reference image at its preferred resolution (the image itself, copied, when it already has that size). */
    public static RgbImage scale(RgbImage image) {
        int[] wh = preferredSize(image.width(), image.height());
        return ImageResize.lanczos(image, wh[0], wh[1]);
    }
}
