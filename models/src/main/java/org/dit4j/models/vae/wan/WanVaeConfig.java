package org.dit4j.models.vae.wan;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;

/**
 * Hyper-parameters of a Wan2.1 video VAE (diffusers {@code AutoencoderKLWan}, the original {@code WanVAE_};
 * models.md §2.8).
 *
 * @param inChannels          video channels the encoder reads (3)
 * @param outChannels         video channels the decoder writes (3)
 * @param baseDim             channels of the encoder's first convolution (Wan2.1: 96; diffusers {@code base_dim})
 * @param channels            channels of each resolution level, finest first: baseDim·dim_mult (Wan2.1: [96, 192, 384, 384])
 * @param numResBlocks        residual blocks per encoder level; decoder levels have one more (2)
 * @param temporalDownsample  for each of the levels−1 downsamples of the encoder, whether it also halves time
 *                            (Wan2.1: [false, true, true]); the decoder's upsamples mirror it (temporal upsample
 *                            [true, true, false] in the order they run)
 * @param zDim                latent channels (16); the encoder emits 2·zDim moments (mean ‖ log-variance)
 * @param latentsMean         per-channel latent mean (zDim values); not visible in tensor shapes
 * @param latentsStd          per-channel latent standard deviation (zDim values); not visible in tensor shapes
 * @param hasEncoder          whether the weights include the encoder
 * @param hasDecoder          whether the weights include the decoder
 */
