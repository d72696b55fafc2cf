package org.dit4j.models.text;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.tokenizer.Encoding;

/**
 * The CLIP text transformer as Hugging Face {@code CLIPTextModel} computes it (no text projection; what Flux's
 * CLIP-L uses, models.md §1.11):
 * <pre>
 * x = token_embedding[ids] + position_embedding[0..L)
 * for each layer:  x = x + out_proj( attention( q(n), k(n), v(n), causal ) )     n = LN1(x), scale 1/√d
 *                  x = x + fc2( act( fc1( LN2(x) ) ) )                             act = quick_gelu for CLIP-L
 * hidden = final_layer_norm(x)
 * pooled[b] = hidden[b, p_b]
 * </pre>
 * p_b is chosen as transformers 5 does: with a legacy config whose eos_token_id is 2 (openai/clip-vit-large-patch14's
 * own config), the position of the highest id in the row (its first occurrence); otherwise the first position of
 * eos_token_id (0 when the row has none). For CLIP's tokenizer both give the first {@code <|endoftext|>} (49407,
 * the highest id). An optional padding mask adds −∞ on padding keys to the causal mask (Flux passes none; causality
 * already keeps the padding out of the pooled EOS state).
 *
 * <p>Activations F32, BF16 or F16; weights as stored unless a weight dtype is given. Embedding tables stay on the host.
 */
public final class ClipTextModel implements AutoCloseable {
    private final Ops ops;
    private final ClipTextConfig config;
    private final DType activation;
    private final EmbeddingTable tokens;
    private final EmbeddingTable positions;
    private final List<Layer> layers;
    private final Tensor finalW, finalB;
    private final List<Tensor> owned;

    private record Layer(Tensor ln1W, Tensor ln1B, TextLinear q, TextLinear k, TextLinear v, TextLinear out,
                         Tensor ln2W, Tensor ln2B, TextLinear fc1, TextLinear fc2) {}

    /** The last hidden state [B, L, hidden] and the pooled vector [B, hidden]; closing frees both. */
    public record Output(Tensor hidden, Tensor pooled) implements AutoCloseable {
        @Override public void close() {
            hidden.close();
            pooled.close();
        }
    }

    private ClipTextModel(Ops ops, ClipTextConfig config, DType activation, EmbeddingTable tokens, EmbeddingTable positions,
                          List<Layer> layers, Tensor finalW, Tensor finalB, List<Tensor> owned) {
        this.ops = ops;
        this.config = config;
        this.activation = activation;
        this.tokens = tokens;
        this.positions = positions;
        this.layers = layers;
        this.finalW = finalW;
        this.finalB = finalB;
        this.owned = owned;
    }

    /** Loads the text model found in {@code src} (prefix and configuration detected), weights as stored. */
    public static ClipTextModel load(Ops ops, WeightSource src, DType activation) {
        String prefix = ClipTextConfig.findPrefix(src);
        return load(ops, src, prefix, ClipTextConfig.detect(src, prefix), null, activation);
    }

