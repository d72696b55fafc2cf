package org.dit4j.models.text;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.tokenizer.Encoding;

/**
 * The encoder stack of T5 v1.1 (Flux's text encoder) and umT5 (Wan's), as Hugging Face {@code T5EncoderModel} /
 * {@code UMT5EncoderModel} compute it (models.md §1.11):
 * <pre>
 * x = shared[ids]
 * for each block:  x = x + o( attention( q(n), k(n), v(n), bias ) )      n = rms(x)·w, no 1/√d scaling
 *                  x = x + wo( gelu_tanh(wi_0(n)) ⊙ wi_1(n) )             n = rms(x)·w
 * out = rms(x)·w_final
 * </pre>
 * bias = relative-position bias (bidirectional buckets) of block 0, shared by all blocks (T5 v1.1), or each block's
 * own (umT5), plus −∞ on padding keys when a mask is given (Flux passes none; Wan does). The T5 norms are RMS norms
 * without mean or bias, computed in f32.
 *
 * <p><b>Dtypes.</b> Activations in F32 or BF16. F16 is refused: T5's unscaled attention and large activations
 * overflow fp16 (Hugging Face clamps them, which changes the result). Weights stay as stored (fp16/bf16/fp32/fp8,
 * ComfyUI scaled fp8 with the scale applied after the matmul) unless a weight dtype is given. The embedding table
 * stays on the host; only the gathered rows are uploaded.
 */
public final class T5Encoder implements AutoCloseable {
    private final Ops ops;
    private final T5Config config;
    private final DType activation;
    private final EmbeddingTable embedding;
    private final List<Block> blocks;
    private final Tensor finalNorm;
    private final float[][] biasTables;     // per block [buckets·heads] (umT5), or one table for block 0
    private final List<Tensor> owned;

    private record Block(Tensor norm0, TextLinear q, TextLinear k, TextLinear v, TextLinear o,
                         Tensor norm1, TextLinear wi0, TextLinear wi1, TextLinear wo) {}

    private T5Encoder(Ops ops, T5Config config, DType activation, EmbeddingTable embedding, List<Block> blocks,
                      Tensor finalNorm, float[][] biasTables, List<Tensor> owned) {
        this.ops = ops;
        this.config = config;
        this.activation = activation;
        this.embedding = embedding;
        this.blocks = blocks;
        this.finalNorm = finalNorm;
        this.biasTables = biasTables;
        this.owned = owned;
    }

    /** Loads the encoder found in {@code src} (prefix and configuration detected), weights as stored. */
    public static T5Encoder load(Ops ops, WeightSource src, DType activation) {
        String prefix = T5Config.findPrefix(src);
        return load(ops, src, prefix, T5Config.detect(src, prefix), null, activation);
    }

    /**
     * Loads the encoder under {@code prefix} with configuration {@code config}.
     *
     * @param weightDtype dtype of the linear weights on the device, or null to keep the stored one
     * @param activation  F32 or BF16
     */
    public static T5Encoder load(Ops ops, WeightSource src, String prefix, T5Config config, DType weightDtype, DType activation) {
        if (activation != DType.F32 && activation != DType.BF16)
            throw new IllegalArgumentException("T5 encoder activations must be F32 or BF16, got " + activation
                    + (activation == DType.F16 ? ": T5 overflows in fp16 (its attention is unscaled and its activations grow"
                       + " past 65504); run it in BF16 on the GPU or F32 on the CPU, whatever the weights' dtype" : ""));
        TextWeights w = new TextWeights(ops, src, prefix, "T5 encoder", weightDtype);
        try {
            int d = config.dModel(), inner = config.inner(), ff = config.dFf();
            String emb = T5Config.embeddingName(src, prefix).substring(prefix.length());
            EmbeddingTable table = w.embedding(emb, config.vocabSize(), d);
            int stored = w.count("encoder.block.{i}.layer.0.SelfAttention.q.weight");
            if (stored != config.numLayers())
                throw new org.dit4j.core.io.CheckpointException("T5 encoder: checkpoint " + src.path() + " has " + stored
                        + " blocks under prefix '" + prefix + "', the configuration " + config + " has " + config.numLayers()
                        + "; let T5Config.detect read the configuration from the file");
            List<Block> blocks = new ArrayList<>();
            float[][] tables = new float[config.perLayerBias() ? config.numLayers() : 1][];
            Shape relShape = Shape.of(config.numBuckets(), config.numHeads());
            for (int i = 0; i < config.numLayers(); i++) {
                String a = "encoder.block." + i + ".layer.0.", f = "encoder.block." + i + ".layer.1.";
                String rel = a + "SelfAttention.relative_attention_bias.weight";
                if (i < tables.length) tables[i] = w.hostFloats(rel, relShape);
                else if (w.has(rel))
                    throw new org.dit4j.core.io.CheckpointException("T5 encoder: " + w.where(prefix + rel) + " exists, but the "
                            + "configuration shares block 0's bias (T5 v1.1); this is a umT5 checkpoint: load it with "
                            + "perLayerBias = true (T5Config.detect does)");
                blocks.add(new Block(
                        w.vector(a + "layer_norm.weight", d),
                        w.linear(a + "SelfAttention.q", inner, d, false),
                        w.linear(a + "SelfAttention.k", inner, d, false),
                        w.linear(a + "SelfAttention.v", inner, d, false),
                        w.linear(a + "SelfAttention.o", d, inner, false),
                        w.vector(f + "layer_norm.weight", d),
                        w.linear(f + "DenseReluDense.wi_0", ff, d, false),
                        w.linear(f + "DenseReluDense.wi_1", ff, d, false),
                        w.linear(f + "DenseReluDense.wo", d, ff, false)));
            }
            Tensor finalNorm = w.vector("encoder.final_layer_norm.weight", d);
            return new T5Encoder(ops, config, activation, table, List.copyOf(blocks), finalNorm, tables, w.owned());
        } catch (RuntimeException e) {
            TextWeights.release(w.owned());
            throw e;
        }
    }

