package org.dit4j.models.flux;

import java.util.Arrays;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;

/**
 * Hyper-parameters of a Flux.1 transformer (models.md §1.1).
 *
 * @param hiddenSize    D (3072)
 * @param numHeads      H (24); head dim d = D/H
 * @param depth         double-stream blocks (19)
 * @param depthSingle   single-stream blocks (38)
 * @param inChannels    packed input channels (64 = 16 latent channels × 2×2)
 * @param outChannels   packed output channels (64)
 * @param contextDim    text-encoder width, T5 (4096)
 * @param vecDim        pooled-vector width, CLIP-L (768)
 * @param mlpHidden     MLP hidden width (4·D = 12288)
 * @param axesDim       RoPE widths of the three position axes, summing to d ([16, 56, 56])
 * @param theta         RoPE base (10000)
 * @param guidanceEmbed whether a guidance embedder exists (dev, Kontext-dev: true; schnell: false)
 */
public record FluxConfig(int hiddenSize, int numHeads, int depth, int depthSingle, int inChannels, int outChannels,
                         int contextDim, int vecDim, int mlpHidden, int[] axesDim, double theta, boolean guidanceEmbed) {

    /** Epsilon of every LayerNorm and QK RMSNorm in Flux. */
    public static final float EPS = 1e-6f;

    public FluxConfig {
        if (numHeads <= 0 || hiddenSize % numHeads != 0)
            throw new IllegalArgumentException("hidden size " + hiddenSize + " is not a multiple of the head count " + numHeads);
        int sum = 0;
        for (int a : axesDim) {
            if (a <= 0 || a % 2 != 0) throw new IllegalArgumentException("RoPE axis widths must be positive and even, got " + Arrays.toString(axesDim));
            sum += a;
        }
        if (axesDim.length != 3 || sum != hiddenSize / numHeads)
            throw new IllegalArgumentException("Flux needs 3 RoPE axes summing to the head dim " + hiddenSize / numHeads
                    + ", got " + Arrays.toString(axesDim));
        axesDim = axesDim.clone();
    }

    /** FLUX.1-dev (also Kontext-dev). */
    public static FluxConfig dev() {
        return new FluxConfig(3072, 24, 19, 38, 64, 64, 4096, 768, 12288, new int[] {16, 56, 56}, 10000, true);
    }

    /** FLUX.1-schnell: dev without the guidance embedder. */
    public static FluxConfig schnell() { return dev().withGuidanceEmbed(false); }

    public int headDim() { return hiddenSize / numHeads; }

    @Override public int[] axesDim() { return axesDim.clone(); }

    public FluxConfig withAxesDim(int... axes) {
        return new FluxConfig(hiddenSize, numHeads, depth, depthSingle, inChannels, outChannels, contextDim, vecDim,
                mlpHidden, axes, theta, guidanceEmbed);
    }

    public FluxConfig withGuidanceEmbed(boolean g) {
        return new FluxConfig(hiddenSize, numHeads, depth, depthSingle, inChannels, outChannels, contextDim, vecDim,
                mlpHidden, axesDim, theta, g);
    }

    /**
     * Default RoPE split of a head dim d: the two spatial axes get 2·⌊7d/32⌋ each, the first axis the rest.
     * d = 128 gives Flux's [16, 56, 56]; d = 16 gives [4, 6, 6]. Checkpoints do not store this split: override it
     * with {@link #withAxesDim} for a model trained with another one.
     */
    public static int[] defaultAxesDim(int headDim) {
        int spatial = 2 * ((7 * headDim) / 32);
        return new int[] {headDim - 2 * spatial, spatial, spatial};
    }

    /**
     * Reads the configuration from tensor shapes only: BFL/ComfyUI names or diffusers names, under {@code prefix}
     * ("" or e.g. "model.diffusion_model."). The head count comes from the QK-norm scale (its size is the head dim);
     * axesDim is {@link #defaultAxesDim}.
     */
    public static FluxConfig detect(WeightSource w, String prefix) {
        FluxWeights.Layout layout = FluxWeights.Layout.of(w, prefix);
        FluxWeights.ShapeReader r = new FluxWeights.ShapeReader(w, prefix, layout);
        long[] imgIn = r.shape("img_in.weight", 2);
        long[] txtIn = r.shape("txt_in.weight", 2);
        long[] vecIn = r.shape("vector_in.in_layer.weight", 2);
        long[] qNorm = r.shape("double_blocks.0.img_attn.norm.query_norm.scale", 1);
        long[] mlp0 = r.shape("double_blocks.0.img_mlp.0.weight", 2);
        long[] finalLin = r.shape("final_layer.linear.weight", 2);
        int hidden = Math.toIntExact(imgIn[0]);
        int headDim = Math.toIntExact(qNorm[0]);
        if (headDim <= 0 || hidden % headDim != 0)
            throw new CheckpointException("Flux checkpoint: " + r.where("double_blocks.0.img_attn.norm.query_norm.scale")
                    + ": the QK-norm scale has " + headDim + " entries, which does not divide the hidden size " + hidden);
        int depth = r.countBlocks("double_blocks.");
        int single = r.countBlocks("single_blocks.");
        boolean guidance = r.has("guidance_in.in_layer.weight");
        return new FluxConfig(hidden, hidden / headDim, depth, single, Math.toIntExact(imgIn[1]),
                Math.toIntExact(finalLin[0]), Math.toIntExact(txtIn[1]), Math.toIntExact(vecIn[1]),
                Math.toIntExact(mlp0[0]), defaultAxesDim(headDim), 10000, guidance);
    }

    /** {@link #detect(WeightSource, String)} with the prefix found in the file ("" or "model.diffusion_model."). */
    public static FluxConfig detect(WeightSource w) { return detect(w, FluxWeights.detectPrefix(w)); }

    @Override public boolean equals(Object o) {
        return o instanceof FluxConfig c && hiddenSize == c.hiddenSize && numHeads == c.numHeads && depth == c.depth
                && depthSingle == c.depthSingle && inChannels == c.inChannels && outChannels == c.outChannels
                && contextDim == c.contextDim && vecDim == c.vecDim && mlpHidden == c.mlpHidden
                && Arrays.equals(axesDim, c.axesDim) && theta == c.theta && guidanceEmbed == c.guidanceEmbed;
    }

    @Override public int hashCode() {
        return Arrays.hashCode(new long[] {hiddenSize, numHeads, depth, depthSingle, inChannels, outChannels, contextDim,
                vecDim, mlpHidden, Arrays.hashCode(axesDim), Double.hashCode(theta), guidanceEmbed ? 1 : 0});
    }

    @Override public String toString() {
        return "FluxConfig[D=" + hiddenSize + ", heads=" + numHeads + "×" + headDim() + ", double=" + depth + ", single="
                + depthSingle + ", in=" + inChannels + ", out=" + outChannels + ", context=" + contextDim + ", vec="
                + vecDim + ", mlp=" + mlpHidden + ", axes=" + Arrays.toString(axesDim) + ", theta=" + theta
                + ", guidance=" + guidanceEmbed + "]";
    }
}
