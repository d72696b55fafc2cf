package org.dit4j.models.text.tokenizer;

import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The SentencePiece Unigram tokenizer of T5-v1.1-XXL (Flux, 512 tokens for dev/Kontext, 256 for schnell) and
 * umT5-XXL (Wan), exact against the reference that reads the same file:
 * <ul>
 *   <li>{@link #fromTokenizerJson} — Hugging Face {@code tokenizers} (diffusers' {@code T5TokenizerFast}):
 *       split out the added tokens ({@code <pad>}, {@code </s>}, {@code <unk>}, {@code <extra_id_N>}); run the
 *       normalizer (T5: {@code Precompiled} charsmap, {@code Strip} right, {@code Replace(" {2,}" → "▁")}); the
 *       pre-tokenizer ({@code Metaspace} "▁" with its prepend scheme, words split at "▁"); Unigram Viterbi on each
 *       word; the post-processor template (T5: {@code $A </s>}).</li>
 *   <li>{@link #fromSentencePiece} — the {@code sentencepiece} library on {@code spiece.model} (ComfyUI's umT5
 *       tokenizer, embedded as {@code spiece_model}): SentencePiece normalization, Viterbi over the whole text,
 *       {@code </s>} appended. Special-token text is not split out (SentencePiece does not).</li>
 * </ul>
 * {@link #encode} truncates keeping the EOS and pads on the right with the pad id (0 for T5/umT5), mask 0.
 *
 * <p>Supported {@code tokenizer.json} parts: normalizers Sequence, Precompiled, Strip, Replace (string or regex),
 * NFC/NFD/NFKC/NFKD, Lowercase, Prepend; pre-tokenizers Sequence, Metaspace, WhitespaceSplit; post-processor
 * TemplateProcessing. Anything else is refused with an error naming it. Added tokens are matched in the raw
 * text (the {@code normalized} flag is not honoured; T5's are all {@code normalized: false}).
 */
public final class T5Tokenizer {
    public static final int FLUX_DEV_MAX_LENGTH = 512;
    public static final int FLUX_SCHNELL_MAX_LENGTH = 256;

    private final Unigram model;
    private final Pipeline pipeline;
    private final int[] prefixIds;
    private final int[] suffixIds;
    private final int eosId;
    private final int padId;
    private final String source;

    private T5Tokenizer(Unigram model, Pipeline pipeline, int[] prefixIds, int[] suffixIds, int eosId, int padId, String source) {
        this.model = model;
        this.pipeline = pipeline;
        this.prefixIds = prefixIds;
        this.suffixIds = suffixIds;
        this.eosId = eosId;
        this.padId = padId;
        this.source = source;
    }

    // ------------------------------------------------------------------ loading

    /** A folder's {@code tokenizer.json} (what diffusers loads), else its {@code spiece.model}. */
    public static T5Tokenizer fromFolder(Path dir) {
        Path tj = dir.resolve("tokenizer.json"), sp = dir.resolve("spiece.model");
        if (Files.isRegularFile(tj)) return fromTokenizerJson(tj);
        if (Files.isRegularFile(sp)) return fromSentencePiece(sp);
        throw new TokenizerException("no T5 tokenizer in " + dir + ": expected tokenizer.json or spiece.model."
                + " Copy the tokenizer_2/ folder of the Flux model (or google/t5-v1_1-xxl's tokenizer files) there.");
    }

    public static T5Tokenizer fromSentencePiece(Path spieceModel) {
        return fromSentencePiece(Text.readBytes(spieceModel, "SentencePiece model (spiece.model)"), spieceModel.toString());
    }

    /** From the bytes of a serialized SentencePiece ModelProto (e.g. the {@code spiece_model} tensor of a ComfyUI umT5 file). */
    public static T5Tokenizer fromSentencePiece(byte[] modelProto, String source) {
        SentencePieceModel m = SentencePieceModel.parse(modelProto, source);
        if (m.modelType() != SentencePieceModel.UNIGRAM)
            throw new TokenizerException(source + ": the SentencePiece model type is " + modelTypeName(m.modelType())
                    + "; T5/umT5 tokenizers are UNIGRAM and only those are supported.");
        int n = m.pieces().size();
        String[] pieces = new String[n];
        double[] scores = new double[n];
        int[] types = new int[n];
        int unk = -1;
        for (int i = 0; i < n; i++) {
            SentencePieceModel.Piece p = m.pieces().get(i);
            pieces[i] = p.piece();
            scores[i] = p.score();
            types[i] = p.type();
            if (p.type() == SentencePieceModel.UNKNOWN && unk < 0) unk = i;
        }
        if (unk < 0)
            throw new TokenizerException(source + ": the SentencePiece model has no UNKNOWN piece; the file is corrupt.");
        if (m.eosId() < 0 || m.eosId() >= n)
            throw new TokenizerException(source + ": the SentencePiece model has no end-of-sequence piece (eos_id = "
                    + m.eosId() + "); T5 needs </s>.");
        Unigram u = new Unigram(Unigram.Flavor.SENTENCEPIECE, pieces, scores, types, unk, m.byteFallback(), source);
        SentencePieceNormalizer norm = new SentencePieceNormalizer(m, source);
        Pipeline p = (text, ids, pcs) -> u.encode(norm.normalize(text), ids, pcs);
        int pad = m.padId() >= 0 && m.padId() < n ? m.padId() : 0;
        return new T5Tokenizer(u, p, new int[0], new int[] {m.eosId()}, m.eosId(), pad, source);
    }

    private static String modelTypeName(int t) {
        return switch (t) {
            case SentencePieceModel.BPE -> "BPE";
            case SentencePieceModel.WORD -> "WORD";
            case SentencePieceModel.CHAR -> "CHAR";
            default -> "unknown (" + t + ")";
        };
    }

    public static T5Tokenizer fromTokenizerJson(Path tokenizerJson) {
        String src = tokenizerJson.toString();
        Map<String, Object> root = Json.asObject(Json.parse(Text.readUtf8(tokenizerJson, "T5 tokenizer.json"), src), "the file", src);
        Map<String, Object> model = Json.asObject(root.get("model"), "\"model\"", src);
        String type = Json.asString(model.get("type"), "model.type", src);
        if (!type.equals("Unigram"))
            throw new TokenizerException(src + ": model.type is \"" + type + "\"; a T5/umT5 tokenizer is \"Unigram\".");
        List<Object> vocab = Json.asArray(model.get("vocab"), "model.vocab", src);
        int n = vocab.size();
        String[] pieces = new String[n];
        double[] scores = new double[n];
        for (int i = 0; i < n; i++) {
            List<Object> e = Json.asArray(vocab.get(i), "model.vocab[" + i + "]", src);
            if (e.size() != 2) throw new TokenizerException(src + ": model.vocab[" + i + "] must be [piece, score], found " + e.size() + " elements.");
            pieces[i] = Json.asString(e.get(0), "model.vocab[" + i + "][0]", src);
            scores[i] = Json.asNumber(e.get(1), "model.vocab[" + i + "][1]", src);
        }
        if (model.get("unk_id") == null)
            throw new TokenizerException(src + ": model.unk_id is missing; dit4j needs the unknown-piece id of the Unigram model.");
        int unk = Json.asInt(model.get("unk_id"), "model.unk_id", src);
        boolean byteFallback = Json.asBoolean(model.get("byte_fallback"), false, "model.byte_fallback", src);
        Unigram u = new Unigram(Unigram.Flavor.HUGGING_FACE, pieces, scores, null, unk, byteFallback, src);

        List<AddedToken> added = new ArrayList<>();
        if (root.get("added_tokens") != null)
            for (Object o : Json.asArray(root.get("added_tokens"), "added_tokens", src)) {
                Map<String, Object> t = Json.asObject(o, "added_tokens[]", src);
                added.add(new AddedToken(Json.asString(t.get("content"), "added_tokens[].content", src),
                        Json.asInt(t.get("id"), "added_tokens[].id", src),
                        Json.asBoolean(t.get("lstrip"), false, "added_tokens[].lstrip", src),
                        Json.asBoolean(t.get("rstrip"), false, "added_tokens[].rstrip", src)));
            }
        Norm norm = root.get("normalizer") == null ? s -> s : parseNormalizer(root.get("normalizer"), "normalizer", src);
        PreTok pre = root.get("pre_tokenizer") == null ? (s, first) -> s.isEmpty() ? List.of() : List.of(s)
                : parsePreTokenizer(root.get("pre_tokenizer"), "pre_tokenizer", src);

        int[][] template = parseTemplate(root.get("post_processor"), src);
        Integer eos = tokenId("</s>", added, u);
        Integer pad = tokenId("<pad>", added, u);
        Pipeline p = (text, ids, pcs) -> {
            int start = 0;
            int i = 0;
            while (i <= text.length()) {
                Match m = i < text.length() ? matchAdded(text, i, added) : null;
                if (m == null && i < text.length()) { i++; continue; }
                int segEnd = m == null ? text.length() : m.start;
                if (segEnd > start) {
                    String normalized = norm.apply(text.substring(start, segEnd));
                    for (String word : pre.split(normalized, start == 0)) u.encode(word, ids, pcs);
                }
                if (m == null) break;
                ids.add(m.token.id);
                if (pcs != null) pcs.add(m.token.content);
                i = start = m.end;
            }
        };
        return new T5Tokenizer(u, p, template[0], template[1], eos == null ? -1 : eos, pad == null ? 0 : pad, src);
    }

    private static Integer tokenId(String content, List<AddedToken> added, Unigram u) {
        for (AddedToken t : added) if (t.content.equals(content)) return t.id;
        return u.id(content);
    }

    // ------------------------------------------------------------------ encoding

    public int eosId() { return eosId; }
    public int padId() { return padId; }
    public int unkId() { return model.unkId(); }
    public int vocabSize() { return model.size(); }

    /** Flux-dev/Kontext default: 512 ids, truncated, padded. */
    public Encoding encode(String text) {
        return encode(text, FLUX_DEV_MAX_LENGTH, true, true);
    }

    /**
     * Tokens + EOS (the post-processor's specials). With {@code truncate}, tokens are cut so that the whole is at most
     * {@code maxLength} (the EOS is kept); with {@code pad}, pad ids (mask 0) fill up to {@code maxLength}.
     */
    public Encoding encode(String text, int maxLength, boolean pad, boolean truncate) {
        int specials = prefixIds.length + suffixIds.length;
        if (maxLength < specials && (pad || truncate))
            throw new IllegalArgumentException("maxLength must be at least " + specials + " (the special tokens), got " + maxLength);
        int[] content = encodeIds(text);
        int n = content.length;
        if (truncate && n > maxLength - specials) n = maxLength - specials;
        int[] ids = new int[n + specials];
        System.arraycopy(prefixIds, 0, ids, 0, prefixIds.length);
        System.arraycopy(content, 0, ids, prefixIds.length, n);
        System.arraycopy(suffixIds, 0, ids, prefixIds.length + n, suffixIds.length);
        return Encoding.of(ids, maxLength, pad, padId);
    }

    /** The prompt's token ids without special tokens, untruncated. */
    public int[] encodeIds(String text) {
        List<Integer> ids = new ArrayList<>();
        pipeline.run(text, ids, null);
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The prompt's pieces (an unknown run is one piece, before any byte fallback). */
    public List<String> tokenize(String text) {
        List<String> pcs = new ArrayList<>();
        pipeline.run(text, new ArrayList<>(), pcs);
        return pcs;
    }

    /** The same tokenizer padding with {@code padId}. */
    public T5Tokenizer withPadId(int id) {
        return new T5Tokenizer(model, pipeline, prefixIds, suffixIds, eosId, id, source);
    }

    @Override
    public String toString() {
        return "T5Tokenizer[" + source + ", " + model.size() + " pieces]";
    }

    // ------------------------------------------------------------------ tokenizer.json pipeline parts

    private interface Pipeline { void run(String text, List<Integer> ids, List<String> pieces); }
    private interface Norm { String apply(String s); }
    /** Splits normalized text into words; {@code atStart}: the text begins at offset 0 of the input. */
    private interface PreTok { List<String> split(String s, boolean atStart); }

    private record AddedToken(String content, int id, boolean lstrip, boolean rstrip) {}
    private record Match(int start, int end, AddedToken token) {}

    /** The longest added token starting at {@code i}, widened over whitespace by its lstrip/rstrip flags. */
    private static Match matchAdded(String text, int i, List<AddedToken> added) {
        AddedToken best = null;
        for (AddedToken t : added)
            if (!t.content.isEmpty() && text.startsWith(t.content, i) && (best == null || t.content.length() > best.content.length())) best = t;
        if (best == null) return null;
        int s = i, e = i + best.content.length();
        if (best.lstrip) while (s > 0 && Text.isWhiteSpace(text.charAt(s - 1))) s--;
        if (best.rstrip) while (e < text.length() && Text.isWhiteSpace(text.charAt(e))) e++;
        return new Match(s, e, best);
    }

    private static Norm parseNormalizer(Object o, String where, String src) {
        Map<String, Object> m = Json.asObject(o, where, src);
        String type = Json.asString(m.get("type"), where + ".type", src);
        switch (type) {
            case "Sequence" -> {
                List<Object> list = Json.asArray(m.get("normalizers"), where + ".normalizers", src);
                List<Norm> parts = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) parts.add(parseNormalizer(list.get(i), where + ".normalizers[" + i + "]", src));
                return s -> {
                    for (Norm p : parts) s = p.apply(s);
                    return s;
                };
            }
            case "Precompiled" -> {
                Object b64 = m.get("precompiled_charsmap");
                if (b64 == null || (b64 instanceof String s && s.isEmpty())) return s -> s;
                byte[] blob;
                try {
                    blob = Base64.getDecoder().decode(Json.asString(b64, where + ".precompiled_charsmap", src));
                } catch (IllegalArgumentException e) {
                    throw new TokenizerException(src + ": " + where + ".precompiled_charsmap is not valid base64; the file is corrupt.", e);
                }
                PrecompiledCharsMap map = new PrecompiledCharsMap(blob, src);
                return map::normalizeHuggingFace;
            }
            case "Strip" -> {
                boolean left = Json.asBoolean(m.get("strip_left"), false, where + ".strip_left", src);
                boolean right = Json.asBoolean(m.get("strip_right"), false, where + ".strip_right", src);
                return s -> strip(s, left, right);
            }
            case "Replace" -> {
                Map<String, Object> pat = Json.asObject(m.get("pattern"), where + ".pattern", src);
                String content = Json.asString(m.get("content"), where + ".content", src);
                if (pat.get("String") != null) {
                    String lit = Json.asString(pat.get("String"), where + ".pattern.String", src);
                    return s -> lit.isEmpty() ? s : s.replace(lit, content);
                }
                String regex = Json.asString(pat.get("Regex"), where + ".pattern.Regex", src);
                Pattern p;
                try {
                    p = Pattern.compile(regex, Pattern.UNICODE_CHARACTER_CLASS);
                } catch (RuntimeException e) {
                    throw new TokenizerException(src + ": " + where + ".pattern.Regex \"" + regex + "\" is not a regex dit4j can run.", e);
                }
                String repl = Matcher.quoteReplacement(content);
                return s -> p.matcher(s).replaceAll(repl);
            }
            case "NFC" -> { return s -> Normalizer.normalize(s, Normalizer.Form.NFC); }
            case "NFD" -> { return s -> Normalizer.normalize(s, Normalizer.Form.NFD); }
            case "NFKC" -> { return s -> Normalizer.normalize(s, Normalizer.Form.NFKC); }
            case "NFKD" -> { return s -> Normalizer.normalize(s, Normalizer.Form.NFKD); }
            case "Lowercase" -> {
                return s -> {
                    StringBuilder sb = new StringBuilder(s.length());
                    s.codePoints().forEach(cp -> sb.append(Text.lowerCodePoint(cp)));
                    return sb.toString();
                };
            }
            case "Prepend" -> {
                String pre = Json.asString(m.get("prepend"), where + ".prepend", src);
                return s -> s.isEmpty() ? s : pre + s;
            }
            default -> throw new TokenizerException(src + ": " + where + " has type \"" + type + "\", which dit4j does not"
                    + " implement (supported: Sequence, Precompiled, Strip, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Prepend).");
        }
    }

    private static String strip(String s, boolean left, boolean right) {
        int a = 0, b = s.length();
        if (left) while (a < b && Text.isWhiteSpace(s.codePointAt(a))) a += Character.charCount(s.codePointAt(a));
        if (right) while (b > a && Text.isWhiteSpace(s.codePointBefore(b))) b -= Character.charCount(s.codePointBefore(b));
        return s.substring(a, b);
    }

    private static PreTok parsePreTokenizer(Object o, String where, String src) {
        Map<String, Object> m = Json.asObject(o, where, src);
        String type = Json.asString(m.get("type"), where + ".type", src);
        switch (type) {
            case "Sequence" -> {
                List<Object> list = Json.asArray(m.get("pretokenizers"), where + ".pretokenizers", src);
                List<PreTok> parts = new ArrayList<>();
                for (int i = 0; i < list.size(); i++) parts.add(parsePreTokenizer(list.get(i), where + ".pretokenizers[" + i + "]", src));
                return (s, atStart) -> {
                    List<String> cur = s.isEmpty() ? List.of() : List.of(s);
                    List<Boolean> starts = List.of(atStart);
                    for (PreTok p : parts) {
                        List<String> next = new ArrayList<>();
                        List<Boolean> nextStarts = new ArrayList<>();
                        for (int k = 0; k < cur.size(); k++) {
                            List<String> sub = p.split(cur.get(k), starts.get(k));
                            for (int j = 0; j < sub.size(); j++) {
                                next.add(sub.get(j));
                                nextStarts.add(starts.get(k) && j == 0 && startsTogether(cur.get(k), sub.get(j)));
                            }
                        }
                        cur = next;
                        starts = nextStarts;
                    }
                    return cur;
                };
            }
            case "WhitespaceSplit" -> {
                return (s, atStart) -> {
                    List<String> out = new ArrayList<>();
                    int i = 0, n = s.length();
                    while (i < n) {
                        while (i < n && Text.isWhiteSpace(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
                        int st = i;
                        while (i < n && !Text.isWhiteSpace(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
                        if (i > st) out.add(s.substring(st, i));
                    }
                    return out;
                };
            }
            case "Metaspace" -> {
                String rep = Json.asString(m.get("replacement"), where + ".replacement", src);
                if (rep.codePointCount(0, rep.length()) != 1)
                    throw new TokenizerException(src + ": " + where + ".replacement must be one character, found \"" + rep + "\".");
                String scheme;
                if (m.get("prepend_scheme") != null) scheme = Json.asString(m.get("prepend_scheme"), where + ".prepend_scheme", src).toLowerCase(Locale.ROOT);
                else scheme = Json.asBoolean(m.get("add_prefix_space"), true, where + ".add_prefix_space", src) ? "always" : "never";
                if (!scheme.equals("always") && !scheme.equals("first") && !scheme.equals("never"))
                    throw new TokenizerException(src + ": " + where + ".prepend_scheme \"" + scheme + "\" is not always/first/never.");
                boolean split = Json.asBoolean(m.get("split"), true, where + ".split", src);
                String sch = scheme;
                return (s, atStart) -> {
                    if (s.isEmpty()) return List.of();
                    String t = s.replace(" ", rep);
                    boolean prepend = sch.equals("always") || (sch.equals("first") && atStart);
                    if (prepend && !t.startsWith(rep)) t = rep + t;
                    if (!split) return List.of(t);
                    List<String> out = new ArrayList<>();
                    int st = 0;
                    for (int i = t.indexOf(rep, 1); i >= 0; i = t.indexOf(rep, i + rep.length())) {
                        if (i > st) out.add(t.substring(st, i));
                        st = i;
                    }
                    if (st < t.length()) out.add(t.substring(st));
                    return out;
                };
            }
            default -> throw new TokenizerException(src + ": " + where + " has type \"" + type + "\", which dit4j does not"
                    + " implement (supported: Sequence, Metaspace, WhitespaceSplit).");
        }
    }

    /** Whether {@code piece}, the first split of {@code whole}, starts at the beginning of it (nothing dropped before it). */
    private static boolean startsTogether(String whole, String piece) {
        return !whole.isEmpty() && !Text.isWhiteSpace(whole.codePointAt(0));
    }

    /** The ids the post-processor puts before and after the sequence ($A); T5: none before, {@code </s>} after. */
    private static int[][] parseTemplate(Object o, String src) {
        if (o == null) return new int[][] {new int[0], new int[0]};
        Map<String, Object> m = Json.asObject(o, "post_processor", src);
        String type = Json.asString(m.get("type"), "post_processor.type", src);
        if (!type.equals("TemplateProcessing"))
            throw new TokenizerException(src + ": post_processor has type \"" + type + "\"; dit4j implements TemplateProcessing for T5.");
        Map<String, Object> specials = m.get("special_tokens") == null ? Map.of()
                : Json.asObject(m.get("special_tokens"), "post_processor.special_tokens", src);
        List<Integer> before = new ArrayList<>(), after = new ArrayList<>();
        boolean seenSeq = false;
        for (Object item : Json.asArray(m.get("single"), "post_processor.single", src)) {
            Map<String, Object> it = Json.asObject(item, "post_processor.single[]", src);
            if (it.containsKey("Sequence")) { seenSeq = true; continue; }
            Map<String, Object> st = Json.asObject(it.get("SpecialToken"), "post_processor.single[].SpecialToken", src);
            String name = Json.asString(st.get("id"), "post_processor.single[].SpecialToken.id", src);
            Map<String, Object> def = Json.asObject(specials.get(name), "post_processor.special_tokens[\"" + name + "\"]", src);
            for (Object id : Json.asArray(def.get("ids"), "post_processor.special_tokens[\"" + name + "\"].ids", src))
                (seenSeq ? after : before).add(Json.asInt(id, "special token id", src));
        }
        return new int[][] {before.stream().mapToInt(Integer::intValue).toArray(), after.stream().mapToInt(Integer::intValue).toArray()};
    }
}
