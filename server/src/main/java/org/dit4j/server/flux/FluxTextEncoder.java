package org.dit4j.server.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.TextConditioning;
import org.dit4j.models.text.tokenizer.ClipTokenizer;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.server.engine.TextEmbedding;
import org.dit4j.server.engine.TextEncoder;

/**
 * ComfyUI's Flux CLIP value: CLIP-L and T5-XXL with their tokenizers. A prompt is encoded as ComfyUI's
 * {@code FluxClipModel} does: T5 tokens + EOS padded with pad id 0 to at least {@value FluxEngine#COMFY_T5_MIN_LENGTH}
 * tokens and never truncated (no attention mask); CLIP-L BOS + tokens + EOS, cut to 77 and padded with EOS, pooled at
 * the first EOS ({@link TextConditioning} in its ComfyUI mode).
 *
 * <p>Departure: ComfyUI's prompt-weight syntax ({@code (word:1.2)}, {@code \(} escapes, {@code embedding:}) is not
 * interpreted; the text is tokenized as written.
 */
final class FluxTextEncoder implements TextEncoder {

    private final String name;
    private final Ops ops;
    private ClipTextModel clip;
    private T5Encoder t5;
    private final TextConditioning conditioning;

    FluxTextEncoder(String name, Ops ops, ClipTokenizer clipTokenizer, ClipTextModel clip, T5Tokenizer t5Tokenizer, T5Encoder t5) {
        this.name = name;
        this.ops = ops;
        this.clip = clip;
        this.t5 = t5;
        this.conditioning = new TextConditioning(t5Tokenizer, t5, clipTokenizer, clip, FluxEngine.COMFY_T5_MIN_LENGTH, true);
    }

    @Override public synchronized TextEmbedding encode(String text) {
        if (clip == null) throw new IllegalStateException("text encoder " + name + " was released; queue the prompt again to reload it");
        try (TextConditioning.Result r = conditioning.encode(text == null ? "" : text)) {
            Tensor txt = r.txt();
            float[] t5Out = host(txt), pooled = host(r.y());
            return new FluxTextEmbedding(t5Out, Math.toIntExact(txt.dim(1)), Math.toIntExact(txt.dim(2)), pooled);
        }
    }

    private float[] host(Tensor t) {
        if (t.device().isCpu()) return t.toFloatArray();
        try (Tensor h = ops.toHost(t)) {
            return h.toFloatArray();
        }
    }

    @Override public synchronized void close() {
        if (clip != null) clip.close();
        if (t5 != null) t5.close();
        clip = null;
        t5 = null;
    }

    @Override public String toString() { return "<FluxTextEncoder " + name + " on " + ops.device() + ">"; }
}
