package org.dit4j.models.text.tokenizer;

import java.util.List;
import java.util.Map;

/**
 * JSON for tokenizer files (vocab.json, tokenizer.json, tokenizer_config.json): parsing is core's strict
 * {@link org.dit4j.core.io.Json} (objects keep key order; numbers are Long or Double); this class adds typed access
 * whose errors name the file and the field.
 */
final class Json {
    private Json() {}

    /** Parses one JSON value that fills the whole of {@code text} (core's strict parser); {@code source} names it in errors. */
    static Object parse(String text, String source) {
        try {
            return org.dit4j.core.io.Json.parse(text);
        } catch (org.dit4j.core.io.Json.SyntaxException e) {
            throw new TokenizerException(source + ": invalid JSON: " + e.getMessage()
                    + ". The file is corrupt or not JSON; download it again.");
        }
    }

    // ------------------------------------------------------------------ typed access helpers

    @SuppressWarnings("unchecked")
    static Map<String, Object> asObject(Object v, String what, String source) {
        if (v instanceof Map<?, ?> m) return (Map<String, Object>) m;
        throw new TokenizerException(source + ": " + what + " must be a JSON object, found " + describe(v));
    }

    @SuppressWarnings("unchecked")
    static List<Object> asArray(Object v, String what, String source) {
        if (v instanceof List<?> l) return (List<Object>) l;
        throw new TokenizerException(source + ": " + what + " must be a JSON array, found " + describe(v));
    }

    static String asString(Object v, String what, String source) {
        if (v instanceof String s) return s;
        throw new TokenizerException(source + ": " + what + " must be a string, found " + describe(v));
    }

    static double asNumber(Object v, String what, String source) {
        if (v instanceof Number n) return n.doubleValue();
        throw new TokenizerException(source + ": " + what + " must be a number, found " + describe(v));
    }

    static int asInt(Object v, String what, String source) {
        double d = asNumber(v, what, source);
        if (d != Math.rint(d) || d < Integer.MIN_VALUE || d > Integer.MAX_VALUE)
            throw new TokenizerException(source + ": " + what + " must be an integer, found " + d);
        return (int) d;
    }

    static boolean asBoolean(Object v, boolean dflt, String what, String source) {
        if (v == null) return dflt;
        if (v instanceof Boolean b) return b;
        throw new TokenizerException(source + ": " + what + " must be true or false, found " + describe(v));
    }

    static String describe(Object v) {
        if (v == null) return "null";
        if (v instanceof Map) return "an object";
        if (v instanceof List) return "an array";
        if (v instanceof String s) return "the string \"" + (s.length() > 40 ? s.substring(0, 40) + "…" : s) + "\"";
        return v.toString();
    }
}