    /**
     * Loads the text model under {@code prefix} with configuration {@code config}.
     *
     * @param weightDtype dtype of the linear weights on the device, or null to keep the stored one
     * @param activation  F32, BF16 or F16
     */
    public static ClipTextModel load(Ops ops, WeightSource src, String prefix, ClipTextConfig config, DType weightDtype,
                                     DType activation) {
        if (activation != DType.F32 && activation != DType.BF16 && activation != DType.F16)
            throw new IllegalArgumentException("CLIP text model activations must be F32, BF16 or F16, got " + activation);
        TextWeights w = new TextWeights(ops, src, prefix, "CLIP text model", weightDtype);
        try {
            int d = config.hidden(), m = config.intermediate();
            EmbeddingTable tok = w.embedding("embeddings.token_embedding.weight", config.vocabSize(), d);
            EmbeddingTable pos = w.embedding("embeddings.position_embedding.weight", config.maxPositions(), d);
            int stored = w.count("encoder.layers.{i}.mlp.fc1.weight");
            if (stored != config.layers())
                throw new CheckpointException("CLIP text model: checkpoint " + src.path() + " has " + stored + " layers under "
                        + "prefix '" + prefix + "', the configuration " + config + " has " + config.layers()
                        + "; let ClipTextConfig.detect read the configuration from the file");
            List<Layer> layers = new ArrayList<>();
            for (int i = 0; i < config.layers(); i++) {
                String p = "encoder.layers." + i + ".";
                layers.add(new Layer(
                        w.vector(p + "layer_norm1.weight", d), w.vector(p + "layer_norm1.bias", d),
                        w.linear(p + "self_attn.q_proj", d, d, true),
                        w.linear(p + "self_attn.k_proj", d, d, true),
                        w.linear(p + "self_attn.v_proj", d, d, true),
                        w.linear(p + "self_attn.out_proj", d, d, true),
                        w.vector(p + "layer_norm2.weight", d), w.vector(p + "layer_norm2.bias", d),
                        w.linear(p + "mlp.fc1", m, d, true),
                        w.linear(p + "mlp.fc2", d, m, true)));
            }
            Tensor fw = w.vector("final_layer_norm.weight", d), fb = w.vector("final_layer_norm.bias", d);
            return new ClipTextModel(ops, config, activation, tok, pos, List.copyOf(layers), fw, fb, w.owned());
        } catch (RuntimeException e) {
            TextWeights.release(w.owned());
            throw e;
        }
    }

    public ClipTextConfig config() { return config; }

    public DType activation() { return activation; }

    /** Encodes tokenized prompts of equal length; {@code useMask} adds their padding masks to the causal mask. */
    public Output encode(List<Encoding> prompts, boolean useMask) {
        int[][] ids = new int[prompts.size()][], mask = useMask ? new int[prompts.size()][] : null;
        for (int b = 0; b < ids.length; b++) {
            ids[b] = prompts.get(b).ids();
            if (useMask) mask[b] = prompts.get(b).attentionMask();
        }
        return encode(ids, mask);
    }

    /**
     * @param ids  token ids [B][L], rows of equal length 1 ≤ L ≤ maxPositions
     * @param mask null (causal mask only, as Flux) or [B][L], 1 for real tokens, 0 for padding keys
     * @return hidden [B, L, hidden] and pooled [B, hidden] in the activation dtype, owned by the caller (or its scope)
     */
    public Output encode(int[][] ids, int[][] mask) {
        int b = ids.length;
        int len = checkIds(ids, mask);
        try (Scope scope = Scope.open()) {
            Tensor x = embed(ids, len);                                   // [B, L, D]
            Tensor bias = causalBias(mask, b, len);                       // F32 [1 or B, 1, L, L]
            for (Layer layer : layers) {
                Tensor next = layer(layer, x, bias, b, len);
                x.close();
                x = next;
            }
            Tensor hidden = ops.layerNorm(x, finalW, finalB, config.eps());
            x.close();
            Tensor[] rows = new Tensor[b];
            for (int i = 0; i < b; i++) {
                int p = pooledPosition(ids[i], config.eosTokenId());
                rows[i] = ops.slice(ops.slice(hidden, 0, i, i + 1), 1, p, p + 1);   // [1, 1, D]
            }
            Tensor gathered = b == 1 ? rows[0] : ops.concat(0, rows);              // [B, 1, D]
            Tensor pooled = ops.copy(gathered.view(b, config.hidden()));           // owned [B, D]
            return new Output(scope.keep(hidden), scope.keep(pooled));
        }
    }

    /**
     * The pooled position of one row as transformers 5 chooses it: eos_token_id 2 (legacy configs) → first position
     * of the row's highest id; otherwise the first position of eosTokenId, 0 if absent.
     */
    public static int pooledPosition(int[] ids, int eosTokenId) {
        int best = 0;
        if (eosTokenId == 2) {
            for (int j = 1; j < ids.length; j++) if (ids[j] > ids[best]) best = j;
            return best;
        }
        for (int j = 0; j < ids.length; j++) if (ids[j] == eosTokenId) return j;
        return 0;
    }

