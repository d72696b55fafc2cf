package org.dit4j.models.wan;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.core.io.WeightSource;

/**
 * Hyper-parameters of a Wan2.1 text-to-video transformer (models.md §2.1).
 *
 * @param dim            hidden size D (1536 for 1.3B, 5120 for 14B)
 * @param numHeads       attention heads H; head dim d = D/H (128 in both released models)
 * @param numLayers      transformer blocks (30, 40)
 * @param ffnDim         FFN hidden width (8960, 13824)
 * @param inChannels     latent channels in (16)
 * @param outChannels    latent channels out (16)
 * @param textDim        text-encoder width, umT5-XXL (4096)
 * @param freqDim        width of the sinusoidal time embedding (256)
 * @param patch          patch size (t, h, w) of the patch embedding ([1, 2, 2])
 * @param crossAttnNorm  whether the cross-attention input has its affine LayerNorm (original {@code norm3}; true)
 */
public record WanConfig(int dim, int numHeads, int numLayers, int ffnDim, int inChannels, int outChannels, int textDim,
                        int freqDim, int[] patch, boolean crossAttnNorm) {

    /** Epsilon of every LayerNorm and RMSNorm in Wan. */
    public static final float EPS = 1e-6f;

    /** RoPE base. */
    public static final double ROPE_THETA = 10000;

    /** Head dim of every released Wan2.1 model, used when a checkpoint does not say how many heads it has. */
    public static final int DEFAULT_HEAD_DIM = 128;

    /** Context length the reference pads the umT5 output to (models.md §2.2). */
    public static final int TEXT_LEN = 512;

    public WanConfig {
        if (numHeads <= 0 || dim % numHeads != 0)
            throw new IllegalArgumentException("Wan hidden size " + dim + " is not a multiple of the head count " + numHeads);
        if (patch.length != 3 || patch[0] < 1 || patch[1] < 1 || patch[2] < 1)
            throw new IllegalArgumentException("Wan patch size must be 3 positive values (t, h, w), got " + Arrays.toString(patch));
        int hd = dim / numHeads;
        if (hd % 2 != 0 || 2 * (hd / 6) < 2)
            throw new IllegalArgumentException("Wan head dim " + hd + " cannot be split into three even RoPE axes");
        patch = patch.clone();
    }

    /** Wan2.1-T2V-1.3B. */
    public static WanConfig t2v1_3B() { return new WanConfig(1536, 12, 30, 8960, 16, 16, 4096, 256, new int[] {1, 2, 2}, true); }

    /** Wan2.1-T2V-14B. */
    public static WanConfig t2v14B() { return new WanConfig(5120, 40, 40, 13824, 16, 16, 4096, 256, new int[] {1, 2, 2}, true); }

    public int headDim() { return dim / numHeads; }

    @Override public int[] patch() { return patch.clone(); }

    /** Values per token of the patch embedding's input: inChannels·pt·ph·pw. */
    public int patchFeaturesIn() { return inChannels * patch[0] * patch[1] * patch[2]; }

    /** Values per token of the head's output: pt·ph·pw·outChannels. */
    public int patchFeaturesOut() { return outChannels * patch[0] * patch[1] * patch[2]; }

    /**
     * RoPE widths of the (frame, height, width) axes within a head: h = w = 2·⌊d/6⌋, t = d − h − w (d = 128 gives
     * 44/42/42, i.e. 22/21/21 rotated pairs), as diffusers' {@code WanRotaryPosEmbed} and the original
     * {@code rope_params} split it.
     */
    public int[] ropeAxes() {
        int hd = headDim(), hw = 2 * (hd / 6);
        return new int[] {hd - 2 * hw, hw, hw};
    }

    /**
     * Reads the configuration from tensor shapes (original/ComfyUI or diffusers names, prefix detected). The head count
     * is not in the shapes (the q/k norms span all heads): it comes from a diffusers {@code config.json} next to the
     * weights when there is one, else from the head dim of the released models ({@value #DEFAULT_HEAD_DIM}).
     */
    public static WanConfig detect(WeightSource w) {
        String prefix = WanWeights.detectPrefix(w);
        Integer heads = headsFromConfigJson(w.path());
        if (heads == null) {
            int dim = Math.toIntExact(new WanWeights.ShapeReader(w, prefix).shape("patch_embedding.weight", 5)[0]);
            if (dim % DEFAULT_HEAD_DIM != 0)
                throw new CheckpointException("Wan checkpoint " + w.path() + ": hidden size " + dim + " is not a multiple of "
                        + "the usual head dim " + DEFAULT_HEAD_DIM + " and there is no config.json saying how many heads it "
                        + "has; pass the head count to WanConfig.detect(source, heads)");
            heads = dim / DEFAULT_HEAD_DIM;
        }
        return detect(w, prefix, heads);
    }

    /** Reads the configuration from tensor shapes with a known head count (prefix detected). */
    public static WanConfig detect(WeightSource w, int numHeads) { return detect(w, WanWeights.detectPrefix(w), numHeads); }

    /** Reads the configuration from tensor shapes under {@code prefix} ("" or e.g. "model.diffusion_model."). */
    public static WanConfig detect(WeightSource w, String prefix, int numHeads) {
        WanWeights.ShapeReader r = new WanWeights.ShapeReader(w, prefix);
        r.refuseUnsupported();
        long[] pe = r.shape("patch_embedding.weight", 5);          // [D, C, pt, ph, pw]
        long[] text0 = r.shape("text_embedding.0.weight", 2);      // [D, textDim]
        long[] time0 = r.shape("time_embedding.0.weight", 2);      // [D, freqDim]
        long[] ffn0 = r.shape("blocks.0.ffn.0.weight", 2);         // [ffn, D]
        long[] head = r.shape("head.head.weight", 2);              // [pt·ph·pw·out, D]
        int dim = Math.toIntExact(pe[0]);
        int[] patch = {Math.toIntExact(pe[2]), Math.toIntExact(pe[3]), Math.toIntExact(pe[4])};
        int patchVol = patch[0] * patch[1] * patch[2];
        if (head[0] % patchVol != 0)
            throw new CheckpointException("Wan checkpoint: " + r.where("head.head.weight") + " has " + head[0] + " rows, "
                    + "not a multiple of the patch volume " + patchVol + " (patch " + Arrays.toString(patch) + ")");
        if (dim % numHeads != 0)
            throw new CheckpointException("Wan checkpoint " + w.path() + ": hidden size " + dim + " is not divisible by "
                    + numHeads + " heads");
        int layers = r.countBlocks();
        if (layers == 0)
            throw new CheckpointException("Wan checkpoint " + w.path() + " has no transformer blocks ("
                    + r.sources("blocks.0.self_attn.q.weight") + " is missing)");
        return new WanConfig(dim, numHeads, layers, Math.toIntExact(ffn0[0]), Math.toIntExact(pe[1]),
                Math.toIntExact(head[0] / patchVol), Math.toIntExact(text0[1]), Math.toIntExact(time0[1]), patch,
                r.has("blocks.0.norm3.weight"));
    }

    /**
     * {@code num_attention_heads} of a diffusers {@code config.json} in the checkpoint's folder (the path itself when it
     * is a folder, else its parent), or null when there is none or it is not a Wan transformer config.
     */
    static Integer headsFromConfigJson(Path checkpoint) {
        Path dir = Files.isDirectory(checkpoint) ? checkpoint : checkpoint.toAbsolutePath().getParent();
        if (dir == null) return null;
        Path cfg = dir.resolve("config.json");
        if (!Files.isRegularFile(cfg)) return null;
        Object parsed;
        try {
            parsed = Json.parse(Files.readString(cfg));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + cfg, e);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException(cfg + " is not valid JSON: " + e.getMessage());
        }
        if (!(parsed instanceof Map<?, ?> m) || !"WanTransformer3DModel".equals(m.get("_class_name"))) return null;
        Object heads = m.get("num_attention_heads");
        if (!(heads instanceof Long n) || n <= 0)
            throw new CheckpointException(cfg + ": num_attention_heads must be a positive integer, got " + heads);
        return Math.toIntExact(n);
    }

    @Override public boolean equals(Object o) {
        return o instanceof WanConfig c && dim == c.dim && numHeads == c.numHeads && numLayers == c.numLayers
                && ffnDim == c.ffnDim && inChannels == c.inChannels && outChannels == c.outChannels
                && textDim == c.textDim && freqDim == c.freqDim && Arrays.equals(patch, c.patch)
                && crossAttnNorm == c.crossAttnNorm;
    }

    @Override public int hashCode() {
        return Arrays.hashCode(new long[] {dim, numHeads, numLayers, ffnDim, inChannels, outChannels, textDim, freqDim,
                Arrays.hashCode(patch), crossAttnNorm ? 1 : 0});
    }

    @Override public String toString() {
        return "WanConfig[D=" + dim + ", heads=" + numHeads + "×" + headDim() + ", layers=" + numLayers + ", ffn=" + ffnDim
                + ", in=" + inChannels + ", out=" + outChannels + ", text=" + textDim + ", freq=" + freqDim + ", patch="
                + Arrays.toString(patch) + ", crossAttnNorm=" + crossAttnNorm + "]";
    }
}
