package org.dit4j.server.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.Vae;

import java.util.Arrays;

/**
 * ComfyUI's VAE value over {@link AutoencoderKL}, in the raw latent space (ComfyUI's LATENT; the sampler applies the
 * Flux latent format). As ComfyUI's {@code comfy.sd.VAE}:
 * <ul>
 *   <li>decode: image = clamp((decoder(z) + 1) / 2, 0, 1) in float32, one batch element at a time;</li>
 *   <li>encode: x = pixels·2 − 1, posterior mean (ComfyUI's regularizer takes the mode);</li>
 *   <li>tiled decode: the mean of three feathered tilings with tiles (w/2, 2h), (2w, h/2) and (w, h) latent cells
 *       ({@code decode_tiled_} / {@code tiled_scale_multidim}).</li>
 * </ul>
 */
final class FluxVae implements Vae {

    private final String name;
    private final Ops ops;
    private final DType dtype;
    private AutoencoderKL vae;

    FluxVae(String name, Ops ops, AutoencoderKL vae, DType dtype) {
        this.name = name;
        this.ops = ops;
        this.vae = vae;
        this.dtype = dtype;
    }

    private synchronized AutoencoderKL vae() {
        if (vae == null) throw new IllegalStateException("VAE " + name + " was released; queue the prompt again to reload it");
        return vae;
    }

    @Override public int latentChannels() { return vae().config().latentChannels(); }

    @Override public int downscale() { return vae().config().downFactor(); }

    private void checkLatent(Latent l) {
        if (l.shape().length != 4)
            throw new IllegalArgumentException("the Flux VAE decodes image latents [B, C, H, W], got " + l + " (a video latent?)");
        if (l.channels() != latentChannels())
            throw new IllegalArgumentException("VAE " + name + " decodes latents with " + latentChannels() + " channels, got " + l
                    + (l.channels() == 4 ? " (EmptyLatentImage makes 4-channel SD latents; use EmptySD3LatentImage for Flux)" : ""));
    }

    @Override public ImageBatch decode(Latent latent) {
        checkLatent(latent);
        int b = latent.batch(), c = latent.channels(), h = latent.height(), w = latent.width(), f = downscale();
        int plane = c * h * w, oh = h * f, ow = w * f;
        float[] px = new float[b * oh * ow * 3];
        for (int n = 0; n < b; n++) {
            float[] out = decodeRaw(Arrays.copyOfRange(latent.samples(), n * plane, (n + 1) * plane), c, h, w);
            toHwc(out, oh, ow, px, n);
        }
        return new ImageBatch(b, oh, ow, 3, px);
    }

    /** decoder(z) for one latent [1, c, h, w] (float32 host values) → [3, h·f, w·f] float32, unclamped. */
    private float[] decodeRaw(float[] z, int c, int h, int w) {
        AutoencoderKL v = vae();
        try (Scope s = Scope.open()) {
            Tensor x = ops.upload(Tensor.of(z, 1, c, h, w));
            if (dtype != DType.F32) x = ops.cast(x, dtype);
            Tensor img = v.decodeRaw(x);
            Tensor host = img.device().isCpu() ? img : ops.toHost(img);
            return host.toFloatArray();
        }
    }

    /** clamp((x + 1) / 2, 0, 1) of a [3, H, W] image into element n of the [B, H, W, 3] batch. */
    private static void toHwc(float[] chw, int h, int w, float[] out, int n) {
        int plane = h * w;
        for (int i = 0; i < plane; i++)
            for (int k = 0; k < 3; k++) out[(n * plane + i) * 3 + k] = processOutput(chw[k * plane + i]);
    }

    static float processOutput(float x) {
        float v = (x + 1.0f) / 2.0f;
        return v < 0f ? 0f : v > 1f ? 1f : v;     // torch.clamp; NaN stays NaN
    }

    @Override public ImageBatch decodeTiled(Latent latent, int tileSize, int overlap) {
        checkLatent(latent);
        int f = downscale();
        int tx = tileSize / f, ty = tileSize / f, ov = overlap / f;
        if (tx < 2) throw new IllegalArgumentException("tile_size " + tileSize + " is smaller than two latent cells (" + 2 * f + " pixels)");
        int b = latent.batch(), c = latent.channels(), h = latent.height(), w = latent.width();
        int plane = c * h * w, oh = h * f, ow = w * f;
        float[] px = new float[b * oh * ow * 3];
        for (int n = 0; n < b; n++) {
            float[] z = Arrays.copyOfRange(latent.samples(), n * plane, (n + 1) * plane);
            float[] a = tiledScale(z, c, h, w, ty * 2, tx / 2, ov, f);
            float[] bb = tiledScale(z, c, h, w, ty / 2, tx * 2, ov, f);
            float[] cc = tiledScale(z, c, h, w, ty, tx, ov, f);
            float[] sum = new float[a.length];
            for (int i = 0; i < sum.length; i++) sum[i] = ((a[i] + bb[i]) + cc[i]) / 3.0f;
            toHwc(sum, oh, ow, px, n);
        }
        return new ImageBatch(b, oh, ow, 3, px);
    }

