package org.dit4j.server.wan;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.server.engine.TextEmbedding;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.flux.PromptWeights;

import java.util.ArrayList;
import java.util.List;

/**
 * ComfyUI's Wan CLIP value (CLIPLoader type {@code wan}): umT5-XXL and its tokenizer. A prompt is encoded as ComfyUI's
 * {@code WanT5Model} does: the weighted segments' tokens, EOS, padded with pad id 0 to at least {@value #MIN_LENGTH}
 * tokens and never truncated; umT5 with the attention mask (padding keys masked); the states of padding rows set to
 * zero ({@code zero_out_masked}). Tokens with weight w ≠ 1 become (z − z_empty)·w + z_empty (z_empty: the states of
 * [EOS, pad, …] of the same length, masked the same way), rounded to the encoder's dtype operation by operation.
 * For prompts up to 511 tokens this is what the engine's {@code WanText} gives (diffusers trims to the real length
 * and zero-pads to 512); ComfyUI does not apply the reference's prompt cleaning (HTML unescape, whitespace
 * collapsing), and neither does this encoder.
 */
final class WanTextEncoder implements TextEncoder {

    /** ComfyUI's UMT5XXlTokenizer min_length. */
    static final int MIN_LENGTH = 512;

    private final String name;
    private final Ops ops;
    private final T5Tokenizer tokenizer;
    private T5Encoder t5;

    WanTextEncoder(String name, Ops ops, T5Tokenizer tokenizer, T5Encoder t5) {
        this.name = name;
        this.ops = ops;
        this.tokenizer = tokenizer;
        this.t5 = t5;
    }

    @Override public synchronized TextEmbedding encode(String text) {
        if (t5 == null) throw new IllegalStateException("text encoder " + name + " was released; queue the prompt again to reload it");
        List<Integer> ids = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        for (PromptWeights.Segment s : PromptWeights.parse(text == null ? "" : text))
            for (int id : tokenizer.encodeIds(s.text())) {
                ids.add(id);
                weights.add(s.weight());
            }
        ids.add(tokenizer.eosId());
        weights.add(1.0);
        int real = ids.size();
        while (ids.size() < MIN_LENGTH) {
            ids.add(0);
            weights.add(1.0);
        }
        int len = ids.size();
        int[] tok = ids.stream().mapToInt(Integer::intValue).toArray();
        int[] mask = new int[len];
        java.util.Arrays.fill(mask, 0, real, 1);
        boolean weighted = weights.stream().anyMatch(w -> w != 1.0);
        float[] z;
        int width;
        try (Scope s = Scope.open()) {
            Tensor out = t5.encode(new int[][] {tok}, new int[][] {mask});
            width = Math.toIntExact(out.dim(2));
            DType dt = out.dtype();
            z = host(out);
            zeroMasked(z, real, width);
            if (weighted) {
                int[] empty = new int[len], emptyMask = new int[len];
                empty[0] = tokenizer.eosId();
                emptyMask[0] = 1;
                float[] ze = host(t5.encode(new int[][] {empty}, new int[][] {emptyMask}));
                zeroMasked(ze, 1, width);
                for (int j = 0; j < len; j++) {
                    double w = weights.get(j);
                    if (w == 1.0) continue;
                    float wf = (float) w;
                    for (int k = j * width; k < (j + 1) * width; k++) {
                        float a = round(dt, z[k] - ze[k]);
                        float b = round(dt, a * wf);
                        z[k] = round(dt, b + ze[k]);
                    }
                }
            }
        }
        return new WanTextEmbedding(z, len, width);
    }

    /** z·mask: rows at and after {@code real} become +0. */
    private static void zeroMasked(float[] z, int real, int width) {
        java.util.Arrays.fill(z, real * width, z.length, 0f);
    }

    static float round(DType dt, float v) {
        return switch (dt) {
            case BF16 -> DType.bf16ToFloat(DType.floatToBf16(v));
            case F16 -> DType.f16ToFloat(DType.floatToF16(v));
            default -> v;
        };
    }

    private float[] host(Tensor t) {
        Tensor f = t.dtype() == DType.F32 ? t : ops.cast(t, DType.F32);
        if (f.device().isCpu()) return f.toFloatArray();
        try (Tensor h = ops.toHost(f)) {
            return h.toFloatArray();
        }
    }

    @Override public synchronized void close() {
        if (t5 != null) t5.close();
        t5 = null;
    }

    @Override public String toString() { return "<WanTextEncoder " + name + " on " + ops.device() + ">"; }
}
