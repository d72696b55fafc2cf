package org.dit4j.engine.wan;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.Encoding;
import org.dit4j.models.text.tokenizer.T5Tokenizer;

/**
 * Wan's text conditioning (models.md §2.7, diffusers {@code WanPipeline._get_t5_prompt_embeds}):
 * <ol>
 *   <li>clean the prompt ({@link #clean}): HTML entities unescaped twice, whitespace runs collapsed to one space, ends
 *       trimmed;</li>
 *   <li>tokenize to {@value #MAX_LENGTH} ids (truncated keeping the EOS, padded with id 0) with the attention mask;</li>
 *   <li>umT5 with the mask (padding keys get −∞);</li>
 *   <li>each sequence trimmed to its real length (mask sum, EOS included) and zero-padded back to
 *       {@value #MAX_LENGTH} rows: the padding rows of the result are exactly zero.</li>
 * </ol>
 * ftfy's {@code fix_text} (mojibake repair), which the reference applies first when ftfy is installed, is not
 * reproduced: it changes only text with encoding damage.
 */
public final class WanText {
    private WanText() {}

    /** umT5 tokens per prompt (diffusers' {@code max_sequence_length}, the reference's {@code text_len}). */
    public static final int MAX_LENGTH = 512;

    /** Wan2.1's {@code sample_neg_prompt}, used when no negative prompt is given (the Wan reference's behaviour). */
    public static final String DEFAULT_NEGATIVE_PROMPT = "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，"
            + "低质量，JPEG压缩残留，丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
            + "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走";

    private static final Pattern WHITESPACE = Pattern.compile("\\s+", Pattern.UNICODE_CHARACTER_CLASS);
    private static final Pattern ENTITY = Pattern.compile("&(#[0-9]+|#[xX][0-9a-fA-F]+|[a-zA-Z]+);");

    /** The reference's {@code prompt_clean} without ftfy: whitespace_clean(basic_clean(text)). */
    public static String clean(String text) {
        String t = unescape(unescape(text));
        t = strip(t);
        t = WHITESPACE.matcher(t).replaceAll(" ");
        return strip(t);
    }

    private static String strip(String s) {
        int a = 0, b = s.length();
        while (a < b && isSpace(s.codePointAt(a))) a += Character.charCount(s.codePointAt(a));
        while (b > a && isSpace(s.codePointBefore(b))) b -= Character.charCount(s.codePointBefore(b));
        return s.substring(a, b);
    }

    /** Python's str.isspace for one code point (Unicode whitespace, including U+00A0 and U+3000). */
    private static boolean isSpace(int cp) {
        return Character.isWhitespace(cp) || Character.isSpaceChar(cp) || cp == 0x1C || cp == 0x1D || cp == 0x1E || cp == 0x1F
                || cp == 0x85;
    }

    /**
     * Python's {@code html.unescape} for numeric references and the common named ones (amp, lt, gt, quot, apos, nbsp);
     * other names are left as they are.
     */
    static String unescape(String s) {
        if (s.indexOf('&') < 0) return s;
        Matcher m = ENTITY.matcher(s);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String e = m.group(1), rep = null;
            if (e.startsWith("#")) {
                try {
                    int cp = e.length() > 1 && (e.charAt(1) == 'x' || e.charAt(1) == 'X') ? Integer.parseInt(e.substring(2), 16)
                            : Integer.parseInt(e.substring(1));
                    rep = cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) ? "\uFFFD" : new String(Character.toChars(cp));
                } catch (NumberFormatException tooLarge) {
                    rep = "\uFFFD";
                }
            } else {
                rep = switch (e) {
                    case "amp" -> "&";
                    case "lt" -> "<";
                    case "gt" -> ">";
                    case "quot" -> "\"";
                    case "apos" -> "'";
                    case "nbsp" -> "\u00A0";
                    default -> null;
                };
            }
            m.appendReplacement(out, Matcher.quoteReplacement(rep != null ? rep : m.group()));
        }
        m.appendTail(out);
        return out.toString();
    }

    /** Tokenizes cleaned prompts to {@code maxLength} ids with the attention mask. */
    public static List<Encoding> tokenize(T5Tokenizer tokenizer, List<String> prompts, int maxLength) {
        List<Encoding> out = new ArrayList<>();
        for (String p : prompts) out.add(tokenizer.encode(clean(p == null ? "" : p), maxLength, true, true));
        return out;
    }

    /**
     * The context rows the transformer reads: umT5 states [B, maxLength, D] in {@code dtype}, rows past each prompt's
     * real length set to zero. Owned by the caller.
     */
    public static Tensor encode(Ops ops, T5Tokenizer tokenizer, T5Encoder t5, List<String> prompts, int maxLength, DType dtype) {
        List<Encoding> enc = tokenize(tokenizer, prompts, maxLength);
        try (Scope s = Scope.open()) {
            Tensor h = t5.encode(enc, true);                                              // [B, L, D]
            return s.keep(trimAndPad(ops, h, enc, dtype));
        }
    }

    /** h [B, L, D] with the rows at and after each encoding's real length set to zero, in {@code dtype}. */
    public static Tensor trimAndPad(Ops ops, Tensor h, List<Encoding> enc, DType dtype) {
        int b = Math.toIntExact(h.dim(0)), len = Math.toIntExact(h.dim(1));
        if (enc.size() != b) throw new IllegalArgumentException(enc.size() + " encodings for a batch of " + b);
        float[] keep = new float[b * len];
        for (int i = 0; i < b; i++) {
            int n = enc.get(i).length();
            if (enc.get(i).ids().length != len)
                throw new IllegalArgumentException("encoding " + i + " has " + enc.get(i).ids().length + " ids, the states " + len + " rows");
            for (int j = 0; j < n; j++) keep[i * len + j] = 1f;
        }
        try (Scope s = Scope.open()) {
            Tensor mask = ops.upload(Tensor.of(keep, b, len, 1));
            Tensor x = h.dtype() == DType.F32 ? h : ops.cast(h, DType.F32);
            // a product with 0 is ±0; adding +0 turns −0 into +0, so the padding rows are exactly the zeros diffusers writes
            Tensor zeroed = ops.add(ops.mul(x, mask), ops.scale(mask, 0f));
            return s.keep(zeroed.dtype() == dtype ? ops.copy(zeroed) : ops.cast(zeroed, dtype));
        }
    }
}