    public T5Config config() { return config; }

    public DType activation() { return activation; }

    /**
     * Encodes tokenized prompts of equal length. With {@code useMask}, padding keys (mask 0) are masked out (umT5 in
     * Wan); without, every position attends to every other (Flux).
     */
    public Tensor encode(List<Encoding> prompts, boolean useMask) {
        int[][] ids = new int[prompts.size()][], mask = useMask ? new int[prompts.size()][] : null;
        for (int b = 0; b < ids.length; b++) {
            ids[b] = prompts.get(b).ids();
            if (useMask) mask[b] = prompts.get(b).attentionMask();
        }
        return encode(ids, mask);
    }

    /**
     * The last hidden state (after the final norm).
     *
     * @param ids  token ids [B][L], every row of the same length L ≥ 1
     * @param mask null (no mask, as Flux) or [B][L] with 1 for real tokens and 0 for padding keys
     * @return [B, L, dModel] in the activation dtype, on the backend's device, owned by the caller (or its scope)
     */
    public Tensor encode(int[][] ids, int[][] mask) {
        int b = ids.length;
        int len = checkIds(ids, mask);
        try (Scope scope = Scope.open()) {
            Tensor x = embed(ids, len);                                             // [B, L, D]
            Tensor shared = config.perLayerBias() ? null : positionBias(biasTables[0], mask, b, len);
            for (int i = 0; i < blocks.size(); i++) {
                Tensor bias = shared != null ? shared : positionBias(biasTables[i], mask, b, len);
                Tensor next = block(blocks.get(i), x, bias, b, len);
                x.close();
                if (bias != shared) bias.close();
                x = next;
            }
            return scope.keep(ops.rmsNorm(x, finalNorm, config.eps()));
        }
    }

    /** One block: x:[B, L, D] → [B, L, D]; bias F32 [1 or B, H, L, L]. */
    private Tensor block(Block blk, Tensor x, Tensor bias, int b, int len) {
        int h = config.numHeads(), dk = config.dKv();
        try (Scope s = Scope.open()) {
            Tensor n = ops.rmsNorm(x, blk.norm0(), config.eps());
            Tensor q = blk.q().forward(ops, n).view(b, len, h, dk);
            Tensor k = blk.k().forward(ops, n).view(b, len, h, dk);
            Tensor v = blk.v().forward(ops, n).view(b, len, h, dk);
            Tensor a = ops.attention(q, k, v, bias, 1f).view(b, len, (long) h * dk);   // T5: no 1/√d
            Tensor x1 = ops.add(x, blk.o().forward(ops, a));
            Tensor n1 = ops.rmsNorm(x1, blk.norm1(), config.eps());
            Tensor gated = ops.mul(blk.wi0().forwardGeluTanh(ops, n1), blk.wi1().forward(ops, n1));
            return s.keep(ops.add(x1, blk.wo().forward(ops, gated)));
        }
    }

