package org.dit4j.server.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.TextConditioning;
import org.dit4j.models.text.tokenizer.ClipTokenizer;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.core.io.WeightSource;
import org.dit4j.models.flux.lora.LoraFile;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.TextEmbedding;
import org.dit4j.server.engine.TextEncoder;

import java.util.ArrayList;
import java.util.List;

/**
 * ComfyUI's Flux CLIP value: CLIP-L and T5-XXL with their tokenizers. A prompt is encoded as ComfyUI's
 * {@code FluxClipModel} does: T5 tokens + EOS padded with pad id 0 to at least {@value FluxEngine#COMFY_T5_MIN_LENGTH}
 * tokens and never truncated (no attention mask); CLIP-L BOS + tokens + EOS, cut to 77 and padded with EOS, pooled at
 * the first EOS ({@link TextConditioning} in its ComfyUI mode).
 *
 * <p>Prompt weights as ComfyUI applies them ({@link PromptWeights}): the prompt is cut into weighted segments, each
 * tokenized on its own; T5 states of tokens with weight w ≠ 1 become (z − z_empty)·w + z_empty, z_empty the states of
 * [EOS, pad, …] of the same length (in the encoder's dtype, operation by operation). The pooled CLIP vector is that of
 * ComfyUI's first 77-token chunk, which weights do not change. A prompt of one unweighted segment takes
 * {@link TextConditioning} directly (the same tokens). Not interpreted: {@code embedding:} names (textual inversion).
 */
final class FluxTextEncoder implements TextEncoder {

    private final String name;
    private final Ops ops;
    private ClipTextModel clip;
    private T5Encoder t5;
    private final TextConditioning conditioning;
    private final ClipTokenizer clipTokenizer;
    private final T5Tokenizer t5Tokenizer;

    /** ComfyUI's CLIP-L chunk length and its max_word_length (shorter segments are not split across chunks). */
    static final int CLIP_CHUNK = 77, MAX_WORD_LENGTH = 8;

    FluxTextEncoder(String name, Ops ops, ClipTokenizer clipTokenizer, ClipTextModel clip, T5Tokenizer t5Tokenizer, T5Encoder t5) {
        this.name = name;
        this.ops = ops;
        this.clip = clip;
        this.t5 = t5;
        this.clipTokenizer = clipTokenizer;
        this.t5Tokenizer = t5Tokenizer;
        this.conditioning = new TextConditioning(t5Tokenizer, t5, clipTokenizer, clip, FluxEngine.COMFY_T5_MIN_LENGTH, true);
    }

    @Override public synchronized TextEmbedding encode(String text) {
        if (clip == null) throw new IllegalStateException("text encoder " + name + " was released; queue the prompt again to reload it");
        String prompt = text == null ? "" : text;
        List<PromptWeights.Segment> segments = PromptWeights.parse(prompt);
        if (segments.isEmpty() || (segments.size() == 1 && segments.getFirst().weight() == 1.0 && segments.getFirst().text().equals(prompt))) {
            try (TextConditioning.Result r = conditioning.encode(prompt)) {
                Tensor txt = r.txt();
                float[] t5Out = host(txt), pooled = host(r.y());
                return new FluxTextEmbedding(t5Out, Math.toIntExact(txt.dim(1)), Math.toIntExact(txt.dim(2)), pooled);
            }
        }
        return encodeWeighted(segments);
    }

