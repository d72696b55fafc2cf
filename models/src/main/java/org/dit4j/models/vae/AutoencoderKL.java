package org.dit4j.models.vae;

import static org.dit4j.models.vae.VaeBlocks.swap;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

/**
 * The KL autoencoder of Flux (and SD): diffusers {@code AutoencoderKL} on {@link Ops} (models.md §1.10).
 *
 * <p>Two latent spaces:
 * <ul>
 *   <li><b>raw</b>: what the encoder's mean is and what the decoder reads;</li>
 *   <li><b>scaled</b> (the transformer's): z = (raw − shift)·scale, raw = z/scale + shift (Flux: scale 0.3611,
 *       shift 0.1159).</li>
 * </ul>
 * {@link #encode} and {@link #decode} work in the scaled space, as the Flux pipelines call them; the {@code Raw}
 * variants skip the scaling. Encoding returns the posterior mean (no sampling), as BFL and diffusers Kontext do.
 * Images are [N, C, H, W] in [−1, 1] ({@link VaeImages} converts to and from 8-bit RGB).
 *
 * <p>Load it outside any {@link Scope} (or in one that outlives the model): the weights are owned by this object and
 * released by {@link #close()}.
 */
public final class AutoencoderKL implements AutoCloseable {
    private final Ops ops;
    private final VaeWeights weights;
    private final VaeEncoder encoder;
    private final VaeDecoder decoder;

    /** A model over weights already loaded onto {@code ops}' device; takes ownership of them. */
    public AutoencoderKL(Ops ops, VaeWeights weights) {
        this.ops = ops;
        this.weights = weights;
        this.encoder = weights.config().hasEncoder() ? new VaeEncoder(weights) : null;
        this.decoder = weights.config().hasDecoder() ? new VaeDecoder(weights) : null;
    }

    /**
     * Loads a VAE from a file ({@code ae.safetensors}, a ComfyUI/SD all-in-one file), a diffusers {@code vae/} folder
     * (weights + {@code config.json}) or a diffusers pipeline folder (its {@code vae/}). The configuration comes from
     * the tensor shapes plus {@code config.json} when there is one ({@link #readConfig}); weights are cast to
     * {@code dtype} (null: as stored).
     */
    public static AutoencoderKL load(Ops ops, Path path, DType dtype) {
        Path p = Files.isDirectory(path) && Files.isRegularFile(path.resolve("model_index.json")) ? path.resolve("vae") : path;
        try (WeightSource src = WeightSource.open(p)) {
            return load(ops, src, readConfig(src, p), dtype);
        }
    }

    /** Loads the tensors of {@code cfg} from {@code src}; {@code src} may be closed afterwards. */
    public static AutoencoderKL load(Ops ops, WeightSource src, VaeConfig cfg, DType dtype) {
        return new AutoencoderKL(ops, VaeWeights.load(ops, src, cfg, dtype));
    }

    /**
     * {@link VaeConfig#detect} on {@code src}, completed by the diffusers {@code config.json} in folder {@code path}
     * when it has one (norm groups, scale, shift; its architecture must agree with the weights).
     */
    public static VaeConfig readConfig(WeightSource src, Path path) {
        Path json = Files.isDirectory(path) ? path.resolve("config.json") : null;
        if (json == null || !Files.isRegularFile(json)) return VaeConfig.detect(src);
        Map<String, Object> map;
        try {
            Object parsed = Json.parse(Files.readString(json, StandardCharsets.UTF_8));
            if (!(parsed instanceof Map<?, ?> m))
                throw new CheckpointException("VAE config " + json + " must hold a JSON object, got " + parsed);
            @SuppressWarnings("unchecked") Map<String, Object> typed = (Map<String, Object>) m;
            map = typed;
        } catch (IOException e) {
            throw new CheckpointException("cannot read VAE config " + json + ": " + e, e);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException("VAE config " + json + " is not valid JSON: " + e.getMessage(), e);
        }
        int groups = map.get("norm_num_groups") instanceof Number n ? n.intValue() : 32;
        return VaeConfig.detect(src, groups).withDiffusersConfig(map, json);
    }

    public VaeConfig config() { return weights.config(); }

    public VaeWeights weights() { return weights; }

    // ------------------------------------------------------------------------------------------------ latent scaling