    /**
     * ComfyUI's tiled_scale_multidim for one latent [c, h, w] and the 2-D tile (tileH, tileW) with overlap {@code ov}
     * latent cells: tiles start every tile − ov cells (plus one flush with the far edge when needed), each decoded tile
     * is weighted by a mask that ramps over the first and last ov·f pixels ((t+1)/(ov·f)), and the output is the
     * weighted sum divided by the summed weights. A latent that fits one tile is decoded whole.
     */
    private float[] tiledScale(float[] z, int c, int h, int w, int tileH, int tileW, int ov, int f) {
        int oh = h * f, ow = w * f;
        if (h <= tileH && w <= tileW) return decodeRaw(z, c, h, w);
        int[] ys = positions(h, tileH, ov), xs = positions(w, tileW, ov);
        float[] out = new float[3 * oh * ow], div = new float[3 * oh * ow];
        for (int y0 : ys) {
            int py = Math.max(0, Math.min(h - ov, y0)), lh = Math.min(tileH, h - py);
            for (int x0 : xs) {
                int pxx = Math.max(0, Math.min(w - ov, x0)), lw = Math.min(tileW, w - pxx);
                float[] tile = new float[c * lh * lw];
                for (int k = 0; k < c; k++)
                    for (int y = 0; y < lh; y++)
                        System.arraycopy(z, (k * h + py + y) * w + pxx, tile, (k * lh + y) * lw, lw);
                float[] ps = decodeRaw(tile, c, lh, lw);
                int th = lh * f, tw = lw * f;
                float[] mk = mask(th, tw, ov * f);
                int oy = py * f, ox = pxx * f;
                for (int k = 0; k < 3; k++)
                    for (int y = 0; y < th; y++)
                        for (int x = 0; x < tw; x++) {
                            float m = mk[y * tw + x];
                            int o = (k * oh + oy + y) * ow + ox + x;
                            out[o] += ps[(k * th + y) * tw + x] * m;
                            div[o] += m;
                        }
            }
        }
        for (int i = 0; i < out.length; i++) out[i] = out[i] / div[i];
        return out;
    }

    /** Tile starts along one axis of {@code size} cells (tiled_scale_multidim's position list). */
    static int[] positions(int size, int tile, int ov) {
        if (size <= tile) return new int[] {0};
        int step = Math.max(1, tile - ov);
        int n = 0;
        int[] p = new int[size / step + 2];
        for (int s = 0; s < size - ov; s += step) p[n++] = s;
        if (n == 0) p[n++] = 0;
        if (p[n - 1] + tile < size) p[n++] = size - tile;
        return Arrays.copyOf(p, n);
    }

    /**
     * The feather mask of a decoded tile of th × tw pixels, built as ComfyUI does: ones; then along the rows and then
     * along the columns, for t = 0..feather−1, the t-th and the (len−1−t)-th line multiplied by (t+1)/feather in
     * float32 (an axis no longer than the feather is left alone).
     */
    static float[] mask(int th, int tw, int feather) {
        float[] m = new float[th * tw];
        Arrays.fill(m, 1f);
        if (feather < th)
            for (int t = 0; t < feather; t++) {
                float a = (float) ((t + 1) / (double) feather);
                for (int x = 0; x < tw; x++) m[t * tw + x] *= a;
                for (int x = 0; x < tw; x++) m[(th - 1 - t) * tw + x] *= a;
            }
        if (feather < tw)
            for (int t = 0; t < feather; t++) {
                float a = (float) ((t + 1) / (double) feather);
                for (int y = 0; y < th; y++) m[y * tw + t] *= a;
                for (int y = 0; y < th; y++) m[y * tw + tw - 1 - t] *= a;
            }
        return m;
    }

    @Override public Latent encode(ImageBatch images) {
        if (images.channels() != 3) throw new IllegalArgumentException("VAEEncode needs RGB images, got " + images);
        int f = downscale();
        if (images.height() % f != 0 || images.width() % f != 0)
            throw new IllegalArgumentException("image " + images.width() + "×" + images.height() + " is not a multiple of " + f + " pixels");
        AutoencoderKL v = vae();
        int b = images.batch(), h = images.height(), w = images.width(), plane = h * w;
        int lc = latentChannels(), lh = h / f, lw = w / f;
        float[] out = new float[b * lc * lh * lw];
        for (int n = 0; n < b; n++) {
            float[] chw = new float[3 * plane];
            for (int i = 0; i < plane; i++)
                for (int k = 0; k < 3; k++) chw[k * plane + i] = images.pixels()[(n * plane + i) * 3 + k] * 2.0f - 1.0f;
            try (Scope s = Scope.open()) {
                Tensor x = ops.upload(Tensor.of(chw, 1, 3, h, w));
                if (dtype != DType.F32) x = ops.cast(x, dtype);
                Tensor z = v.encodeRaw(x);
                Tensor host = z.device().isCpu() ? z : ops.toHost(z);
                float[] zz = host.toFloatArray();
                System.arraycopy(zz, 0, out, n * zz.length, zz.length);
            }
        }
        return new Latent(new long[] {b, lc, lh, lw}, out);
    }

    @Override public synchronized void close() {
        if (vae != null) vae.close();
        vae = null;
    }

    @Override public String toString() { return "<FluxVae " + name + ">"; }
}
