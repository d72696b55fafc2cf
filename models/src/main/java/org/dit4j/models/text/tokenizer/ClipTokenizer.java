package org.dit4j.models.text.tokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * CLIP's text tokenizer: byte-level BPE with {@code </w>} word ends, exact against Hugging Face.
 *
 * <p>Pipeline: split out the special tokens written in the text ({@code <|startoftext|>}, {@code <|endoftext|>});
 * clean each remaining chunk ({@link Cleaning}); cut it into words with CLIP's pattern
 * {@code <|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+} (case-insensitive);
 * map each word's UTF-8 bytes to the printable "byte-to-unicode" alphabet; apply the BPE merges by rank (lowest
 * first, all occurrences left to right, the last symbol carrying {@code </w>}); look the pieces up in the vocabulary
 * (unknown → the unk id, {@code <|endoftext|>}). {@link #encode} adds BOS 49406 / EOS 49407, truncates to
 * {@code maxLength} (default 77) keeping the EOS, and pads on the right with the pad token (Flux and the
 * openai/clip-vit-large-patch14 configs use {@code <|endoftext|>} = 49407; diffusers pads with
 * {@code padding="max_length"}).
 */
public final class ClipTokenizer {
    public static final int DEFAULT_MAX_LENGTH = 77;
    public static final String BOS = "<|startoftext|>";
    public static final String EOS = "<|endoftext|>";
    private static final String SUFFIX = "</w>";
    /** The slow HF tokenizer reads merges.txt lines 1 .. 49152-256-2 (at most 48894 merges) and ignores the rest. */
    private static final int SLOW_MAX_MERGES = 49152 - 256 - 2;

    /** How raw text is cleaned before the word pattern runs. The two differ only on rare input; see each constant. */
    public enum Cleaning {
        /**
         * transformers' Python {@code CLIPTokenizer} (transformers ≤ 4.x, without ftfy installed — its
         * {@code BasicTokenizer(strip_accents=False, do_split_on_punc=False)} path): drop U+0000, U+FFFD and
         * control/format characters (category C except tab/LF/CR), turn whitespace into spaces, put spaces around
         * CJK ideographs (so each ideograph is its own word), NFC, split on whitespace, lower-case each word
         * (Python {@code str.lower}, with final sigma). This is what diffusers' Flux pipeline ran with transformers 4.
         */
        HF_SLOW,
        /**
         * Hugging Face {@code tokenizers} (CLIP's tokenizer.json, transformers' {@code CLIPTokenizerFast}, and
         * {@code CLIPTokenizer} in transformers 5): NFC, every run of whitespace → one space, per-character lower-case.
         * Differs from {@link #HF_SLOW} on CJK ideograph runs (kept as one word), control/format characters
         * (kept, e.g. the zero-width joiner in emoji sequences) and word-final capital sigma (σ, not ς).
         */
        HF_FAST
    }

    private final Map<String, Integer> vocab;
    private final Map<String, Integer> ranks;
    private final Cleaning cleaning;
    private final List<String> specialTokens;
    private final int bosId;
    private final int eosId;
    private final int unkId;
    private final int padId;
    private final String source;
    private final ConcurrentHashMap<String, String[]> cache = new ConcurrentHashMap<>();

    private ClipTokenizer(Map<String, Integer> vocab, Map<String, Integer> ranks, Cleaning cleaning,
                          List<String> extraSpecial, String padToken, String unkToken, String source) {
        this.vocab = vocab;
        this.ranks = ranks;
        this.cleaning = cleaning;
        this.source = source;
        this.bosId = requireToken(vocab, BOS, source);
        this.eosId = requireToken(vocab, EOS, source);
        this.unkId = requireToken(vocab, unkToken, source);
        this.padId = requireToken(vocab, padToken, source);
        List<String> sp = new ArrayList<>(List.of(BOS, EOS));
        for (String s : extraSpecial) if (!sp.contains(s) && vocab.containsKey(s)) sp.add(s);
        if (!sp.contains(padToken)) sp.add(padToken);
        if (!sp.contains(unkToken)) sp.add(unkToken);
        this.specialTokens = List.copyOf(sp);
    }

    private static int requireToken(Map<String, Integer> vocab, String token, String source) {
        Integer id = vocab.get(token);
        if (id == null)
            throw new TokenizerException(source + ": the vocabulary has no token \"" + token + "\"; this is not a CLIP"
                    + " vocabulary (expected <|startoftext|> = 49406 and <|endoftext|> = 49407).");
        return id;
    }

    // ------------------------------------------------------------------ loading

    /**
     * Loads the tokenizer of a folder: {@code vocab.json} + {@code merges.txt} (cleaned as {@link Cleaning#HF_FAST}, what transformers ≥ 5 does for CLIPTokenizer),
     * else {@code tokenizer.json} ({@link Cleaning#HF_FAST}). The pad token comes from {@code special_tokens_map.json}
     * or {@code tokenizer_config.json} when present, else {@code <|endoftext|>}.
     */
    public static ClipTokenizer fromFolder(Path dir) {
        Path vocab = dir.resolve("vocab.json"), merges = dir.resolve("merges.txt"), tj = dir.resolve("tokenizer.json");
        String pad = padTokenOf(dir);
        if (Files.isRegularFile(vocab) && Files.isRegularFile(merges))
            return fromVocabAndMerges(vocab, merges, Cleaning.HF_FAST, pad);
        if (Files.isRegularFile(tj)) return fromTokenizerJson(tj, pad);
        throw new TokenizerException("no CLIP tokenizer in " + dir + ": expected vocab.json + merges.txt, or tokenizer.json."
                + " Copy the tokenizer/ folder of the model (e.g. openai/clip-vit-large-patch14) there.");
    }

    /** Loads {@code vocab.json} + {@code merges.txt}, pad token {@code <|endoftext|>}, {@link Cleaning#HF_FAST} (transformers ≥ 5 behaviour). */
    public static ClipTokenizer fromVocabAndMerges(Path vocabJson, Path mergesTxt) {
        return fromVocabAndMerges(vocabJson, mergesTxt, Cleaning.HF_FAST, EOS);
    }

    public static ClipTokenizer fromVocabAndMerges(Path vocabJson, Path mergesTxt, Cleaning cleaning, String padToken) {
        String vsrc = vocabJson.toString();
        Map<String, Object> obj = Json.asObject(Json.parse(Text.readUtf8(vocabJson, "CLIP vocabulary (vocab.json)"), vsrc),
                "the vocabulary", vsrc);
        Map<String, Integer> vocab = readVocab(obj, vsrc);
        String mtext = Text.readUtf8(mergesTxt, "CLIP BPE merges (merges.txt)");
        // As transformers' slow tokenizer: strip, split on '\n', skip the first line (the "#version" header).
        String[] lines = mtext.strip().split("\n", -1);
        List<String[]> merges = new ArrayList<>();
        for (int i = 1; i < lines.length && merges.size() < SLOW_MAX_MERGES; i++) {
            String[] parts = lines[i].trim().split("\\s+");
            if (parts.length != 2 || parts[0].isEmpty())
                throw new TokenizerException(mergesTxt + " line " + (i + 1) + ": expected two symbols separated by a space, found \""
                        + lines[i] + "\". The merges file is corrupt; download it again.");
            merges.add(parts);
        }
        if (merges.isEmpty())
            throw new TokenizerException(mergesTxt + " holds no merges (expected a \"#version\" line and then one \"a b\" pair per line).");
        return new ClipTokenizer(vocab, rankMap(merges), cleaning, List.of(), padToken, EOS, vocabJson.getParent() + "/{vocab.json,merges.txt}");
    }

    /** Loads a Hugging Face fast-tokenizer file of CLIP (BPE model, {@code </w>} suffix), {@link Cleaning#HF_FAST}. */
    public static ClipTokenizer fromTokenizerJson(Path tokenizerJson, String padToken) {
        String src = tokenizerJson.toString();
        Map<String, Object> root = Json.asObject(Json.parse(Text.readUtf8(tokenizerJson, "CLIP tokenizer.json"), src), "the file", src);
        Map<String, Object> model = Json.asObject(root.get("model"), "\"model\"", src);
        String type = model.get("type") == null ? "BPE" : Json.asString(model.get("type"), "model.type", src);
        if (!type.equals("BPE"))
            throw new TokenizerException(src + ": model.type is \"" + type + "\", a CLIP tokenizer needs \"BPE\".");
        Object suffix = model.get("end_of_word_suffix");
        if (!SUFFIX.equals(suffix))
            throw new TokenizerException(src + ": model.end_of_word_suffix is " + Json.describe(suffix)
                    + ", CLIP's BPE needs \"</w>\"; this is not a CLIP tokenizer.");
        Map<String, Integer> vocab = readVocab(Json.asObject(model.get("vocab"), "model.vocab", src), src);
        List<String[]> merges = new ArrayList<>();
        List<Object> ml = Json.asArray(model.get("merges"), "model.merges", src);
        for (int i = 0; i < ml.size(); i++) {
            Object m = ml.get(i);
            String[] pair;
            if (m instanceof String s) pair = s.split(" ", -1);
            else {
                List<Object> l = Json.asArray(m, "model.merges[" + i + "]", src);
                pair = new String[l.size()];
                for (int k = 0; k < pair.length; k++) pair[k] = Json.asString(l.get(k), "model.merges[" + i + "]", src);
            }
            if (pair.length != 2)
                throw new TokenizerException(src + ": model.merges[" + i + "] is not a pair of symbols: " + Json.describe(m));
            merges.add(pair);
        }
        String unk = model.get("unk_token") == null ? EOS : Json.asString(model.get("unk_token"), "model.unk_token", src);
        List<String> extra = new ArrayList<>();
        if (root.get("added_tokens") != null)
            for (Object o : Json.asArray(root.get("added_tokens"), "added_tokens", src)) {
                Map<String, Object> t = Json.asObject(o, "added_tokens[]", src);
                extra.add(Json.asString(t.get("content"), "added_tokens[].content", src));
            }
        return new ClipTokenizer(vocab, rankMap(merges), Cleaning.HF_FAST, extra, padToken == null ? EOS : padToken, unk, src);
    }

    /** The same vocabulary and merges with another cleaning mode. */
    public ClipTokenizer withCleaning(Cleaning c) {
        return new ClipTokenizer(vocab, ranks, c, specialTokens, tokenOf(padId), tokenOf(unkId), source);
    }

    /** The same tokenizer padding with {@code padToken} (must be in the vocabulary). */
    public ClipTokenizer withPadToken(String padToken) {
        return new ClipTokenizer(vocab, ranks, cleaning, specialTokens, padToken, tokenOf(unkId), source);
    }

    private String tokenOf(int id) {
        for (Map.Entry<String, Integer> e : vocab.entrySet()) if (e.getValue() == id) return e.getKey();
        throw new IllegalStateException("id " + id + " not in vocabulary");
    }

    private static Map<String, Integer> readVocab(Map<String, Object> obj, String src) {
        Map<String, Integer> vocab = new HashMap<>(obj.size() * 2);
        for (Map.Entry<String, Object> e : obj.entrySet())
            vocab.put(e.getKey(), Json.asInt(e.getValue(), "the id of token \"" + e.getKey() + "\"", src));
        return vocab;
    }

    private static Map<String, Integer> rankMap(List<String[]> merges) {
        Map<String, Integer> r = new HashMap<>(merges.size() * 2);
        for (int i = 0; i < merges.size(); i++) r.putIfAbsent(merges.get(i)[0] + " " + merges.get(i)[1], i);
        return r;
    }

    /** The pad token named in a folder's special_tokens_map.json or tokenizer_config.json, else {@code <|endoftext|>}. */
    static String padTokenOf(Path dir) {
        for (String name : new String[] {"special_tokens_map.json", "tokenizer_config.json"}) {
            Path f = dir.resolve(name);
            if (!Files.isRegularFile(f)) continue;
            Map<String, Object> o = Json.asObject(Json.parse(Text.readUtf8(f, name), f.toString()), "the file", f.toString());
            Object p = o.get("pad_token");
            if (p instanceof String s) return s;
            if (p instanceof Map<?, ?> m && m.get("content") instanceof String s) return s;
        }
        return EOS;
    }

    // ------------------------------------------------------------------ encoding

    public Cleaning cleaning() { return cleaning; }
    public int bosId() { return bosId; }
    public int eosId() { return eosId; }
    public int padId() { return padId; }
    public int unkId() { return unkId; }
    public int vocabSize() { return vocab.size(); }

    /** 77 ids: BOS, the prompt's tokens (truncated to 75), EOS, padding — what diffusers passes to the CLIP text model. */
    public Encoding encode(String text) {
        return encode(text, DEFAULT_MAX_LENGTH, true, true);
    }

    /**
     * BOS + tokens + EOS. With {@code truncate}, tokens are cut so that the whole is at most {@code maxLength}
     * (the EOS is kept); with {@code pad}, padding ids (mask 0) fill up to {@code maxLength}.
     */
    public Encoding encode(String text, int maxLength, boolean pad, boolean truncate) {
        if (maxLength < 2 && (pad || truncate))
            throw new IllegalArgumentException("maxLength must be at least 2 (BOS and EOS), got " + maxLength);
        int[] content = encodeIds(text);
        int n = content.length;
        if (truncate && n > maxLength - 2) n = maxLength - 2;
        int[] ids = new int[n + 2];
        ids[0] = bosId;
        System.arraycopy(content, 0, ids, 1, n);
        ids[n + 1] = eosId;
        return Encoding.of(ids, maxLength, pad, padId);
    }

    /** The prompt's token ids without BOS/EOS, untruncated. */
    public int[] encodeIds(String text) {
        List<String> pieces = tokenize(text);
        int[] ids = new int[pieces.size()];
        for (int i = 0; i < ids.length; i++) ids[i] = vocab.getOrDefault(pieces.get(i), unkId);
        return ids;
    }

    /** The prompt's BPE pieces (byte-level alphabet, {@code </w>} on word ends), special tokens kept whole. */
    public List<String> tokenize(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            String special = specialAt(text, i);
            if (special == null) { i++; continue; }
            if (i > start) tokenizeChunk(text.substring(start, i), out);
            out.add(special);
            i += special.length();
            start = i;
        }
        if (start < text.length()) tokenizeChunk(text.substring(start), out);
        return out;
    }

    /** The longest special token starting at {@code i} (exact, case-sensitive), or null. */
    private String specialAt(String text, int i) {
        String best = null;
        for (String s : specialTokens)
            if (text.startsWith(s, i) && (best == null || s.length() > best.length())) best = s;
        return best;
    }

    private void tokenizeChunk(String chunk, List<String> out) {
        String clean = cleaning == Cleaning.HF_SLOW ? cleanSlow(chunk) : cleanFast(chunk);
        for (String word : words(clean)) {
            if (cleaning == Cleaning.HF_SLOW) {
                if (word.equals(BOS) || word.equals(EOS)) out.add(word); // the slow BPE cache maps these to themselves
                else out.addAll(Arrays.asList(bpe(ByteLevel.encode(word))));
            } else {
                // tokenizers' ByteLevel pre-tokenizer (use_regex=true) splits each word again with GPT-2's pattern;
                // of CLIP's words only a spelled-out special token ("<|startoftext|>" → "<|", "startoftext", "|>") changes.
                for (String w : gpt2Split(word)) out.addAll(Arrays.asList(bpe(ByteLevel.encode(w))));
            }
        }
    }

    private static final String[] GPT2_CONTRACTIONS = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

    /** GPT-2's pattern ('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|…) on a word without whitespace. */
    static List<String> gpt2Split(String s) {
        List<String> out = new ArrayList<>(2);
        int n = s.length();
        int i = 0;
        outer:
        while (i < n) {
            for (String c : GPT2_CONTRACTIONS)
                if (s.startsWith(c, i)) {
                    out.add(c);
                    i += c.length();
                    continue outer;
                }
            int start = i;
            int cp = s.codePointAt(i);
            int cls = Text.isLetter(cp) ? 0 : Text.isNumber(cp) ? 1 : 2;
            while (i < n) {
                int c = s.codePointAt(i);
                int k = Text.isLetter(c) ? 0 : Text.isNumber(c) ? 1 : 2;
                if (k != cls || (i > start && Text.isWhiteSpace(c))) break;
                i += Character.charCount(c);
            }
            out.add(s.substring(start, i));
        }
        return out;
    }

    /** transformers' BasicTokenizer(strip_accents=False, do_split_on_punc=False) + lower-casing, words joined by ' '. */
    static String cleanSlow(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 8);
        text.codePoints().forEach(cp -> {
            if (cp == 0 || cp == 0xFFFD) return;
            boolean ws = cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || Character.getType(cp) == Character.SPACE_SEPARATOR;
            if (!ws && Text.isOther(cp)) return;
            if (ws) sb.append(' ');
            else if (isCjkIdeograph(cp)) sb.append(' ').appendCodePoint(cp).append(' ');
            else sb.appendCodePoint(cp);
        });
        String nfc = Normalizer.normalize(sb, Normalizer.Form.NFC);
        StringBuilder out = new StringBuilder(nfc.length());
        int i = 0, n = nfc.length();
        while (i < n) {
            while (i < n && Text.isPythonSpace(nfc.codePointAt(i))) i += Character.charCount(nfc.codePointAt(i));
            int s = i;
            while (i < n && !Text.isPythonSpace(nfc.codePointAt(i))) i += Character.charCount(nfc.codePointAt(i));
            if (i > s) {
                if (!out.isEmpty()) out.append(' ');
                out.append(nfc.substring(s, i).toLowerCase(Locale.ROOT));
            }
        }
        return out.toString();
    }

    /** tokenizers' normalizer Sequence[NFC, Replace(\s+ → " "), Lowercase]. */
    static String cleanFast(String text) {
        String nfc = Normalizer.normalize(text, Normalizer.Form.NFC);
        StringBuilder sb = new StringBuilder(nfc.length());
        boolean inSpace = false;
        for (int i = 0; i < nfc.length(); ) {
            int cp = nfc.codePointAt(i);
            i += Character.charCount(cp);
            if (Text.isWhiteSpace(cp)) {
                if (!inSpace) sb.append(' ');
                inSpace = true;
            } else {
                inSpace = false;
                sb.append(Text.lowerCodePoint(cp));
            }
        }
        return sb.toString();
    }

    /** The CJK ideograph blocks of transformers' BasicTokenizer._is_chinese_char. */
    static boolean isCjkIdeograph(int cp) {
        return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF)
                || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
    }

    private static final String[] CONTRACTIONS = {"s", "t", "re", "ve", "m", "ll", "d"};

    /** All matches of CLIP's word pattern, in order (case-insensitive, as compiled with re.IGNORECASE). */
    static List<String> words(String s) {
        List<String> out = new ArrayList<>();
        int n = s.length();
        int i = 0;
        outer:
        while (i < n) {
            if (s.regionMatches(true, i, BOS, 0, BOS.length())) { out.add(s.substring(i, i + BOS.length())); i += BOS.length(); continue; }
            if (s.regionMatches(true, i, EOS, 0, EOS.length())) { out.add(s.substring(i, i + EOS.length())); i += EOS.length(); continue; }
            int cp = s.codePointAt(i);
            if (cp == '\'') {
                for (String c : CONTRACTIONS)
                    if (s.regionMatches(true, i + 1, c, 0, c.length())) {
                        out.add(s.substring(i, i + 1 + c.length()));
                        i += 1 + c.length();
                        continue outer;
                    }
            }
            int start = i;
            if (Text.isLetter(cp)) {
                while (i < n && Text.isLetter(s.codePointAt(i))) i += Character.charCount(s.codePointAt(i));
            } else if (Text.isNumber(cp)) {
                i += Character.charCount(cp);
            } else if (!Text.isWhiteSpace(cp)) {
                while (i < n) {
                    int c = s.codePointAt(i);
                    if (Text.isWhiteSpace(c) || Text.isLetter(c) || Text.isNumber(c)) break;
                    i += Character.charCount(c);
                }
            } else {
                i += Character.charCount(cp);
                continue;
            }
            out.add(s.substring(start, i));
        }
        return out;
    }

    /** BPE of one byte-encoded word: repeatedly merge every occurrence of the lowest-ranked adjacent pair. */
    String[] bpe(String word) {
        String[] cached = cache.get(word);
        if (cached != null) return cached;
        int len = word.codePointCount(0, word.length());
        List<String> syms = new ArrayList<>(len);
        for (int i = 0; i < word.length(); ) {
            int cp = word.codePointAt(i);
            syms.add(Character.toString(cp));
            i += Character.charCount(cp);
        }
        syms.set(syms.size() - 1, syms.get(syms.size() - 1) + SUFFIX);
        while (syms.size() > 1) {
            int bestRank = Integer.MAX_VALUE;
            String first = null, second = null;
            for (int k = 0; k + 1 < syms.size(); k++) {
                Integer r = ranks.get(syms.get(k) + " " + syms.get(k + 1));
                if (r != null && r < bestRank) { bestRank = r; first = syms.get(k); second = syms.get(k + 1); }
            }
            if (first == null) break;
            List<String> next = new ArrayList<>(syms.size());
            for (int k = 0; k < syms.size(); ) {
                if (k + 1 < syms.size() && syms.get(k).equals(first) && syms.get(k + 1).equals(second)) {
                    next.add(first + second);
                    k += 2;
                } else {
                    next.add(syms.get(k));
                    k++;
                }
            }
            syms = next;
        }
        String[] result = syms.toArray(new String[0]);
        if (cache.size() > 100_000) cache.clear();
        cache.put(word, result);
        return result;
    }

    /** GPT-2/CLIP byte-to-unicode table: every byte maps to a printable, non-space character. */
    static final class ByteLevel {
        private static final char[] TABLE = new char[256];

        static {
            int n = 0;
            for (int b = 0; b < 256; b++) {
                boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                TABLE[b] = printable ? (char) b : (char) (256 + n++);
            }
        }

        private ByteLevel() {}

        /** The printable character standing for byte {@code b}. */
        static char symbol(int b) { return TABLE[b]; }

        static String encode(String word) {
            byte[] bytes = word.getBytes(StandardCharsets.UTF_8);
            char[] out = new char[bytes.length];
            for (int i = 0; i < bytes.length; i++) out[i] = TABLE[bytes[i] & 0xFF];
            return new String(out);
        }

        static Map<Character, Integer> decodeTable() {
            Map<Character, Integer> m = new LinkedHashMap<>();
            for (int b = 0; b < 256; b++) m.put(TABLE[b], b);
            return m;
        }
    }

    /** Decodes ids back to text (byte-level decode, {@code </w>} → space, special tokens dropped); for diagnostics. */
    public String decode(int[] ids) {
        Map<Integer, String> inv = new HashMap<>(vocab.size() * 2);
        for (Map.Entry<String, Integer> e : vocab.entrySet()) inv.putIfAbsent(e.getValue(), e.getKey());
        Map<Character, Integer> dec = ByteLevel.decodeTable();
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        for (int id : ids) {
            String t = inv.get(id);
            if (t == null || specialTokens.contains(t)) continue;
            boolean end = t.endsWith(SUFFIX);
            if (end) t = t.substring(0, t.length() - SUFFIX.length());
            for (char c : t.toCharArray()) {
                Integer b = dec.get(c);
                if (b != null) bytes.write(b);
            }
            if (end) bytes.write(' ');
        }
        return bytes.toString(StandardCharsets.UTF_8).strip();
    }

    @Override
    public String toString() {
        return "ClipTokenizer[" + source + ", " + vocab.size() + " tokens, " + ranks.size() + " merges, " + cleaning + "]";
    }
}
