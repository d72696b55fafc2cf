package org.dit4j.models.vae;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;

/**
 * Hyper-parameters of a KL autoencoder (diffusers {@code AutoencoderKL}; models.md §1.10 for Flux).
 *
 * @param inChannels        image channels the encoder reads (3)
 * @param outChannels       image channels the decoder writes (3)
 * @param blockOutChannels  channels of each resolution level, finest first (Flux: [128, 256, 512, 512])
 * @param layersPerBlock    ResnetBlocks per encoder level; decoder levels have one more (Flux: 2)
 * @param latentChannels    latent channels L (Flux: 16); the encoder emits 2·L moments (mean ‖ log-variance)
 * @param normGroups        GroupNorm groups of every norm (32); not visible in tensor shapes
 * @param scalingFactor     latent scale s (Flux: 0.3611); not visible in tensor shapes
 * @param shiftFactor       latent shift t (Flux: 0.1159; 0 for none); not visible in tensor shapes
 * @param useQuantConv      a 1×1 conv on the encoder's moments (SD VAEs: true; Flux: false)
 * @param usePostQuantConv  a 1×1 conv on the decoder's input latent (SD VAEs: true; Flux: false)
 * @param midAttention      a self-attention block in each mid block (Flux: true)
 * @param hasEncoder        whether the weights include the encoder
 * @param hasDecoder        whether the weights include the decoder
 */
