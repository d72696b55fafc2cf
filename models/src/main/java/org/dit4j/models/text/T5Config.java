package org.dit4j.models.text;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;

/**
 * Shape of a T5 encoder stack (T5 v1.1 as in Flux, umT5 as in Wan): gated-GELU (tanh) feed-forward, T5 RMS norms,
 * unscaled attention with bidirectional relative-position buckets.
 *
 * @param vocabSize    rows of the token embedding
 * @param dModel       width of the residual stream
 * @param dKv          width of one attention head
 * @param numHeads     attention heads (inner width dKv·numHeads)
 * @param dFf          width of the gated feed-forward
 * @param numLayers    encoder blocks
 * @param numBuckets   relative-position buckets (32)
 * @param maxDistance  distance from which all positions share the last bucket (128; not stored in checkpoints)
 * @param perLayerBias umT5: every block has its own relative-position bias table; T5 v1.1: block 0's is shared
 * @param eps          epsilon of the T5 layer norms (1e-6)
 */
public record T5Config(int vocabSize, int dModel, int dKv, int numHeads, int dFf, int numLayers, int numBuckets,
                       int maxDistance, boolean perLayerBias, float eps) {

    /** google/t5-v1_1-xxl's encoder, the T5 of Flux (models.md §1.11). */
    public static final T5Config T5_V1_1_XXL = new T5Config(32128, 4096, 64, 64, 10240, 24, 32, 128, false, 1e-6f);

    /** google/umt5-xxl's encoder, the T5 of Wan2.1. */
    public static final T5Config UMT5_XXL = new T5Config(256384, 4096, 64, 64, 10240, 24, 32, 128, true, 1e-6f);

    public static final int DEFAULT_MAX_DISTANCE = 128;
    public static final float DEFAULT_EPS = 1e-6f;

    /** Name of block {@code i}'s first tensor, used to find the prefix and to count blocks. */
    static final String PROBE = "encoder.block.0.layer.0.SelfAttention.q.weight";

    public T5Config {
        if (vocabSize <= 0 || dModel <= 0 || dKv <= 0 || numHeads <= 0 || dFf <= 0 || numLayers <= 0)
            throw new IllegalArgumentException("T5 config sizes must be positive: " + describe(vocabSize, dModel, dKv, numHeads, dFf, numLayers));
        if (numBuckets < 4 || numBuckets % 2 != 0)
            throw new IllegalArgumentException("T5 relative-position buckets must be even and at least 4, got " + numBuckets);
        if (maxDistance <= numBuckets / 4)
            throw new IllegalArgumentException("T5 max distance (" + maxDistance + ") must exceed numBuckets/4 = " + numBuckets / 4);
    }

    /** dKv · numHeads, the width of q, k, v. */
    public int inner() { return dKv * numHeads; }

    /**
     * Reads the configuration from tensor shapes under {@code prefix}: vocabulary and width from the token embedding
     * ({@code shared.weight} or {@code encoder.embed_tokens.weight}), heads and buckets from block 0's relative
     * bias table [buckets, heads], d_kv from q's rows / heads, d_ff from {@code wi_0}, layers by counting blocks,
     * umT5 when block 1 has a bias table of its own. maxDistance 128 and eps 1e-6 (not stored).
     */
    public static T5Config detect(WeightSource w, String prefix) {
        String emb = embeddingName(w, prefix);
        String block0 = prefix + "encoder.block.0.";
        String q = block0 + "layer.0.SelfAttention.q.weight", rel = block0 + "layer.0.SelfAttention.relative_attention_bias.weight";
        String wi0 = block0 + "layer.1.DenseReluDense.wi_0.weight";
        if (!w.contains(q))
            throw new CheckpointException("not a T5 encoder: checkpoint " + w.path() + " has no '" + q + "'");
        if (!w.contains(wi0)) {
            String wi = block0 + "layer.1.DenseReluDense.wi.weight";
            throw new CheckpointException(w.contains(wi)
                    ? "T5 checkpoint " + w.path() + " has a non-gated feed-forward ('" + wi + "': original T5 / T5 v1.0, ReLU); "
                      + "dit4j implements the gated-GELU encoders of T5 v1.1 and umT5 only"
                    : "not a T5 v1.1/umT5 encoder: checkpoint " + w.path() + " has no '" + wi0 + "'");
        }
        if (!w.contains(rel))
            throw new CheckpointException("T5 checkpoint " + w.path() + " has no relative-position bias table '" + rel
                    + "' in block 0; it is not a T5 v1.1/umT5 encoder");
        long[] e = shape(w, emb, 2), qs = shape(w, q, 2), rs = shape(w, rel, 2), fs = shape(w, wi0, 2);
        int vocab = Math.toIntExact(e[0]), d = Math.toIntExact(e[1]);
        int buckets = Math.toIntExact(rs[0]), heads = Math.toIntExact(rs[1]);
        if (qs[0] % heads != 0)
            throw new CheckpointException("T5 checkpoint " + w.path() + ": q has " + qs[0] + " rows, not a multiple of the "
                    + heads + " heads of the relative bias table " + rel);
        int layers = 0;
        while (w.contains(prefix + "encoder.block." + layers + ".layer.0.SelfAttention.q.weight")) layers++;
        boolean perLayer = layers > 1 && w.contains(prefix + "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight");
        return new T5Config(vocab, d, Math.toIntExact(qs[0] / heads), heads, Math.toIntExact(fs[0]), layers, buckets,
                DEFAULT_MAX_DISTANCE, perLayer, DEFAULT_EPS);
    }

    /** Detects the prefix (see {@link #findPrefix}) and the configuration. */
    public static T5Config detect(WeightSource w) { return detect(w, findPrefix(w)); }

    /**
     * The prefix of the T5 encoder's tensors: "" for Hugging Face {@code T5EncoderModel}/{@code UMT5EncoderModel} files
     * and ComfyUI's {@code t5xxl_*.safetensors}/{@code umt5_xxl_*.safetensors}; e.g.
     * {@code text_encoders.t5xxl.transformer.} inside ComfyUI all-in-one checkpoints.
     */
    public static String findPrefix(WeightSource w) {
        return TextWeights.findPrefix(w, PROBE, "T5 encoder", "text_encoders.t5xxl.transformer.");
    }

    /** The token embedding's stored name: {@code shared.weight}, else {@code encoder.embed_tokens.weight}. */
    static String embeddingName(WeightSource w, String prefix) {
        if (w.contains(prefix + "shared.weight")) return prefix + "shared.weight";
        if (w.contains(prefix + "encoder.embed_tokens.weight")) return prefix + "encoder.embed_tokens.weight";
        throw new CheckpointException("T5 checkpoint " + w.path() + " has no token embedding: expected '" + prefix
                + "shared.weight' or '" + prefix + "encoder.embed_tokens.weight'");
    }

    private static long[] shape(WeightSource w, String name, int rank) {
        long[] d = w.info(name).shape().dims();
        if (d.length != rank)
            throw new CheckpointException("T5 checkpoint: tensor '" + name + "' in " + w.fileOf(name) + " has shape "
                    + java.util.Arrays.toString(d) + ", expected a rank-" + rank + " tensor");
        return d;
    }

    private static String describe(int vocab, int d, int dkv, int heads, int dff, int layers) {
        return "vocab " + vocab + ", d_model " + d + ", d_kv " + dkv + ", heads " + heads + ", d_ff " + dff + ", layers " + layers;
    }

    @Override public String toString() {
        return "T5Config[" + describe(vocabSize, dModel, dKv, numHeads, dFf, numLayers) + ", buckets " + numBuckets + "/"
                + maxDistance + (perLayerBias ? ", bias per layer (umT5)" : ", shared bias (T5 v1.1)") + ", eps " + eps + "]";
    }
}
