package org.dit4j.models.text.tokenizer;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Locale;

/** Unicode character classes as the reference tokenizers define them, and file reading with clear errors. */
final class Text {
    private Text() {}

    /**
     * Unicode White_Space: what {@code \s} matches in the Rust/Oniguruma regexes of Hugging Face {@code tokenizers}
     * (U+0009–U+000D, U+0085, and the separators Zs, Zl, Zp).
     */
    static boolean isWhiteSpace(int cp) {
        if (cp >= 0x09 && cp <= 0x0D) return true;
        if (cp == 0x85) return true;
        int t = Character.getType(cp);
        return t == Character.SPACE_SEPARATOR || t == Character.LINE_SEPARATOR || t == Character.PARAGRAPH_SEPARATOR;
    }

    /** Python's {@code str.isspace()} for one code point (White_Space plus U+001C–U+001F). */
    static boolean isPythonSpace(int cp) {
        return isWhiteSpace(cp) || (cp >= 0x1C && cp <= 0x1F);
    }

    /** General category L* ({@code \p{L}}). */
    static boolean isLetter(int cp) {
        return switch (Character.getType(cp)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> true;
            default -> false;
        };
    }

    /** General category N* ({@code \p{N}}). */
    static boolean isNumber(int cp) {
        return switch (Character.getType(cp)) {
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> true;
            default -> false;
        };
    }

    /** General category C* (Cc, Cf, Cs, Co, Cn): Python's {@code unicodedata.category(c).startswith("C")}. */
    static boolean isOther(int cp) {
        return switch (Character.getType(cp)) {
            case Character.CONTROL, Character.FORMAT, Character.SURROGATE, Character.PRIVATE_USE, Character.UNASSIGNED -> true;
            default -> false;
        };
    }

    /** Full (1:n) lower-case mapping of a single code point without context, as Rust's {@code char::to_lowercase}. */
    static String lowerCodePoint(int cp) {
        return Character.toString(cp).toLowerCase(Locale.ROOT);
    }

    /** Reads a UTF-8 text file; a missing, unreadable or non-UTF-8 file gives an error naming it and what it is for. */
    static String readUtf8(Path file, String what) {
        byte[] bytes = readBytes(file, what);
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new TokenizerException(file + " (" + what + ") is not valid UTF-8 text; the file is corrupt, download it again.", e);
        }
    }

    static byte[] readBytes(Path file, String what) {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new TokenizerException("missing " + what + ": " + file + " does not exist. Put the tokenizer files"
                    + " of the model there (or point dit4j at the folder that has them).", e);
        } catch (IOException e) {
            throw new TokenizerException("cannot read " + what + " " + file + ": " + e.getMessage(), e);
        }
    }
}
