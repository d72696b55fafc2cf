package org.dit4j.models.text.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/**
 * SentencePiece's {@code Normalizer::Normalize}: the precompiled character map (longest rule at each position;
 * none for "identity" models), then whitespace handling on the mapped text — only the ASCII space counts:
 * leading spaces dropped and runs collapsed ({@code remove_extra_whitespaces}), a "▁" prepended
 * ({@code add_dummy_prefix}), spaces written as "▁" ({@code escape_whitespaces}), trailing "▁" removed.
 * User-defined symbols (which SentencePiece protects from normalization) are not handled: T5 and umT5 have none.
 */
final class SentencePieceNormalizer {
    private static final byte[] SPACE_SYMBOL = "\u2581".getBytes(StandardCharsets.UTF_8);

    private final PrecompiledCharsMap map;
    private final boolean addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces, treatWhitespaceAsSuffix;

    SentencePieceNormalizer(SentencePieceModel m, String source) {
        this.map = m.precompiledCharsmap().length == 0 ? null : new PrecompiledCharsMap(m.precompiledCharsmap(), source);
        this.addDummyPrefix = m.addDummyPrefix();
        this.removeExtraWhitespaces = m.removeExtraWhitespaces();
        this.escapeWhitespaces = m.escapeWhitespaces();
        this.treatWhitespaceAsSuffix = m.treatWhitespaceAsSuffix();
    }

    private PrecompiledCharsMap.Prefix prefix(byte[] in, int i) {
        if (map != null) return map.normalizePrefix(in, i);
        int len = PrecompiledCharsMap.utf8CharLength(in, i);
        if (len <= 0) return new PrecompiledCharsMap.Prefix(1, new byte[] {(byte) 0xEF, (byte) 0xBF, (byte) 0xBD});
        return new PrecompiledCharsMap.Prefix(len, java.util.Arrays.copyOfRange(in, i, i + len));
    }

    String normalize(String text) {
        byte[] in = text.getBytes(StandardCharsets.UTF_8);
        int i = 0;
        if (removeExtraWhitespaces) {
            while (i < in.length) {
                PrecompiledCharsMap.Prefix p = prefix(in, i);
                if (!(p.replacement().length == 1 && p.replacement()[0] == ' ')) break;
                i += p.consumed();
            }
        }
        if (i >= in.length) return "";
        ByteArrayOutputStream out = new ByteArrayOutputStream(in.length * 2 + 3);
        if (!treatWhitespaceAsSuffix && addDummyPrefix) writeSpace(out);
        boolean prevSpace = removeExtraWhitespaces;
        while (i < in.length) {
            PrecompiledCharsMap.Prefix p = prefix(in, i);
            byte[] sp = p.replacement();
            int s = 0;
            if (prevSpace && removeExtraWhitespaces) while (s < sp.length && sp[s] == ' ') s++;
            if (s < sp.length) {
                for (int k = s; k < sp.length; k++) {
                    if (escapeWhitespaces && sp[k] == ' ') out.writeBytes(SPACE_SYMBOL);
                    else out.write(sp[k]);
                }
                prevSpace = sp[sp.length - 1] == ' ';
            }
            i += p.consumed();
            if (!removeExtraWhitespaces) prevSpace = false;
        }
        byte[] res = out.toByteArray();
        int len = res.length;
        if (removeExtraWhitespaces) {
            byte[] space = escapeWhitespaces ? SPACE_SYMBOL : new byte[] {' '};
            while (len >= space.length && java.util.Arrays.equals(res, len - space.length, len, space, 0, space.length))
                len -= space.length;
        }
        String s = new String(res, 0, len, StandardCharsets.UTF_8);
        if (treatWhitespaceAsSuffix && addDummyPrefix) s += escapeWhitespaces ? "\u2581" : " ";
        return s;
    }

    private void writeSpace(ByteArrayOutputStream out) {
        if (escapeWhitespaces) out.writeBytes(SPACE_SYMBOL);
        else out.write(' ');
    }
}
