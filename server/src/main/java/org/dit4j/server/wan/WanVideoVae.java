package org.dit4j.server.wan;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVae;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.Vae;

import java.util.Arrays;

/**
 * ComfyUI's VAE value over the Wan2.1 VAE ({@link WanVae}), in the raw latent space (the sampler applies the Wan21
 * latent format). As ComfyUI's {@code comfy.sd.VAE} for Wan:
 * <ul>
 *   <li>decode: a video latent [B, 16, F, h, w] → [B, 1 + 4(F − 1), 8h, 8w, 3] frames flattened to an IMAGE batch of
 *       B·T frames (video-major), pixel = clamp((x + 1)/2, 0, 1) in float32; the decoder runs one latent frame at a time
 *       with its causal cache (ComfyUI's WanVAE.decode);</li>
 *   <li>encode: an IMAGE batch of T = 1 + 4k frames is one video [1, 3, T, H, W] (x = 2·pixel − 1) → the posterior
 *       mean [1, 16, 1 + k, H/8, W/8].</li>
 * </ul>
 */
final class WanVideoVae implements Vae {

    private final String name;
    private final Ops ops;
    private final DType dtype;
    private WanVae vae;

    WanVideoVae(String name, Ops ops, WanVae vae, DType dtype) {
        this.name = name;
        this.ops = ops;
        this.vae = vae;
        this.dtype = dtype;
    }

    private synchronized WanVae vae() {
        if (vae == null) throw new IllegalStateException("VAE " + name + " was released; queue the prompt again to reload it");
        return vae;
    }

    WanVaeConfig config() { return vae().config(); }

    @Override public int latentChannels() { return config().zDim(); }

    @Override public int downscale() { return config().spatialFactor(); }

    @Override public ImageBatch decode(Latent latent) {
        long[] s = latent.shape();
        WanVaeConfig c = config();
        if (s.length != 5)
            throw new IllegalArgumentException("the Wan VAE " + name + " decodes video latents [B, " + c.zDim() + ", F, h, w], got " + latent
                    + (s.length == 4 ? " (an image latent: make video latents with EmptyHunyuanLatentVideo)" : ""));
        if (latent.channels() != c.zDim())
            throw new IllegalArgumentException("VAE " + name + " decodes latents with " + c.zDim() + " channels, got " + latent);
        int b = (int) s[0], ch = (int) s[1], f = (int) s[2], h = (int) s[3], w = (int) s[4];
        int sf = c.spatialFactor(), oh = h * sf, ow = w * sf, frames = c.videoFrames(f);
        int plane = ch * f * h * w, pixels = oh * ow;
        float[] out = new float[b * frames * pixels * 3];
        WanVae v = vae();
        for (int n = 0; n < b; n++) {
            float[] z = Arrays.copyOfRange(latent.samples(), n * plane, (n + 1) * plane);
            int base = n * frames;
            int[] at = {0};
            try (Scope scope = Scope.open()) {
                Tensor raw = ops.upload(Tensor.of(z, 1, ch, f, h, w));
                if (dtype != DType.F32) raw = ops.cast(raw, dtype);
                v.decodeRaw(raw, 1, chunk -> {
                    Tensor f32 = chunk.dtype() == DType.F32 ? chunk : ops.cast(chunk, DType.F32);
                    Tensor host = f32.device().isCpu() ? f32 : ops.toHost(f32);
                    float[] px = host.toFloatArray();                          // [1, 3, t, H, W]
                    int t = Math.toIntExact(chunk.dim(2));
                    for (int k = 0; k < t; k++) {
                        int frame = base + at[0] + k;
                        for (int i = 0; i < pixels; i++)
                            for (int col = 0; col < 3; col++)
                                out[(frame * pixels + i) * 3 + col] = processOutput(px[(col * t + k) * pixels + i]);
                    }
                    at[0] += t;
                });
            }
            if (at[0] != frames)
                throw new IllegalStateException("internal: the Wan decoder gave " + at[0] + " frames for " + f + " latent frames, expected " + frames);
        }
        return new ImageBatch(b * frames, oh, ow, 3, out);
    }

    /** clamp((x + 1)/2, 0, 1) in float32; NaN stays NaN. */
    static float processOutput(float x) {
        float v = (x + 1.0f) / 2.0f;
        return v < 0f ? 0f : v > 1f ? 1f : v;
    }

    @Override public ImageBatch decodeTiled(Latent latent, int tileSize, int overlap) {
        throw new UnsupportedOperationException("VAEDecodeTiled is not supported with the Wan VAE " + name + " (dit4j decodes Wan latents "
                + "one latent frame at a time, which bounds the memory already); use VAEDecode");
    }

    @Override public Latent encode(ImageBatch images) {
        WanVaeConfig c = config();
        if (images.channels() != 3) throw new IllegalArgumentException("VAEEncode needs RGB images, got " + images);
        int t = images.batch(), h = images.height(), w = images.width(), sf = c.spatialFactor();
        if (h % sf != 0 || w % sf != 0)
            throw new IllegalArgumentException("image " + w + "×" + h + " is not a multiple of " + sf + " pixels");
        if ((t - 1) % c.temporalFactor() != 0)
            throw new IllegalArgumentException("the Wan VAE encodes videos of 1 + " + c.temporalFactor() + "k frames; got a batch of " + t
                    + " images: use " + ((t - 1) / c.temporalFactor() * c.temporalFactor() + 1) + " frames");
        int pixels = h * w;
        float[] video = new float[3 * t * pixels];
        float[] px = images.pixels();
        for (int k = 0; k < t; k++)
            for (int i = 0; i < pixels; i++)
                for (int col = 0; col < 3; col++) video[(col * t + k) * pixels + i] = px[(k * pixels + i) * 3 + col] * 2.0f - 1.0f;
        try (Scope scope = Scope.open()) {
            Tensor x = ops.upload(Tensor.of(video, 1, 3, t, h, w));
            if (dtype != DType.F32) x = ops.cast(x, dtype);
            Tensor z = vae().encodeRaw(x);
            Tensor f32 = z.dtype() == DType.F32 ? z : ops.cast(z, DType.F32);
            Tensor host = f32.device().isCpu() ? f32 : ops.toHost(f32);
            return new Latent(new long[] {1, c.zDim(), z.dim(2), z.dim(3), z.dim(4)}, host.toFloatArray());
        }
    }

    @Override public synchronized void close() {
        if (vae != null) vae.close();
        vae = null;
    }

    @Override public String toString() { return "<WanVideoVae " + name + ">"; }
}
