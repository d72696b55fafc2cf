package org.dit4j.models.text;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.tokenizer.ClipTokenizer;
import org.dit4j.models.text.tokenizer.Encoding;
import org.dit4j.models.text.tokenizer.T5Tokenizer;

/**
 * Flux's text conditioning (models.md §1.2, §1.11): prompt → T5 last hidden state {@code txt} [B, N, 4096] and CLIP-L
 * pooled vector {@code y} [B, 768]. As BFL and diffusers do it:
 * <ul>
 *   <li>T5: the prompt's tokens + EOS, truncated and padded (pad id 0) to N = {@link #T5_LENGTH_DEV} (dev, Kontext) or
 *       {@link #T5_LENGTH_SCHNELL} (BFL schnell); no attention mask, padding is attended to.</li>
 *   <li>CLIP: BOS + tokens + EOS, truncated and padded with EOS to 77; no mask; the pooled output at the first EOS.</li>
 * </ul>
 * With {@code growWithPrompt} the T5 sequence behaves as ComfyUI's: padded to at least {@code t5Length}, never
 * truncated (long prompts give N > t5Length; all prompts of a batch are padded to the longest).
 *
 * <p>The tensors come back in each encoder's activation dtype on its device, owned by the caller (or its scope).
 */
public final class TextConditioning {
    public static final int T5_LENGTH_DEV = T5Tokenizer.FLUX_DEV_MAX_LENGTH;
    public static final int T5_LENGTH_SCHNELL = T5Tokenizer.FLUX_SCHNELL_MAX_LENGTH;

    private final T5Tokenizer t5Tokenizer;
    private final T5Encoder t5;
    private final ClipTokenizer clipTokenizer;
    private final ClipTextModel clip;
    private final int t5Length;
    private final boolean growWithPrompt;

    /** txt [B, N, 4096] (T5 last hidden state) and y [B, 768] (CLIP pooled); closing frees both. */
    public record Result(Tensor txt, Tensor y) implements AutoCloseable {
        @Override public void close() {
            txt.close();
            y.close();
        }
    }

    /**
     * @param t5Length       {@link #T5_LENGTH_DEV} or {@link #T5_LENGTH_SCHNELL} (or the minimum length with growWithPrompt)
     * @param growWithPrompt false: truncate/pad to t5Length (BFL, diffusers); true: ComfyUI's at-least-t5Length
     */
    public TextConditioning(T5Tokenizer t5Tokenizer, T5Encoder t5, ClipTokenizer clipTokenizer, ClipTextModel clip,
                            int t5Length, boolean growWithPrompt) {
        if (t5Length < 1) throw new IllegalArgumentException("T5 length must be positive, got " + t5Length);
        if (t5Tokenizer.vocabSize() > t5.config().vocabSize())
            throw new IllegalArgumentException("the T5 tokenizer (" + t5Tokenizer + ") has " + t5Tokenizer.vocabSize()
                    + " pieces but the encoder's embedding only " + t5.config().vocabSize() + " rows: tokenizer and model do not belong together");
        if (clipTokenizer.vocabSize() > clip.config().vocabSize())
            throw new IllegalArgumentException("the CLIP tokenizer (" + clipTokenizer + ") has " + clipTokenizer.vocabSize()
                    + " tokens but the text model's embedding only " + clip.config().vocabSize() + " rows: tokenizer and model do not belong together");
        if (clipTokenizer.eosId() != clip.config().eosTokenId() && clip.config().eosTokenId() != 2)
            throw new IllegalArgumentException("the CLIP tokenizer's EOS id " + clipTokenizer.eosId() + " differs from the text model's "
                    + "eos_token_id " + clip.config().eosTokenId() + ", so the pooled output would be taken at the wrong token");
        this.t5Tokenizer = t5Tokenizer;
        this.t5 = t5;
        this.clipTokenizer = clipTokenizer;
        this.clip = clip;
        this.t5Length = t5Length;
        this.growWithPrompt = growWithPrompt;
    }

    /** Flux-dev/Kontext conditioning: T5 padded to 512, as BFL and diffusers. */
    public static TextConditioning dev(T5Tokenizer t5Tokenizer, T5Encoder t5, ClipTokenizer clipTokenizer, ClipTextModel clip) {
        return new TextConditioning(t5Tokenizer, t5, clipTokenizer, clip, T5_LENGTH_DEV, false);
    }

    /** Flux-schnell conditioning: T5 padded to 256, as BFL. */
    public static TextConditioning schnell(T5Tokenizer t5Tokenizer, T5Encoder t5, ClipTokenizer clipTokenizer, ClipTextModel clip) {
        return new TextConditioning(t5Tokenizer, t5, clipTokenizer, clip, T5_LENGTH_SCHNELL, false);
    }

    public T5Encoder t5() { return t5; }

    public ClipTextModel clip() { return clip; }

    /** One prompt: txt [1, N, 4096], y [1, 768]. */
    public Result encode(String prompt) { return encode(List.of(prompt)); }

    /** A batch of prompts: txt [B, N, 4096], y [B, 768]. */
    public Result encode(List<String> prompts) {
        if (prompts.isEmpty()) throw new IllegalArgumentException("encode needs at least one prompt");
        List<Encoding> t5Ids = t5Encodings(prompts);
        List<Encoding> clipIds = new ArrayList<>();
        for (String p : prompts) clipIds.add(clipTokenizer.encode(p, ClipTokenizer.DEFAULT_MAX_LENGTH, true, true));
        try (Scope scope = Scope.open()) {
            Tensor txt = t5.encode(t5Ids, false);                              // [B, N, 4096]
            ClipTextModel.Output c = clip.encode(clipIds, false);              // hidden [B, 77, 768], pooled [B, 768]
            c.hidden().close();
            return new Result(scope.keep(txt), scope.keep(c.pooled()));
        }
    }

    /** The T5 token ids of each prompt, as this conditioning pads and truncates them. */
    public List<Encoding> t5Encodings(List<String> prompts) {
        List<Encoding> out = new ArrayList<>();
        if (!growWithPrompt) {
            for (String p : prompts) out.add(t5Tokenizer.encode(p, t5Length, true, true));
            return out;
        }
        int len = t5Length;
        for (String p : prompts) len = Math.max(len, t5Tokenizer.encode(p, t5Length, false, false).ids().length);
        for (String p : prompts) out.add(t5Tokenizer.encode(p, len, true, false));
        return out;
    }
}
