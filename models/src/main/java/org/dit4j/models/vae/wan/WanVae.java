package org.dit4j.models.vae.wan;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVaeBlocks.CausalCache;

/**
 * The Wan2.1 video VAE: diffusers {@code AutoencoderKLWan} / the original {@code WanVAE} on {@link Ops}
 * (models.md §2.8). Videos are [N, 3, T, H, W] in [−1, 1] ({@link WanVideoFrames} converts 8-bit RGB frames);
 * latents [N, z, F, H/8, W/8] with T = 1 + 4(F − 1): the first frame is encoded alone, each later latent frame
 * covers 4 video frames.
 *
 * <p>Two latent spaces:
 * <ul>
 *   <li><b>raw</b>: the encoder's posterior mean, what the decoder reads;</li>
 *   <li><b>normalised</b> (the transformer's): z = (raw − mean_c)·(1/std_c) per channel c, raw = z·std_c + mean_c, with
 *       Wan2.1's 16 {@code latents_mean/std} ({@link WanVaeConfig#WAN21_LATENTS_MEAN}), as the Wan pipelines compute it.</li>
 * </ul>
 *
 * <p><b>Chunks.</b> Both directions stream over time with bounded memory: the decoder runs on
 * {@code latentFramesPerChunk} latent frames at a time (default 1, as the reference does: 1 video frame from the
 * first latent frame, then 4 per latent frame), the encoder on frame 0 and then {@code framesPerChunk} frames at a
 * time (default 4, the reference's chunking). Every causal layer carries the last frames it needs from chunk to chunk
 * (at most 2 per convolution, the reference's {@code feat_cache}), so any chunking gives the result of one pass over
 * the whole clip — the decode equals the reference's chunked decode whatever the chunk size, and larger chunks only
 * trade memory for fewer, larger kernel calls.
 *
 * <p><b>No clamp.</b> diffusers' {@code decode} clamps its output to [−1, 1]; here the decoded video is returned as
 * computed, and the clamp happens where it is converted to 8-bit ({@link WanVideoFrames}), which gives the bytes
 * diffusers' post-processing gives (its own clamp to [0, 1] after x/2 + 1/2 subsumes the first).
 *
 * <p>Encoding returns the posterior mean (no sampling), as Wan's image-to-video pipelines use it. Load the model
 * outside any {@link Scope} (or in one that outlives it): the weights are owned by this object and released by
 * {@link #close()}.
 */
public final class WanVae implements AutoCloseable {
    private final Ops ops;
    private final WanVaeWeights weights;
    private final WanVaeEncoder encoder;
    private final WanVaeDecoder decoder;
    /** [1, z, 1, 1, 1] F32 on the device: latents_mean, 1/latents_std and latents_std. */
    private final Tensor mean, invStd, std;

    /** A model over weights already loaded onto {@code ops}' device; takes ownership of them. */
    public WanVae(Ops ops, WanVaeWeights weights) {
        this.ops = ops;
        this.weights = weights;
        WanVaeConfig c = weights.config();
        this.encoder = c.hasEncoder() ? new WanVaeEncoder(weights) : null;
        this.decoder = c.hasDecoder() ? new WanVaeDecoder(weights) : null;
        float[] m = c.latentsMean(), s = c.latentsStd(), inv = new float[s.length];
        for (int i = 0; i < s.length; i++) inv[i] = 1f / s[i];
        this.mean = channelVector(m);
        this.invStd = channelVector(inv);
        this.std = channelVector(s);
    }

    private Tensor channelVector(float[] v) {
        try (Scope s = Scope.open()) {
            return Scope.detach(ops.upload(Tensor.of(v, 1, v.length, 1, 1, 1)));
        }
    }

    /**
     * Loads a Wan VAE from a file ({@code wan_2.1_vae.safetensors}, a repackaged {@code Wan2.1_VAE.pth}, a file with a
     * {@code vae.}-style prefix), a diffusers {@code vae/} folder (weights + {@code config.json}) or a diffusers pipeline
     * folder (its {@code vae/}). The configuration comes from the tensor shapes plus {@code config.json} when there is
     * one ({@link #readConfig}); weights are cast to {@code dtype} (null: as stored).
     */
    public static WanVae load(Ops ops, Path path, DType dtype) {
        Path p = Files.isDirectory(path) && Files.isRegularFile(path.resolve("model_index.json")) ? path.resolve("vae") : path;
        try (WeightSource src = WeightSource.open(p)) {
            return load(ops, src, readConfig(src, p), dtype);
        }
    }