public record WanVaeConfig(int inChannels, int outChannels, int baseDim, int[] channels, int numResBlocks,
                           boolean[] temporalDownsample, int zDim, float[] latentsMean, float[] latentsStd,
                           boolean hasEncoder, boolean hasDecoder) {

    /** Wan2.1's latent channel means (models.md §2.8; diffusers' default {@code latents_mean}). */
    public static final float[] WAN21_LATENTS_MEAN = {-0.7571f, -0.7089f, -0.9113f, 0.1075f, -0.1745f, 0.9653f, -0.1517f,
        1.5508f, 0.4134f, -0.0715f, 0.5517f, -0.3632f, -0.1922f, -0.9497f, 0.2503f, -0.2921f};

    /** Wan2.1's latent channel standard deviations (diffusers' default {@code latents_std}). */
    public static final float[] WAN21_LATENTS_STD = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f,
        2.0743f, 3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

    /**
     * Frames per encoder chunk after the first frame. The reference encodes frame 0 alone, then chunks of 4 frames
     * (whatever the temporal factor), and drops frames beyond the last whole chunk.
     */
    public static final int ENCODE_CHUNK = 4;

    public WanVaeConfig {
        if (channels == null || channels.length == 0)
            throw new IllegalArgumentException("a Wan VAE needs at least one resolution level (channels), got none");
        channels = channels.clone();
        temporalDownsample = temporalDownsample == null ? null : temporalDownsample.clone();
        latentsMean = latentsMean == null ? null : latentsMean.clone();
        latentsStd = latentsStd == null ? null : latentsStd.clone();
        if (inChannels < 1 || outChannels < 1 || baseDim < 1 || zDim < 1 || numResBlocks < 1)
            throw new IllegalArgumentException("Wan VAE channel and block counts must be positive: in " + inChannels + ", out "
                    + outChannels + ", base " + baseDim + ", z " + zDim + ", residual blocks " + numResBlocks);
        for (int i = 0; i < channels.length; i++) {
            if (channels[i] < 1 || (i > 0 && channels[i] % 2 != 0))
                throw new IllegalArgumentException("Wan VAE level channels must be positive, and even above level 0 (the "
                        + "decoder's upsamples halve them), got " + Arrays.toString(channels));
        }
        if (temporalDownsample == null || temporalDownsample.length != channels.length - 1)
            throw new IllegalArgumentException("Wan VAE needs one temporal-downsample flag per downsample (" + (channels.length - 1)
                    + " for " + channels.length + " levels), got " + Arrays.toString(temporalDownsample));
        int temporal = 0;
        for (boolean t : temporalDownsample) if (t) temporal++;
        if (temporal > 2)
            throw new IllegalArgumentException("Wan VAE with " + temporal + " temporal downsamples: the reference encodes "
                    + ENCODE_CHUNK + "-frame chunks, which allow at most 2");
        if (latentsMean == null || latentsStd == null || latentsMean.length != zDim || latentsStd.length != zDim)
            throw new IllegalArgumentException("Wan VAE latent statistics need " + zDim + " means and " + zDim
                    + " standard deviations, got " + (latentsMean == null ? "none" : latentsMean.length) + " and "
                    + (latentsStd == null ? "none" : latentsStd.length));
        for (float s : latentsStd)
            if (!(s > 0) || !Float.isFinite(s))
                throw new IllegalArgumentException("Wan VAE latent standard deviations must be positive, got "
                        + Arrays.toString(latentsStd));
        if (!hasEncoder && !hasDecoder) throw new IllegalArgumentException("a Wan VAE needs an encoder or a decoder");
    }

    /** The Wan2.1 VAE ({@code Wan2.1_VAE.pth}, {@code wan_2.1_vae.safetensors}, diffusers' Wan2.1 {@code vae/}). */
    public static WanVaeConfig wan21() {
        return new WanVaeConfig(3, 3, 96, new int[] {96, 192, 384, 384}, 2, new boolean[] {false, true, true}, 16,
                WAN21_LATENTS_MEAN, WAN21_LATENTS_STD, true, true);
    }

    @Override public int[] channels() { return channels.clone(); }

    @Override public boolean[] temporalDownsample() { return temporalDownsample.clone(); }

    @Override public float[] latentsMean() { return latentsMean.clone(); }

    @Override public float[] latentsStd() { return latentsStd.clone(); }

    /** Channels of level i (0 = finest). */
    public int channels(int level) { return channels[level]; }

    /** Number of resolution levels. */
    public int levels() { return channels.length; }

    /** Whether downsample i (after encoder level i) halves time; the decoder's upsample after its level L−2−i mirrors it. */
    public boolean temporalDownsample(int i) { return temporalDownsample[i]; }

    /** Video pixels per latent pixel along H and W: 2^(levels−1) (Wan2.1: 8). */
    public int spatialFactor() { return 1 << (levels() - 1); }

    /** Video frames per latent frame after the first: 2^(temporal downsamples) (Wan2.1: 4). */
    public int temporalFactor() {
        int f = 1;
        for (boolean t : temporalDownsample) if (t) f *= 2;
        return f;
    }

    /** Latent frames of a T-frame video, T = 1 + 4k: 1 + (T−1)/temporalFactor (Wan2.1: 81 → 21). */
    public int latentFrames(int videoFrames) {
        checkVideoFrames(videoFrames);
        return 1 + (videoFrames - 1) / temporalFactor();
    }

    /** Video frames decoded from F latent frames: 1 + (F−1)·temporalFactor (Wan2.1: 21 → 81). */
    public int videoFrames(int latentFrames) {
        if (latentFrames < 1) throw new IllegalArgumentException("a Wan latent needs at least 1 frame, got " + latentFrames);
        return 1 + (latentFrames - 1) * temporalFactor();
    }

    /** Throws unless T = 1 + 4k (what the reference's chunked encoder consumes without dropping frames). */
    public static void checkVideoFrames(int t) {
        if (t < 1 || (t - 1) % ENCODE_CHUNK != 0)
            throw new IllegalArgumentException("the Wan VAE encodes 1 + " + ENCODE_CHUNK + "k frames (1, 5, 9, …, 81), got " + t
                    + "; the reference would silently drop the last " + Math.floorMod(t - 1, ENCODE_CHUNK) + " frame(s): trim "
                    + "or pad the video");
    }

    public WanVaeConfig withLatentStats(float[] mean, float[] std) {
        return new WanVaeConfig(inChannels, outChannels, baseDim, channels, numResBlocks, temporalDownsample, zDim, mean, std,
                hasEncoder, hasDecoder);
    }

    /** Default latent statistics for {@code zDim} channels: Wan2.1's for 16, else mean 0 and std 1 (no normalisation). */
    static float[][] defaultLatentStats(int zDim) {
        if (zDim == 16) return new float[][] {WAN21_LATENTS_MEAN.clone(), WAN21_LATENTS_STD.clone()};
        float[] one = new float[zDim];
        Arrays.fill(one, 1f);
        return new float[][] {new float[zDim], one};
    }

    /**
     * Reads the architecture from tensor shapes (original/ComfyUI or diffusers names, any prefix). Latent statistics
     * are not in the shapes: Wan2.1's for a 16-channel latent, else mean 0 / std 1; a diffusers {@code config.json}
     * ({@link #withDiffusersConfig}) or {@link #withLatentStats} sets them.
     */
    public static WanVaeConfig detect(WeightSource w) { return WanVaeWeights.Reader.of(w).detect(); }

    /**
     * This configuration with the values of a diffusers {@code vae/config.json} (already parsed) that shapes cannot
     * show: {@code latents_mean}, {@code latents_std}. The architecture it states must agree with this one (which comes
     * from the weights); Wan2.2's VAE ({@code is_residual}, {@code patch_size}, {@code decoder_base_dim}) and attention
     * inside levels ({@code attn_scales}) are refused. {@code file} is named in errors.
     */
    public WanVaeConfig withDiffusersConfig(Map<String, Object> json, Path file) {
        String cls = String.valueOf(json.getOrDefault("_class_name", "AutoencoderKLWan"));
        if (!cls.equals("AutoencoderKLWan"))
            throw new CheckpointException("VAE config " + file + " describes a " + cls + "; dit4j's Wan VAE reads diffusers "
                    + "AutoencoderKLWan configs");
        if (Boolean.TRUE.equals(json.get("is_residual")) || json.get("patch_size") != null)
            throw new CheckpointException("VAE config " + file + " describes Wan2.2's VAE (is_residual / patch_size); dit4j's Wan "
                    + "VAE implements Wan2.1's");
        if (json.get("decoder_base_dim") != null && !json.get("decoder_base_dim").equals(json.get("base_dim")))
            throw new CheckpointException("VAE config " + file + ": decoder_base_dim " + json.get("decoder_base_dim")
                    + " differs from base_dim " + json.get("base_dim") + " (Wan2.2's VAE); dit4j's Wan VAE implements Wan2.1's");
        if (json.get("attn_scales") instanceof List<?> l && !l.isEmpty())
            throw new CheckpointException("VAE config " + file + ": attn_scales " + l + " puts attention blocks inside the "
                    + "levels, which Wan2.1 does not have and dit4j does not implement");
        if (hasEncoder) checkAgrees(json, "base_dim", baseDim, file);
        if (json.get("dim_mult") instanceof List<?> mult && json.get("base_dim") instanceof Number base) {
            int[] fromJson = new int[mult.size()];
            for (int i = 0; i < fromJson.length; i++) {
                if (!(mult.get(i) instanceof Number m))
                    throw new CheckpointException("VAE config " + file + ": dim_mult must hold numbers, got " + mult);
                fromJson[i] = base.intValue() * m.intValue();
            }
            if (!Arrays.equals(fromJson, channels))
                throw new CheckpointException("VAE config " + file + " says base_dim·dim_mult = " + Arrays.toString(fromJson)
                        + " but the weights next to it have level channels " + Arrays.toString(channels)
                        + "; the config and the weights belong to different models");
        }
        checkAgrees(json, "num_res_blocks", numResBlocks, file);
        checkAgrees(json, "z_dim", zDim, file);
        if (hasEncoder) checkAgrees(json, "in_channels", inChannels, file);
        if (hasDecoder) checkAgrees(json, "out_channels", outChannels, file);
        if (json.containsKey("temperal_downsample")) {
            Object v = json.get("temperal_downsample");
            boolean same = v instanceof List<?> l && l.size() >= temporalDownsample.length;
            for (int i = 0; same && i < temporalDownsample.length; i++)
                same = Boolean.valueOf(temporalDownsample[i]).equals(((List<?>) v).get(i));
            if (!same)
                throw new CheckpointException("VAE config " + file + " says temperal_downsample = " + v + " but the weights next to "
                        + "it have " + Arrays.toString(temporalDownsample) + "; the config and the weights belong to different models");
        }
        float[][] stats = defaultLatentStats(zDim);
        float[] mean = json.containsKey("latents_mean") ? floats(json, "latents_mean", file) : stats[0];
        float[] std = json.containsKey("latents_std") ? floats(json, "latents_std", file) : stats[1];
        if (mean.length != zDim || std.length != zDim)
            throw new CheckpointException("VAE config " + file + ": latents_mean and latents_std need " + zDim + " values each, got "
                    + mean.length + " and " + std.length);
        int base = !hasEncoder && json.get("base_dim") instanceof Number b ? b.intValue() : baseDim;
        return new WanVaeConfig(inChannels, outChannels, base, channels, numResBlocks, temporalDownsample, zDim, mean, std,
                hasEncoder, hasDecoder);
    }

    private static float[] floats(Map<String, Object> json, String key, Path file) {
        if (!(json.get(key) instanceof List<?> l))
            throw new CheckpointException("VAE config " + file + ": '" + key + "' must be a list of numbers, got " + json.get(key));
        float[] out = new float[l.size()];
        for (int i = 0; i < out.length; i++) {
            if (!(l.get(i) instanceof Number n))
                throw new CheckpointException("VAE config " + file + ": '" + key + "' must be a list of numbers, got " + l);
            out[i] = n.floatValue();
        }
        return out;
    }

    private static void checkAgrees(Map<String, Object> json, String key, int fromWeights, Path file) {
        if (!json.containsKey(key)) return;
        if (!(json.get(key) instanceof Number n) || n.longValue() != fromWeights)
            throw new CheckpointException("VAE config " + file + " says " + key + " = " + json.get(key) + " but the weights next to it "
                    + "have " + fromWeights + "; the config and the weights belong to different models");
    }

    @Override public boolean equals(Object o) {
        return o instanceof WanVaeConfig c && inChannels == c.inChannels && outChannels == c.outChannels
                && baseDim == c.baseDim && Arrays.equals(channels, c.channels) && numResBlocks == c.numResBlocks
                && Arrays.equals(temporalDownsample, c.temporalDownsample) && zDim == c.zDim
                && Arrays.equals(latentsMean, c.latentsMean) && Arrays.equals(latentsStd, c.latentsStd)
                && hasEncoder == c.hasEncoder && hasDecoder == c.hasDecoder;
    }

    @Override public int hashCode() {
        return Arrays.hashCode(new int[] {inChannels, outChannels, baseDim, Arrays.hashCode(channels), numResBlocks,
                Arrays.hashCode(temporalDownsample), zDim, Arrays.hashCode(latentsMean), Arrays.hashCode(latentsStd),
                (hasEncoder ? 1 : 0) | (hasDecoder ? 2 : 0)});
    }

    @Override public String toString() {
        return "WanVaeConfig[channels=" + Arrays.toString(channels) + ", base=" + baseDim + ", resBlocks=" + numResBlocks
                + ", temporalDownsample=" + Arrays.toString(temporalDownsample) + ", z=" + zDim + ", in=" + inChannels
                + ", out=" + outChannels + (zDim == 16 && Arrays.equals(latentsMean, WAN21_LATENTS_MEAN)
                && Arrays.equals(latentsStd, WAN21_LATENTS_STD) ? ", Wan2.1 latent stats" : ", latent mean "
                + Arrays.toString(latentsMean) + " std " + Arrays.toString(latentsStd))
                + (hasEncoder ? "" : ", no encoder") + (hasDecoder ? "" : ", no decoder") + "]";
    }
}