    /** tokenize_with_weights + encode_token_weights of ComfyUI's FluxClipModel for a prompt with several segments or weights. */
    private FluxTextEmbedding encodeWeighted(List<PromptWeights.Segment> segments) {
        // T5: all segments' tokens, EOS, padded with pad ids to at least 256 (one chunk: max_length is unbounded)
        List<Integer> ids = new ArrayList<>();
        List<Double> weights = new ArrayList<>();
        List<int[]> clipGroups = new ArrayList<>();
        for (PromptWeights.Segment s : segments) {
            for (int id : t5Tokenizer.encodeIds(s.text())) {
                ids.add(id);
                weights.add(s.weight());
            }
            clipGroups.add(clipTokenizer.encodeIds(s.text()));
        }
        ids.add(t5Tokenizer.eosId());
        weights.add(1.0);
        while (ids.size() < FluxEngine.COMFY_T5_MIN_LENGTH) {
            ids.add(t5Tokenizer.padId());
            weights.add(1.0);
        }
        int len = ids.size();
        int[] t5Ids = ids.stream().mapToInt(Integer::intValue).toArray();
        boolean weighted = weights.stream().anyMatch(w -> w != 1.0);
        float[] z;
        int width;
        try (Scope s = Scope.open()) {
            Tensor out = t5.encode(new int[][] {t5Ids}, null);
            width = Math.toIntExact(out.dim(2));
            z = host(out);
            if (weighted) {
                int[] empty = new int[len];
                java.util.Arrays.fill(empty, t5Tokenizer.padId());
                empty[0] = t5Tokenizer.eosId();
                float[] ze = host(t5.encode(new int[][] {empty}, null));
                DType dt = out.dtype();
                for (int j = 0; j < len; j++) {
                    double w = weights.get(j);
                    if (w == 1.0) continue;
                    float wf = (float) w;
                    for (int k = j * width; k < (j + 1) * width; k++) {
                        float a = FluxSampler.round(dt, z[k] - ze[k]);
                        float b = FluxSampler.round(dt, a * wf);
                        z[k] = FluxSampler.round(dt, b + ze[k]);
                    }
                }
            }
        }
        // CLIP-L: the pooled vector of ComfyUI's first chunk
        int[] chunk = firstClipChunk(clipGroups, clipTokenizer.bosId(), clipTokenizer.eosId(), clipTokenizer.padId());
        float[] pooled;
        try (Scope s = Scope.open()) {
            ClipTextModel.Output o = clip.encode(new int[][] {chunk}, null);
            pooled = host(o.pooled());
        }
        return new FluxTextEmbedding(z, len, width, pooled);
    }

    /**
     * The first 77-token chunk ComfyUI's SDTokenizer builds from token groups (one group per weighted segment): BOS, then
     * the groups; a group that does not fit is split when it has at least {@value #MAX_WORD_LENGTH} tokens, otherwise it
     * starts the next chunk; EOS; padded to 77.
     */
    static int[] firstClipChunk(List<int[]> groups, int bos, int eos, int pad) {
        List<Integer> batch = new ArrayList<>();
        batch.add(bos);
        boolean closed = false;
        outer:
        for (int[] g : groups) {
            boolean large = g.length >= MAX_WORD_LENGTH;
            int start = 0;
            while (start < g.length) {
                int left = g.length - start;
                if (left + batch.size() > CLIP_CHUNK - 1) {
                    int remaining = CLIP_CHUNK - batch.size() - 1;
                    if (large) for (int i = 0; i < remaining; i++) batch.add(g[start + i]);
                    batch.add(eos);
                    closed = true;
                    break outer;
                }
                for (int i = start; i < g.length; i++) batch.add(g[i]);
                start = g.length;
            }
        }
        if (!closed) batch.add(eos);
        while (batch.size() < CLIP_CHUNK) batch.add(pad);
        return batch.stream().mapToInt(Integer::intValue).toArray();
    }

    private float[] host(Tensor t) {
        if (t.device().isCpu()) return t.toFloatArray();
        try (Tensor h = ops.toHost(t)) {
            return h.toFloatArray();
        }
    }

    /**
     * ParallelLoraLoader's strength_clip: a LoRA without effective text-encoder tensors changes nothing here (ComfyUI
     * patches no CLIP key then either), so the encoder is returned as is; one with text-encoder tensors is refused.
     */
    @Override public TextEncoder withLora(LoraWeights lora, double strength) {
        if (!(lora instanceof FluxLora f)) throw new IllegalArgumentException("LoRA " + lora.name() + " was not loaded by dit4j's Flux engine");
        try (WeightSource w = FluxEngine.open(f.file())) {
            LoraFile lf = LoraFile.read(w);
            if (lf.textEncoderEffective())
                throw new UnsupportedOperationException("LoRA " + f.name() + " changes the text encoders (" + lf.textEncoderKeys().size()
                        + " tensors such as " + lf.textEncoderKeys().getFirst() + "); dit4j applies LoRAs to the Flux transformer only: "
                        + "set strength_clip to 0");
        }
        return this;
    }

    @Override public synchronized void close() {
        if (clip != null) clip.close();
        if (t5 != null) t5.close();
        clip = null;
        t5 = null;
    }

    @Override public String toString() { return "<FluxTextEncoder " + name + " on " + ops.device() + ">"; }
}
