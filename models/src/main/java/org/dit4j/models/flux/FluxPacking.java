package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/**
 * 2×2 latent packing and position ids (models.md §1.2, §1.8).
 * pack: [B, C, H, W] → [B, (H/2)(W/2), 4C] ("b c (h ph) (w pw) -> b (h w) (c ph pw)"): token n = hi·(W/2) + wi,
 * feature f = c·4 + ph·2 + pw. unpack is the exact inverse. H, W are latent sizes (image size / 8) and must be even.
 */
public final class FluxPacking {
    private FluxPacking() {}

    /** z:[B, C, H, W] → [B, (H/2)(W/2), 4C]. */
    public static Tensor pack(Ops ops, Tensor z) {
        if (z.rank() != 4 || z.dim(2) % 2 != 0 || z.dim(3) % 2 != 0)
            throw new IllegalArgumentException("Flux packs latents [B, C, H, W] with even H and W (image sides multiple of 16), got " + z.shape());
        long b = z.dim(0), c = z.dim(1), h = z.dim(2) / 2, w = z.dim(3) / 2;
        Tensor p = ops.permute(ops.reshape(z, b, c, h, 2, w, 2), 0, 2, 4, 1, 3, 5);     // [B, h, w, C, 2, 2]
        return ops.reshape(p, b, h * w, c * 4);
    }

    /** x:[B, (H/2)(W/2), 4C] → [B, C, H, W] for latent height H and width W. */
    public static Tensor unpack(Ops ops, Tensor x, long height, long width) {
        long h = height / 2, w = width / 2;
        if (x.rank() != 3 || height % 2 != 0 || width % 2 != 0 || x.dim(1) != h * w || x.dim(2) % 4 != 0)
            throw new IllegalArgumentException("cannot unpack " + x.shape() + " to a latent of " + height + "×" + width
                    + ": expected [B, " + h * w + ", 4C] and even sides");
        long b = x.dim(0), c = x.dim(2) / 4;
        Tensor p = ops.permute(ops.reshape(x, b, h, w, c, 2, 2), 0, 3, 1, 4, 2, 5);     // [B, C, h, 2, w, 2]
        return ops.reshape(p, b, c, height, width);
    }

    /** Ids of a packed latent of latent size H×W: host F32 [(H/2)(W/2), 3], rows (0, hi, wi), hi-major. */
    public static Tensor imageIds(long height, long width) { return ids(height / 2, width / 2, 0); }

    /**
     * Ids of a Kontext reference image of latent size H×W: (1, hi, wi). Rows and columns start at 0 on the
     * reference's own grid (BFL; ComfyUI's "offset" method with one reference).
     */
    public static Tensor kontextIds(long height, long width) { return ids(height / 2, width / 2, 1); }

    /** Text ids: zeros [Ntxt, 3]. */
    public static Tensor textIds(long nTxt) { return Tensor.zeros(org.dit4j.core.tensor.DType.F32, nTxt, 3); }

    /** Ids (axis0, hi, wi) for a grid of h×w tokens, hi-major. */
    public static Tensor ids(long h, long w, float axis0) {
        float[] v = new float[Math.toIntExact(h * w * 3)];
        for (int i = 0; i < h; i++) {
            for (int j = 0; j < w; j++) {
                int n = (int) (i * w + j);
                v[3 * n] = axis0;
                v[3 * n + 1] = i;
                v[3 * n + 2] = j;
            }
        }
        return Tensor.of(v, h * w, 3);
    }
}