    /** Loads the tensors of {@code cfg} from {@code src}; {@code src} may be closed afterwards. */
    public static WanVae load(Ops ops, WeightSource src, WanVaeConfig cfg, DType dtype) {
        return new WanVae(ops, WanVaeWeights.load(ops, src, cfg, dtype));
    }

    /**
     * {@link WanVaeConfig#detect} on {@code src}, completed by the diffusers {@code config.json} in folder {@code path}
     * (or beside file {@code path}, when it describes an {@code AutoencoderKLWan}): latent statistics, and a check that
     * its architecture agrees with the weights.
     */
    public static WanVaeConfig readConfig(WeightSource src, Path path) {
        WanVaeConfig cfg = WanVaeConfig.detect(src);
        boolean folder = Files.isDirectory(path);
        Path dir = folder ? path : path.toAbsolutePath().getParent();
        Path json = dir == null ? null : dir.resolve("config.json");
        if (json == null || !Files.isRegularFile(json)) return cfg;
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
        if (!folder && !"AutoencoderKLWan".equals(map.get("_class_name"))) return cfg;   // someone else's config beside a file
        return cfg.withDiffusersConfig(map, json);
    }

    public WanVaeConfig config() { return weights.config(); }

    public WanVaeWeights weights() { return weights; }

    // ------------------------------------------------------------------------------------------------ latent normalisation

    /** z = (raw − mean)·(1/std) per channel. raw:[N, z, F, h, w]. */
    public Tensor normalize(Tensor raw) {
        checkLatent(raw, "normalize");
        try (Scope s = Scope.open()) {
            return s.keep(ops.mul(ops.sub(raw, mean), invStd));
        }
    }

    /** raw = z·std + mean per channel. z:[N, z, F, h, w]. */
    public Tensor denormalize(Tensor z) {
        checkLatent(z, "denormalize");
        try (Scope s = Scope.open()) {
            return s.keep(ops.add(ops.mul(z, std), mean));
        }
    }

    // ------------------------------------------------------------------------------------------------ encode

    /** {@link #encodeMoments(Tensor, int)} in the reference's chunks (frame 0, then 4 frames at a time). */
    public Tensor encodeMoments(Tensor video) { return encodeMoments(video, WanVaeConfig.ENCODE_CHUNK); }

    /**
     * The encoder's moments (mean ‖ log-variance): video [N, in, T, H, W], T = 1 + 4k, → [N, 2z, F, h, w] with
     * F = {@link WanVaeConfig#latentFrames}(T). Frame 0 is encoded first, then {@code framesPerChunk} frames at a time
     * (a multiple of 4); {@code framesPerChunk ≥ T − 1} encodes the whole clip in one pass. The result does not depend
     * on the chunking.
     */
    public Tensor encodeMoments(Tensor video, int framesPerChunk) {
        if (encoder == null)
            throw new IllegalStateException("this Wan VAE has no encoder weights (a decoder-only checkpoint); video-to-latent "
                    + "(image-to-video conditioning) needs the full VAE, e.g. wan_2.1_vae.safetensors");
        checkVideo(video);
        int t = video.shape().dimInt(2);
        if (framesPerChunk < WanVaeConfig.ENCODE_CHUNK || framesPerChunk % WanVaeConfig.ENCODE_CHUNK != 0)
            throw new IllegalArgumentException("Wan VAE encode: framesPerChunk must be a positive multiple of "
                    + WanVaeConfig.ENCODE_CHUNK + ", got " + framesPerChunk);
        try (Scope s = Scope.open(); CausalCache cache = encoder.newCache()) {
            List<Tensor> parts = new ArrayList<>();
            for (int start = 0; start < t; ) {
                int end = framesPerChunk >= t - 1 ? t : start == 0 ? 1 : Math.min(t, start + framesPerChunk);
                try (Scope c = Scope.open()) {
                    Tensor chunk = ops.slice(video, 2, start, end);
                    parts.add(c.keep(encoder.forward(ops, chunk, cache)));
                }
                start = end;
            }
            Tensor h = parts.size() == 1 ? parts.get(0) : ops.concat(2, parts.toArray(Tensor[]::new));
            return s.keep(encoder.moments(ops, h));
        }
    }

    /** The posterior mean in the raw latent space: video [N, in, T, H, W] in [−1, 1] → [N, z, F, h, w]. */
    public Tensor encodeRaw(Tensor video) {
        try (Scope s = Scope.open()) {
            return s.keep(ops.slice(encodeMoments(video), 1, 0, config().zDim()));
        }
    }