    /** raw = z/scale + shift. z:[N, L, h, w]. */
    public Tensor unscaleLatent(Tensor z) {
        VaeConfig c = config();
        try (Scope s = Scope.open()) {
            Tensor r = ops.scale(z, 1f / c.scalingFactor());
            if (c.shiftFactor() != 0f) r = swap(r, ops.add(r, scalar(c.shiftFactor())));
            return s.keep(r);
        }
    }

    /** z = (raw − shift)·scale. raw:[N, L, h, w]. */
    public Tensor scaleLatent(Tensor raw) {
        VaeConfig c = config();
        try (Scope s = Scope.open()) {
            Tensor r = c.shiftFactor() == 0f ? raw : ops.sub(raw, scalar(c.shiftFactor()));
            return s.keep(ops.scale(r, c.scalingFactor()));
        }
    }

    private Tensor scalar(float v) { return ops.upload(Tensor.of(new float[] {v}, 1)); }

    // ------------------------------------------------------------------------------------------------ encode

    /** The encoder's moments (mean ‖ log-variance): x:[N, in, H, W] → [N, 2L, H/f, W/f], f = {@link VaeConfig#downFactor}. */
    public Tensor encodeMoments(Tensor x) {
        if (encoder == null)
            throw new IllegalStateException("this VAE has no encoder weights (a decoder-only checkpoint); image-to-latent "
                    + "(Kontext reference images) needs the full VAE, e.g. BFL's ae.safetensors");
        checkImage(x);
        return encoder.forward(ops, x);
    }

    /** The posterior mean in the raw latent space: x:[N, in, H, W] in [−1, 1] → [N, L, H/f, W/f]. */
    public Tensor encodeRaw(Tensor x) {
        try (Scope s = Scope.open()) {
            Tensor m = encodeMoments(x);
            return s.keep(ops.slice(m, 1, 0, config().latentChannels()));
        }
    }

    /** The posterior mean in the scaled (transformer) space: (mean − shift)·scale. x:[N, in, H, W] → [N, L, H/f, W/f]. */
    public Tensor encode(Tensor x) {
        try (Scope s = Scope.open()) {
            return s.keep(scaleLatent(encodeRaw(x)));
        }
    }

    // ------------------------------------------------------------------------------------------------ decode

    /** Raw latent z:[N, L, h, w] → image [N, out, h·f, w·f] (about [−1, 1], not clamped). */
    public Tensor decodeRaw(Tensor z) {
        if (decoder == null)
            throw new IllegalStateException("this VAE has no decoder weights (an encoder-only checkpoint)");
        checkLatent(z);
        return decoder.forward(ops, z);
    }

    /** Scaled latent z:[N, L, h, w] → image [N, out, h·f, w·f]: decodeRaw(z/scale + shift). */
    public Tensor decode(Tensor z) {
        try (Scope s = Scope.open()) {
            return s.keep(decodeRaw(unscaleLatent(z)));
        }
    }

    /** {@link #decodeRawTiled} of a scaled latent. */
    public Tensor decodeTiled(Tensor z, int tileLatent, int overlapLatent) {
        try (Scope s = Scope.open()) {
            return s.keep(decodeRawTiled(unscaleLatent(z), tileLatent, overlapLatent));
        }
    }