    private Tensor layer(Layer l, Tensor x, Tensor bias, int b, int len) {
        int h = config.heads(), hd = config.headDim(), d = config.hidden();
        try (Scope s = Scope.open()) {
            Tensor n = ops.layerNorm(x, l.ln1W(), l.ln1B(), config.eps());
            Tensor q = l.q().forward(ops, n).view(b, len, h, hd);
            Tensor k = l.k().forward(ops, n).view(b, len, h, hd);
            Tensor v = l.v().forward(ops, n).view(b, len, h, hd);
            float scale = (float) Math.pow(hd, -0.5);
            Tensor a = ops.attention(q, k, v, bias, scale).view(b, len, d);
            Tensor x1 = ops.add(x, l.out().forward(ops, a));
            Tensor n2 = ops.layerNorm(x1, l.ln2W(), l.ln2B(), config.eps());
            Tensor f = activation(l.fc1().forward(ops, n2));
            return s.keep(ops.add(x1, l.fc2().forward(ops, f)));
        }
    }

    /** quick_gelu(x) = x·σ(1.702x) = silu(1.702x)/1.702; or exact GELU. */
    private Tensor activation(Tensor x) {
        if (config.activation() == ClipTextConfig.Activation.GELU) return ops.gelu(x, false);
        return ops.scale(ops.silu(ops.scale(x, 1.702f)), 1f / 1.702f);
    }

    /** token_embedding[ids] + position_embedding[0..L), summed in f32 on the host. */
    private Tensor embed(int[][] ids, int len) {
        int b = ids.length, d = config.hidden();
        float[] rows = new float[Math.multiplyExact(b * len, d)];
        for (int i = 0; i < b; i++) {
            for (int j = 0; j < len; j++) {
                int off = (i * len + j) * d;
                tokens.addRow(ids[i][j], rows, off, "[" + i + ", " + j + "]");
                positions.addRow(j, rows, off, "position " + j);
            }
        }
        return TextModels.toDevice(ops, Tensor.of(activation, rows, b, len, d));
    }

    /** F32 [Bm, 1, L, L]: −∞ above the diagonal and (with a mask) on padding keys, 0 elsewhere. */
    private Tensor causalBias(int[][] mask, int b, int len) {
        int rows = mask == null ? 1 : b;
        Tensor t = Tensor.zeros(DType.F32, rows, 1, len, len);
        MemorySegment seg = t.segment();
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        float[] row = new float[len];
        long off = 0;
        for (int bb = 0; bb < rows; bb++) {
            for (int i = 0; i < len; i++) {
                for (int j = 0; j < len; j++)
                    row[j] = j > i || (mask != null && mask[bb][j] == 0) ? Float.NEGATIVE_INFINITY : 0f;
                MemorySegment.copy(row, 0, seg, f32, off, len);
                off += 4L * len;
            }
        }
        return TextModels.toDevice(ops, t);
    }

    private int checkIds(int[][] ids, int[][] mask) {
        if (ids.length == 0 || ids[0].length == 0)
            throw new IllegalArgumentException("CLIP text model: ids must hold at least one row of at least one token");
        int len = ids[0].length;
        if (len > config.maxPositions())
            throw new IllegalArgumentException("CLIP text model: " + len + " tokens exceed the " + config.maxPositions()
                    + " positions of the model; truncate the prompt (the tokenizer's encode does)");
        for (int i = 0; i < ids.length; i++)
            if (ids[i].length != len)
                throw new IllegalArgumentException("CLIP text model: all id rows must have the same length (pad them): row 0 has "
                        + len + ", row " + i + " has " + ids[i].length);
        if (mask != null) {
            if (mask.length != ids.length)
                throw new IllegalArgumentException("CLIP text model: mask has " + mask.length + " rows, ids have " + ids.length);
            for (int i = 0; i < mask.length; i++) {
                if (mask[i].length != len)
                    throw new IllegalArgumentException("CLIP text model: mask row " + i + " has " + mask[i].length
                            + " entries, ids have " + len);
                if (mask[i][0] == 0)
                    throw new IllegalArgumentException("CLIP text model: mask row " + i + " masks the first token (BOS); with "
                            + "the causal mask that leaves position 0 nothing to attend to");
            }
        }
        return len;
    }

    /** Frees the weights. */
    @Override public void close() { TextWeights.release(owned); }

    @Override public String toString() { return "ClipTextModel[" + config + ", activations " + activation + ", " + ops.name() + "]"; }
}