public record VaeConfig(int inChannels, int outChannels, int[] blockOutChannels, int layersPerBlock, int latentChannels,
                        int normGroups, float scalingFactor, float shiftFactor, boolean useQuantConv,
                        boolean usePostQuantConv, boolean midAttention, boolean hasEncoder, boolean hasDecoder) {

    /** Epsilon of every GroupNorm in the VAE. */
    public static final float EPS = 1e-6f;

    /** Flux's latent scale and shift (diffusers {@code vae/config.json} of FLUX.1-dev/schnell/Kontext). */
    public static final float FLUX_SCALING = 0.3611f, FLUX_SHIFT = 0.1159f;

    /** The scale of Stable Diffusion 1.x/2.x 4-channel VAEs (no shift). */
    public static final float SD_SCALING = 0.18215f;

    public VaeConfig {
        if (blockOutChannels == null || blockOutChannels.length == 0)
            throw new IllegalArgumentException("a VAE needs at least one resolution level (blockOutChannels), got none");
        blockOutChannels = blockOutChannels.clone();
        if (inChannels < 1 || outChannels < 1 || latentChannels < 1 || layersPerBlock < 1)
            throw new IllegalArgumentException("VAE channel and layer counts must be positive: in " + inChannels + ", out "
                    + outChannels + ", latent " + latentChannels + ", layers per block " + layersPerBlock);
        for (int c : blockOutChannels) {
            if (c < 1 || normGroups < 1 || c % normGroups != 0)
                throw new IllegalArgumentException("VAE GroupNorm: " + normGroups + " groups must divide every level's channel count "
                        + Arrays.toString(blockOutChannels) + "; the group count is not stored in the weights: pass it "
                        + "(diffusers config.json 'norm_num_groups', 32 for Flux and SD)");
        }
        if (!(scalingFactor > 0) || !Float.isFinite(shiftFactor))
            throw new IllegalArgumentException("VAE latent scaling factor must be positive and the shift finite, got "
                    + scalingFactor + " / " + shiftFactor);
        if (!hasEncoder && !hasDecoder) throw new IllegalArgumentException("a VAE needs an encoder or a decoder");
    }

    /** The Flux.1 VAE (models.md §1.10). */
    public static VaeConfig flux() {
        return new VaeConfig(3, 3, new int[] {128, 256, 512, 512}, 2, 16, 32, FLUX_SCALING, FLUX_SHIFT, false, false, true,
                true, true);
    }

    @Override public int[] blockOutChannels() { return blockOutChannels.clone(); }

    /** Channels of level i (0 = finest). */
    public int channels(int level) { return blockOutChannels[level]; }

    /** Number of resolution levels. */
    public int levels() { return blockOutChannels.length; }

    /** Image pixels per latent pixel along each axis: 2^(levels−1) (Flux: 8). */
    public int downFactor() { return 1 << (levels() - 1); }

    public VaeConfig withNormGroups(int groups) {
        return new VaeConfig(inChannels, outChannels, blockOutChannels, layersPerBlock, latentChannels, groups,
                scalingFactor, shiftFactor, useQuantConv, usePostQuantConv, midAttention, hasEncoder, hasDecoder);
    }

    public VaeConfig withScaling(float scaling, float shift) {
        return new VaeConfig(inChannels, outChannels, blockOutChannels, layersPerBlock, latentChannels, normGroups,
                scaling, shift, useQuantConv, usePostQuantConv, midAttention, hasEncoder, hasDecoder);
    }

    /**
     * Reads the architecture from tensor shapes (either naming, any prefix). What shapes cannot tell takes defaults:
     * 32 norm groups; scale/shift by latent channels: 16 → Flux's (0.3611, 0.1159), 4 → SD's (0.18215, 0),
     * otherwise (1, 0). Override them with {@link #detect(WeightSource, int)}, {@link #withScaling} or
     * {@link #withDiffusersConfig}. (SD3's VAE has Flux's shapes but scale 1.5305 / shift 0.0609.)
     */
    public static VaeConfig detect(WeightSource w) { return detect(w, 32); }

    /** {@link #detect(WeightSource)} with {@code normGroups} GroupNorm groups (diffusers 'norm_num_groups'). */
    public static VaeConfig detect(WeightSource w, int normGroups) {
        VaeWeights.ShapeReader r = VaeWeights.ShapeReader.of(w);
        boolean enc = r.has("encoder.conv_in.weight"), dec = r.has("decoder.conv_in.weight");
        int levels = r.levels();
        int[] channels = new int[levels];
        int layers;
        int latent, in, out;
        if (enc) {
            for (int i = 0; i < levels; i++) channels[i] = r.dim("encoder.down." + i + ".block.0.conv1.weight", 4, 0);
            layers = r.count("encoder.down.0.block.", ".conv1.weight");
            in = r.dim("encoder.conv_in.weight", 4, 1);
            latent = r.dim("encoder.conv_out.weight", 4, 0) / 2;
        } else {
            for (int i = 0; i < levels; i++) channels[i] = r.dim("decoder.up." + i + ".block.0.conv1.weight", 4, 0);
            layers = r.count("decoder.up.0.block.", ".conv1.weight") - 1;
            in = -1;
            latent = -1;
        }
        if (dec) {
            latent = r.dim("decoder.conv_in.weight", 4, 1);
            out = r.dim("decoder.conv_out.weight", 4, 0);
        } else {
            out = in;
        }
        if (in < 0) in = out;
        String part = enc ? "encoder" : "decoder";
        boolean attn = r.has(part + ".mid.attn_1.q.weight");
        float scaling = latent == 16 ? FLUX_SCALING : latent == 4 ? SD_SCALING : 1f;
        float shift = latent == 16 ? FLUX_SHIFT : 0f;
        return new VaeConfig(in, out, channels, Math.max(layers, 1), latent, normGroups, scaling, shift,
                r.has("quant_conv.weight"), r.has("post_quant_conv.weight"), attn, enc, dec);
    }

    /**
     * This configuration with the values of a diffusers {@code vae/config.json} (already parsed) that shapes cannot
     * show: {@code norm_num_groups}, {@code scaling_factor}, {@code shift_factor}. The architecture it states must
     * agree with this one (which comes from the weights); {@code file} is named in errors.
     */
    public VaeConfig withDiffusersConfig(Map<String, Object> json, Path file) {
        String cls = String.valueOf(json.getOrDefault("_class_name", "AutoencoderKL"));
        if (!cls.equals("AutoencoderKL"))
            throw new CheckpointException("VAE config " + file + " describes a " + cls + "; dit4j's AutoencoderKL reads "
                    + "diffusers AutoencoderKL configs (Flux, SD) only");
        String act = String.valueOf(json.getOrDefault("act_fn", "silu"));
        if (!act.equals("silu"))
            throw new CheckpointException("VAE config " + file + ": act_fn '" + act + "' is not supported (only 'silu')");
        for (String k : new String[] {"latents_mean", "latents_std"})
            if (json.get(k) != null)
                throw new CheckpointException("VAE config " + file + " sets '" + k + "' (per-channel latent normalisation), "
                        + "which dit4j's AutoencoderKL does not apply; this is not a Flux/SD VAE");
        checkAgrees(json, "block_out_channels", blockOutChannels, file);
        checkAgrees(json, "layers_per_block", layersPerBlock, file);
        checkAgrees(json, "latent_channels", latentChannels, file);
        checkAgrees(json, "use_quant_conv", useQuantConv, file);
        checkAgrees(json, "use_post_quant_conv", usePostQuantConv, file);
        checkAgrees(json, "mid_block_add_attention", midAttention, file);
        int groups = json.containsKey("norm_num_groups") ? number(json, "norm_num_groups", file).intValue() : 32;
        float scaling = json.containsKey("scaling_factor") ? number(json, "scaling_factor", file).floatValue() : 0.18215f;
        Object s = json.get("shift_factor");
        float shift = s == null ? 0f : number(json, "shift_factor", file).floatValue();
        return withNormGroups(groups).withScaling(scaling, shift);
    }

    private static Number number(Map<String, Object> json, String key, Path file) {
        if (json.get(key) instanceof Number n) return n;
        throw new CheckpointException("VAE config " + file + ": '" + key + "' must be a number, got " + json.get(key));
    }

    private static void checkAgrees(Map<String, Object> json, String key, Object fromWeights, Path file) {
        if (!json.containsKey(key)) return;
        Object v = json.get(key);
        boolean same;
        if (fromWeights instanceof int[] a) {
            same = v instanceof List<?> l && l.size() == a.length;
            for (int i = 0; same && i < a.length; i++) same = ((List<?>) v).get(i) instanceof Number n && n.longValue() == a[i];
            fromWeights = Arrays.toString(a);
        } else if (fromWeights instanceof Integer i) {
            same = v instanceof Number n && n.longValue() == i;
        } else {
            same = fromWeights.equals(v);
        }
        if (!same)
            throw new CheckpointException("VAE config " + file + " says " + key + " = " + v + " but the weights next to it have "
                    + fromWeights + "; the config and the weights belong to different models");
    }

    @Override public boolean equals(Object o) {
        return o instanceof VaeConfig c && inChannels == c.inChannels && outChannels == c.outChannels
                && Arrays.equals(blockOutChannels, c.blockOutChannels) && layersPerBlock == c.layersPerBlock
                && latentChannels == c.latentChannels && normGroups == c.normGroups
                && Float.compare(scalingFactor, c.scalingFactor) == 0 && Float.compare(shiftFactor, c.shiftFactor) == 0
                && useQuantConv == c.useQuantConv && usePostQuantConv == c.usePostQuantConv
                && midAttention == c.midAttention && hasEncoder == c.hasEncoder && hasDecoder == c.hasDecoder;
    }

    @Override public int hashCode() {
        return Arrays.hashCode(new int[] {inChannels, outChannels, Arrays.hashCode(blockOutChannels), layersPerBlock,
                latentChannels, normGroups, Float.hashCode(scalingFactor), Float.hashCode(shiftFactor),
                (useQuantConv ? 1 : 0) | (usePostQuantConv ? 2 : 0) | (midAttention ? 4 : 0) | (hasEncoder ? 8 : 0)
                        | (hasDecoder ? 16 : 0)});
    }

    @Override public String toString() {
        return "VaeConfig[channels=" + Arrays.toString(blockOutChannels) + ", layers=" + layersPerBlock + ", latent="
                + latentChannels + ", in=" + inChannels + ", out=" + outChannels + ", groups=" + normGroups + ", scale="
                + scalingFactor + ", shift=" + shiftFactor + (useQuantConv ? ", quant_conv" : "")
                + (usePostQuantConv ? ", post_quant_conv" : "") + (midAttention ? ", mid attention" : ", no mid attention")
                + (hasEncoder ? "" : ", no encoder") + (hasDecoder ? "" : ", no decoder") + "]";
    }
}