    /**
     * Decodes a raw latent in overlapping tiles, so that memory depends on the tile size rather than the image size;
     * the result equals diffusers' {@code AutoencoderKL.tiled_decode} with {@code tile_latent_min_size = tileLatent}
     * and {@code tile_overlap_factor = overlapLatent/tileLatent} (diffusers' Flux default: sample_size 1024 → tiles of
     * 128 latents overlapping by 32). When the latent fits in one tile this is {@link #decodeRaw} (as diffusers'
     * {@code decode} with tiling enabled).
     *
     * <p>The blend: tiles start every {@code stride = tileLatent − overlapLatent} latent rows/columns (the last ones
     * are cut at the border) and are decoded independently. With f = {@link VaeConfig#downFactor},
     * {@code e = overlapLatent·f} output pixels and {@code limit = tileLatent·f − e}, tiles are visited row by row;
     * each tile's first e rows are mixed with the last e rows of the (already blended) tile above, linearly:
     * {@code b[y] = a[H_a−e+y]·(1 − y/e) + b[y]·(y/e)}, y = 0..e−1 (e shrunk to the smaller tile when one is cut);
     * then its first e columns likewise with the (already blended) tile to its left. Each blended tile contributes its
     * top-left {@code limit × limit} pixels (less at the border) to the output. Tiled output is close to, but not
     * equal to, the untiled decode: each tile sees less context.
     */
    public Tensor decodeRawTiled(Tensor z, int tileLatent, int overlapLatent) {
        if (tileLatent < 1 || overlapLatent < 0 || overlapLatent >= tileLatent)
            throw new IllegalArgumentException("tiled decode needs tileLatent >= 1 and 0 <= overlapLatent < tileLatent, got tile "
                    + tileLatent + ", overlap " + overlapLatent);
        checkLatent(z);
        long h = z.dim(2), w = z.dim(3);
        if (h <= tileLatent && w <= tileLatent) return decodeRaw(z);
        int f = config().downFactor();
        int stride = tileLatent - overlapLatent, blend = overlapLatent * f, limit = tileLatent * f - blend;
        try (Scope s = Scope.open()) {
            List<Tensor> above = null, outRows = new ArrayList<>();
            for (long i = 0; i < h; i += stride) {
                List<Tensor> row = new ArrayList<>(), crops = new ArrayList<>();
                int col = 0;
                for (long j = 0; j < w; j += stride, col++) {
                    Tensor zt = ops.slice(z, 2, i, Math.min(i + tileLatent, h));
                    zt = swap(zt, ops.slice(zt, 3, j, Math.min(j + tileLatent, w)));
                    Tensor t = decodeRaw(zt);
                    zt.close();
                    if (above != null) t = swap(t, blend(above.get(col), t, blend, 2));
                    if (col > 0) t = swap(t, blend(row.get(col - 1), t, blend, 3));
                    row.add(t);
                    Tensor c = ops.slice(t, 2, 0, Math.min(limit, t.dim(2)));
                    crops.add(swap(c, ops.slice(c, 3, 0, Math.min(limit, c.dim(3)))));
                }
                outRows.add(ops.concat(3, crops.toArray(Tensor[]::new)));
                for (Tensor c : crops) c.close();
                if (above != null) for (Tensor t : above) t.close();
                above = row;
            }
            Tensor out = ops.concat(2, outRows.toArray(Tensor[]::new));
            return s.keep(out);
        }
    }

    /**
     * b with its first e = min(a, b, extent) entries along {@code dim} (2: rows, 3: columns) replaced by
     * a[last e]·(1 − y/e) + b[first e]·(y/e). a and b agree in every other dim.
     */
    private Tensor blend(Tensor a, Tensor b, int extent, int dim) {
        long e = Math.min(Math.min(a.dim(dim), b.dim(dim)), extent);
        if (e == 0) return ops.copy(b);
        float[] wa = new float[(int) e], wb = new float[(int) e];
        for (int y = 0; y < e; y++) {
            wa[y] = (float) (1.0 - (double) y / e);
            wb[y] = (float) ((double) y / e);
        }
        long[] ws = dim == 2 ? new long[] {e, 1} : new long[] {e};
        try (Scope s = Scope.open()) {
            Tensor mixed = ops.add(ops.mul(ops.slice(a, dim, a.dim(dim) - e, a.dim(dim)), ops.upload(Tensor.of(wa, ws))),
                    ops.mul(ops.slice(b, dim, 0, e), ops.upload(Tensor.of(wb, ws))));
            if (e == b.dim(dim)) return s.keep(mixed);
            return s.keep(ops.concat(dim, mixed, ops.slice(b, dim, e, b.dim(dim))));
        }
    }

    // ------------------------------------------------------------------------------------------------ checks

    private void checkImage(Tensor x) {
        if (x.rank() != 4 || x.dim(1) != config().inChannels())
            throw new IllegalArgumentException("VAE encode: image must have shape [N, " + config().inChannels()
                    + ", H, W], got " + x.shape());
    }

    private void checkLatent(Tensor z) {
        if (z.rank() != 4 || z.dim(1) != config().latentChannels())
            throw new IllegalArgumentException("VAE decode: latent must have shape [N, " + config().latentChannels()
                    + ", h, w], got " + z.shape());
    }

    /** Releases the weights. */
    @Override public void close() { weights.close(); }
}