    /** Token embeddings [B, L, D] gathered on the host, in the activation dtype on the device. */
    private Tensor embed(int[][] ids, int len) {
        int b = ids.length, d = config.dModel();
        float[] rows = new float[Math.multiplyExact(b * len, d)];
        for (int i = 0; i < b; i++)
            for (int j = 0; j < len; j++) embedding.addRow(ids[i][j], rows, (i * len + j) * d, "[" + i + ", " + j + "]");
        return TextModels.toDevice(ops, Tensor.of(activation, rows, b, len, d));
    }

    /**
     * The attention bias F32 [Bm, H, L, L] (Bm = 1 without mask, B with): table[bucket(j − i), h] for query i and key
     * j, plus −∞ where key j is padding.
     */
    private Tensor positionBias(float[] table, int[][] mask, int b, int len) {
        int h = config.numHeads(), rows = mask == null ? 1 : b;
        int[] bucket = new int[2 * len - 1];                     // bucket of r = j − i, r ∈ [−(L−1), L−1]
        for (int r = -(len - 1); r < len; r++) bucket[r + len - 1] = relativeBucket(r, config.numBuckets(), config.maxDistance());
        Tensor t = Tensor.zeros(DType.F32, rows, h, len, len);
        MemorySegment seg = t.segment();
        ValueLayout.OfFloat f32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        float[] row = new float[len];
        long off = 0;
        for (int bb = 0; bb < rows; bb++) {
            for (int hh = 0; hh < h; hh++) {
                for (int i = 0; i < len; i++) {
                    for (int j = 0; j < len; j++) {
                        float v = table[bucket[j - i + len - 1] * h + hh];
                        row[j] = mask != null && mask[bb][j] == 0 ? Float.NEGATIVE_INFINITY : v;
                    }
                    MemorySegment.copy(row, 0, seg, f32, off, len);
                    off += 4L * len;
                }
            }
        }
        return TextModels.toDevice(ops, t);
    }

    /**
     * T5's bidirectional relative-position bucket of r = key − query, computed as PyTorch does in float32:
     * half the buckets for r ≤ 0 and half (offset numBuckets/2) for r > 0; within a half, |r| below numBuckets/4
     * is its own bucket, larger |r| are binned logarithmically up to maxDistance and clamped to the last bucket.
     */
    public static int relativeBucket(int r, int numBuckets, int maxDistance) {
        int half = numBuckets / 2, maxExact = half / 2;
        int base = r > 0 ? half : 0;
        int n = Math.abs(r);
        if (n < maxExact) return base + n;
        float ratio = (float) n / (float) maxExact;
        float logRatio = (float) Math.log(ratio);                                  // torch.log on float32
        float scaled = logRatio / (float) Math.log((double) maxDistance / maxExact) * (float) (half - maxExact);
        int large = maxExact + (int) scaled;                                       // .to(torch.long) truncates
        return base + Math.min(large, half - 1);
    }

    private int checkIds(int[][] ids, int[][] mask) {
        if (ids.length == 0 || ids[0].length == 0)
            throw new IllegalArgumentException("T5 encoder: ids must hold at least one row of at least one token");
        int len = ids[0].length;
        for (int i = 0; i < ids.length; i++)
            if (ids[i].length != len)
                throw new IllegalArgumentException("T5 encoder: all id rows must have the same length (pad them): row 0 has "
                        + len + ", row " + i + " has " + ids[i].length);
        if (mask != null) {
            if (mask.length != ids.length)
                throw new IllegalArgumentException("T5 encoder: mask has " + mask.length + " rows, ids have " + ids.length);
            for (int i = 0; i < mask.length; i++) {
                if (mask[i].length != len)
                    throw new IllegalArgumentException("T5 encoder: mask row " + i + " has " + mask[i].length + " entries, ids have " + len);
                boolean any = false;
                for (int m : mask[i]) any |= m != 0;
                if (!any)
                    throw new IllegalArgumentException("T5 encoder: mask row " + i + " masks every token; every prompt has at "
                            + "least its EOS token");
            }
        }
        return len;
    }

    /** Frees the weights. */
    @Override public void close() { TextWeights.release(owned); }

    @Override public String toString() { return "T5Encoder[" + config + ", activations " + activation + ", " + ops.name() + "]"; }
}
