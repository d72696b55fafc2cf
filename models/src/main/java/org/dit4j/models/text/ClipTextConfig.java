package org.dit4j.models.text;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;

/**
 * Shape of a CLIP text transformer (Hugging Face {@code CLIPTextModel}): learned position embeddings, pre-LN layers
 * with causal self-attention and an MLP, final LayerNorm, pooled output at the EOS token.
 *
 * @param vocabSize    rows of the token embedding (49408 for CLIP-L)
 * @param hidden       width (768 for CLIP-L)
 * @param heads        attention heads (12 for CLIP-L); not stored in checkpoints
 * @param intermediate MLP width (3072 for CLIP-L)
 * @param layers       encoder layers (12 for CLIP-L)
 * @param maxPositions rows of the position embedding (77)
 * @param eps          LayerNorm epsilon (1e-5)
 * @param activation   MLP activation: quick_gelu (OpenAI CLIP) or gelu (OpenCLIP ViT-H/bigG)
 * @param eosTokenId   the config's eos_token_id, which decides the pooled position (see {@link ClipTextModel})
 */
public record ClipTextConfig(int vocabSize, int hidden, int heads, int intermediate, int layers, int maxPositions, float eps,
                             Activation activation, int eosTokenId) {

    public enum Activation {
        /** x·σ(1.702·x) (OpenAI CLIP, Flux's CLIP-L). */
        QUICK_GELU,
        /** exact (erf) GELU (OpenCLIP ViT-H / ViT-bigG text towers). */
        GELU
    }

    /** openai/clip-vit-large-patch14's text tower, the CLIP of Flux (models.md §1.11). */
    public static final ClipTextConfig CLIP_L = new ClipTextConfig(49408, 768, 12, 3072, 12, 77, 1e-5f, Activation.QUICK_GELU, 49407);

    /** The EOS id of CLIP's tokenizer, {@code <|endoftext|>}. */
    public static final int CLIP_EOS = 49407;

    static final String PROBE = "embeddings.token_embedding.weight";

    public ClipTextConfig {
        if (vocabSize <= 0 || hidden <= 0 || heads <= 0 || intermediate <= 0 || layers <= 0 || maxPositions <= 0)
            throw new IllegalArgumentException("CLIP text config sizes must be positive: vocab " + vocabSize + ", hidden " + hidden
                    + ", heads " + heads + ", intermediate " + intermediate + ", layers " + layers + ", positions " + maxPositions);
        if (hidden % heads != 0)
            throw new IllegalArgumentException("CLIP text config: hidden " + hidden + " is not a multiple of the " + heads + " heads");
        if (activation == null) throw new IllegalArgumentException("CLIP text config: activation must be given");
    }

    public int headDim() { return hidden / heads; }

    public ClipTextConfig withHeads(int h) {
        return new ClipTextConfig(vocabSize, hidden, h, intermediate, layers, maxPositions, eps, activation, eosTokenId);
    }

    public ClipTextConfig withEosTokenId(int id) {
        return new ClipTextConfig(vocabSize, hidden, heads, intermediate, layers, maxPositions, eps, activation, id);
    }

    public ClipTextConfig withActivation(Activation a) {
        return new ClipTextConfig(vocabSize, hidden, heads, intermediate, layers, maxPositions, eps, a, eosTokenId);
    }

    /**
     * Reads the configuration from tensor shapes under {@code prefix}. Not stored, hence conventions: heads =
     * hidden / 64 (true of CLIP-B/L/H/bigG), quick_gelu up to width 768 (OpenAI towers) and gelu above (OpenCLIP),
     * eps 1e-5, EOS = the last vocabulary id (49407 for CLIP's 49408). Override with the {@code with…} methods.
     */
    public static ClipTextConfig detect(WeightSource w, String prefix) {
        long hidden = shape(w, prefix + "embeddings.token_embedding.weight")[1];
        if (hidden % 64 != 0)
            throw new CheckpointException("CLIP text checkpoint " + w.path() + ": width " + hidden + " is not a multiple of 64, "
                    + "so the head count cannot be inferred; pass it to detect(source, prefix, heads)");
        return detect(w, prefix, Math.toIntExact(hidden / 64));
    }

    /** As {@link #detect(WeightSource, String)} with an explicit head count. */
    public static ClipTextConfig detect(WeightSource w, String prefix, int heads) {
        long[] tok = shape(w, prefix + "embeddings.token_embedding.weight");
        long[] pos = shape(w, prefix + "embeddings.position_embedding.weight");
        long[] fc1 = shape(w, prefix + "encoder.layers.0.mlp.fc1.weight");
        int layers = 0;
        while (w.contains(prefix + "encoder.layers." + layers + ".mlp.fc1.weight")) layers++;
        int vocab = Math.toIntExact(tok[0]), hidden = Math.toIntExact(tok[1]);
        return new ClipTextConfig(vocab, hidden, heads, Math.toIntExact(fc1[0]), layers, Math.toIntExact(pos[0]), 1e-5f,
                hidden <= 768 ? Activation.QUICK_GELU : Activation.GELU, vocab - 1);
    }

    /** Detects the prefix (see {@link #findPrefix}) and the configuration. */
    public static ClipTextConfig detect(WeightSource w) { return detect(w, findPrefix(w)); }

    /**
     * The prefix of the text model's tensors: {@code text_model.} in Hugging Face {@code CLIPTextModel} files
     * (diffusers {@code text_encoder/}, openai/clip-vit-large-patch14) and ComfyUI's {@code clip_l.safetensors};
     * "" when saved without it; e.g. {@code text_encoders.clip_l.transformer.text_model.} in all-in-one checkpoints.
     */
    public static String findPrefix(WeightSource w) {
        return TextWeights.findPrefix(w, PROBE, "CLIP text model", "text_model.");
    }

    private static long[] shape(WeightSource w, String name) {
        if (!w.contains(name))
            throw new CheckpointException("not a CLIP text model: checkpoint " + w.path() + " has no '" + name + "'");
        long[] d = w.info(name).shape().dims();
        if (d.length != 2)
            throw new CheckpointException("CLIP text checkpoint: tensor '" + name + "' in " + w.fileOf(name) + " has shape "
                    + java.util.Arrays.toString(d) + ", expected a rank-2 tensor");
        return d;
    }
}