    /** The posterior mean, normalised (the transformer's latent space). */
    public Tensor encode(Tensor video) {
        try (Scope s = Scope.open()) {
            return s.keep(normalize(encodeRaw(video)));
        }
    }

    // ------------------------------------------------------------------------------------------------ decode

    /** Normalised latent z:[N, z, F, h, w] → video [N, out, 1 + 4(F−1), 8h, 8w], unclamped; one latent frame at a time. */
    public Tensor decode(Tensor z) { return decode(z, 1); }

    /** {@link #decodeRaw(Tensor, int)} of {@link #denormalize}(z). */
    public Tensor decode(Tensor z, int latentFramesPerChunk) {
        try (Scope s = Scope.open()) {
            return s.keep(decodeRaw(denormalize(z), latentFramesPerChunk));
        }
    }

    /**
     * {@link #decodeRaw(Tensor, int, Consumer)} collected into one video [N, out, T, H, W] (each chunk written into
     * place, so the peak is the video plus one chunk).
     */
    public Tensor decodeRaw(Tensor raw, int latentFramesPerChunk) {
        checkLatent(raw, "decode");
        WanVaeConfig c = config();
        long sf = c.spatialFactor();
        Tensor out = ops.empty(raw.dtype(), Shape.of(raw.dim(0), c.outChannels(),
                c.videoFrames(raw.shape().dimInt(2)), raw.dim(3) * sf, raw.dim(4) * sf));
        long[] at = {0};
        decodeRaw(raw, latentFramesPerChunk, chunk -> {
            ops.writeSlice(out, 2, at[0], chunk);
            at[0] += chunk.dim(2);
        });
        if (at[0] != out.dim(2))
            throw new IllegalStateException("internal: the decoder gave " + at[0] + " frames, expected " + out.dim(2));
        return out;
    }

    /**
     * Decodes raw latent [N, z, F, h, w] {@code latentFramesPerChunk} latent frames at a time, handing each chunk's
     * video frames [N, out, t, H, W] (unclamped) to {@code sink} in order: t = 1 + f(k − 1) for the first chunk of k
     * latent frames, f·k for later ones (f = temporalFactor, 4). The sink runs inside the chunk's scope: the chunk, and whatever the
     * sink computes with {@code ops}, is released when it returns, unless the sink takes a tensor over with
     * {@link Scope#detach} (and closes it later). Converting the chunk to 8-bit frames at once needs neither. Memory is bounded by one chunk plus two frames per
     * causal convolution, whatever F.
     */
    public void decodeRaw(Tensor raw, int latentFramesPerChunk, Consumer<Tensor> sink) {
        if (decoder == null)
            throw new IllegalStateException("this Wan VAE has no decoder weights (an encoder-only checkpoint)");
        checkLatent(raw, "decode");
        if (latentFramesPerChunk < 1)
            throw new IllegalArgumentException("Wan VAE decode: latentFramesPerChunk must be >= 1, got " + latentFramesPerChunk);
        long f = raw.dim(2);
        try (Scope s = Scope.open(); CausalCache cache = decoder.newCache()) {
            Tensor x = decoder.postQuant(ops, raw);
            for (long start = 0; start < f; start += latentFramesPerChunk) {
                try (Scope c = Scope.open()) {
                    Tensor chunk = ops.slice(x, 2, start, Math.min(f, start + latentFramesPerChunk));
                    sink.accept(decoder.forward(ops, chunk, cache));
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ checks

    private void checkVideo(Tensor x) {
        WanVaeConfig c = config();
        if (x.rank() != 5 || x.dim(1) != c.inChannels())
            throw new IllegalArgumentException("Wan VAE encode: video must have shape [N, " + c.inChannels() + ", T, H, W], got "
                    + x.shape());
        WanVaeConfig.checkVideoFrames(x.shape().dimInt(2));
    }

    private void checkLatent(Tensor z, String what) {
        if (z.rank() != 5 || z.dim(1) != config().zDim() || z.dim(2) < 1)
            throw new IllegalArgumentException("Wan VAE " + what + ": latent must have shape [N, " + config().zDim()
                    + ", F, h, w] with F >= 1, got " + z.shape());
    }

    /** Releases the weights and the latent statistics. */
    @Override public void close() {
        weights.close();
        mean.close();
        invStd.close();
        std.close();
    }
}
