package org.dit4j.models.text.tokenizer;

import java.nio.charset.StandardCharsets;
import java.text.BreakIterator;
import java.util.Locale;

/**
 * SentencePiece's {@code precompiled_charsmap}: a Darts-clone double-array trie over UTF-8 byte strings whose
 * values point into a pool of NUL-terminated replacement strings (this is how T5's "nmt_nfkc" normalization
 * — NFKC plus control-character removal and whitespace mapping — is stored in spiece.model and tokenizer.json).
 *
 * <p>Blob layout: little-endian uint32 trie size in bytes, the trie units (uint32 each), then the string pool.
 * Two ways of applying it exist and differ on rare input (combining sequences):
 * {@link #normalizeSentencePiece} is SentencePiece's (longest rule matching at each byte position), and
 * {@link #normalizeHuggingFace} is the {@code Precompiled} normalizer of Hugging Face {@code tokenizers}
 * (per extended grapheme cluster: a cluster shorter than 6 UTF-8 bytes is replaced whole by the value of the
 * <em>shortest</em> rule matching its start, else each character is looked up alone).
 */
final class PrecompiledCharsMap {
    private final int[] units;
    private final byte[] pool;

    PrecompiledCharsMap(byte[] blob, String source) {
        if (blob.length < 4) throw corrupt(source, "shorter than its 4-byte header");
        long trieSize = (blob[0] & 0xFFL) | (blob[1] & 0xFFL) << 8 | (blob[2] & 0xFFL) << 16 | (blob[3] & 0xFFL) << 24;
        if (trieSize % 4 != 0 || trieSize > blob.length - 4 || trieSize == 0)
            throw corrupt(source, "trie size " + trieSize + " does not fit the " + blob.length + "-byte blob");
        units = new int[(int) (trieSize / 4)];
        for (int i = 0; i < units.length; i++) {
            int o = 4 + 4 * i;
            units[i] = (blob[o] & 0xFF) | (blob[o + 1] & 0xFF) << 8 | (blob[o + 2] & 0xFF) << 16 | (blob[o + 3] & 0xFF) << 24;
        }
        pool = java.util.Arrays.copyOfRange(blob, 4 + (int) trieSize, blob.length);
    }

    private static TokenizerException corrupt(String source, String why) {
        return new TokenizerException(source + ": the precompiled_charsmap is corrupt (" + why + "). Download the tokenizer files again.");
    }

    private static int offset(int u) { return (u >>> 10) << ((u & (1 << 9)) >>> 6); }
    private static boolean hasLeaf(int u) { return ((u >>> 8) & 1) == 1; }
    private static int value(int u) { return u & 0x7FFFFFFF; }
    private static int label(int u) { return u & 0x800000FF; }

    /**
     * Walks the trie along {@code key[from..to)}; returns the matched prefixes as (length &lt;&lt; 32 | value),
     * shortest first, stopping after the first when {@code firstOnly}.
     */
    private long[] prefixes(byte[] key, int from, int to, boolean firstOnly) {
        long[] found = new long[4];
        int n = 0;
        int pos = offset(units[0]);
        for (int i = from; i < to; i++) {
            int c = key[i] & 0xFF;
            if (c == 0) break;
            pos ^= c;
            if (pos < 0 || pos >= units.length) break;
            int u = units[pos];
            if (label(u) != c) break;
            pos ^= offset(u);
            if (hasLeaf(u)) {
                if (pos < 0 || pos >= units.length) break;
                if (n == found.length) found = java.util.Arrays.copyOf(found, n * 2);
                found[n++] = ((long) (i - from + 1) << 32) | value(units[pos]);
                if (firstOnly) break;
            }
        }
        return java.util.Arrays.copyOf(found, n);
    }

    private byte[] replacement(int value) {
        int end = value;
        while (end < pool.length && pool[end] != 0) end++;
        if (value > pool.length) return new byte[0];
        return java.util.Arrays.copyOfRange(pool, value, end);
    }

    /**
     * SentencePiece's NormalizePrefix at byte {@code from}: the longest rule's (consumed length, replacement),
     * or, with no rule, one UTF-8 character unchanged (a malformed byte becomes U+FFFD, consuming 1 byte).
     */
    Prefix normalizePrefix(byte[] utf8, int from) {
        long[] m = prefixes(utf8, from, utf8.length, false);
        if (m.length > 0) {
            long best = m[m.length - 1];
            return new Prefix((int) (best >>> 32), replacement((int) best));
        }
        int len = utf8CharLength(utf8, from);
        if (len <= 0) return new Prefix(1, new byte[] {(byte) 0xEF, (byte) 0xBF, (byte) 0xBD});
        return new Prefix(len, java.util.Arrays.copyOfRange(utf8, from, from + len));
    }

    record Prefix(int consumed, byte[] replacement) {}

    /** Length of the valid UTF-8 character at {@code i}, or -1 when malformed. */
    static int utf8CharLength(byte[] b, int i) {
        int c = b[i] & 0xFF;
        int len;
        if (c < 0x80) return 1;
        else if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) len = 3;
        else if (c >= 0xF0 && c <= 0xF4) len = 4;
        else return -1;
        if (i + len > b.length) return -1;
        for (int k = 1; k < len; k++) if ((b[i + k] & 0xC0) != 0x80) return -1;
        return len;
    }

    /** Applies the map the SentencePiece way (longest rule at each position), no whitespace handling. */
    String normalizeSentencePiece(String text) {
        byte[] in = text.getBytes(StandardCharsets.UTF_8);
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream(in.length + 16);
        for (int i = 0; i < in.length; ) {
            Prefix p = normalizePrefix(in, i);
            out.writeBytes(p.replacement());
            i += p.consumed();
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Applies the map the Hugging Face {@code tokenizers} way (grapheme clusters; shortest matching rule). */
    String normalizeHuggingFace(String text) {
        StringBuilder sb = new StringBuilder(text.length() + 16);
        BreakIterator it = BreakIterator.getCharacterInstance(Locale.ROOT);
        it.setText(text);
        int start = it.first();
        for (int end = it.next(); end != BreakIterator.DONE; start = end, end = it.next()) {
            String g = text.substring(start, end);
            byte[] gb = g.getBytes(StandardCharsets.UTF_8);
            if (gb.length < 6) {
                long[] m = prefixes(gb, 0, gb.length, true);
                if (m.length > 0) {
                    sb.append(new String(replacement((int) m[0]), StandardCharsets.UTF_8));
                    continue;
                }
            }
            for (int i = 0; i < g.length(); ) {
                int cp = g.codePointAt(i);
                String ch = Character.toString(cp);
                byte[] cb = ch.getBytes(StandardCharsets.UTF_8);
                long[] m = prefixes(cb, 0, cb.length, true);
                sb.append(m.length > 0 ? new String(replacement((int) m[0]), StandardCharsets.UTF_8) : ch);
                i += Character.charCount(cp);
            }
        }
        return sb.toString();
    }
}
