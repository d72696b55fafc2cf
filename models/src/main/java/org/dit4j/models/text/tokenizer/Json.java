package org.dit4j.models.text.tokenizer;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON reader for tokenizer files (vocab.json, tokenizer.json, tokenizer_config.json).
 * Objects become {@link LinkedHashMap} (key order kept), arrays {@link ArrayList}, numbers {@link Double}
 * (integers too: token ids and scores fit a double exactly), strings {@link String}, plus Boolean and null.
 * Errors name the source, the character offset and what was expected.
 */
final class Json {
    private final String text;
    private final String source;
    private int pos;

    private Json(String text, String source) {
        this.text = text;
        this.source = source;
    }

    /** Parses one JSON value that fills the whole of {@code text}; {@code source} names it in errors. */
    static Object parse(String text, String source) {
        Json p = new Json(text, source);
        p.skipWs();
        Object v = p.value();
        p.skipWs();
        if (p.pos != text.length()) throw p.error("end of input");
        return v;
    }

    private Object value() {
        if (pos >= text.length()) throw error("a value");
        char c = text.charAt(pos);
        return switch (c) {
            case '{' -> object();
            case '[' -> array();
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) yield number();
                throw error("a value");
            }
        };
    }

    private Map<String, Object> object() {
        pos++; // {
        Map<String, Object> m = new LinkedHashMap<>();
        skipWs();
        if (peek() == '}') { pos++; return m; }
        while (true) {
            skipWs();
            if (peek() != '"') throw error("a string key");
            String k = string();
            skipWs();
            expect(':');
            skipWs();
            m.put(k, value());
            skipWs();
            char c = peek();
            pos++;
            if (c == '}') return m;
            if (c != ',') { pos--; throw error("',' or '}'"); }
        }
    }

    private List<Object> array() {
        pos++; // [
        List<Object> a = new ArrayList<>();
        skipWs();
        if (peek() == ']') { pos++; return a; }
        while (true) {
            skipWs();
            a.add(value());
            skipWs();
            char c = peek();
            pos++;
            if (c == ']') return a;
            if (c != ',') { pos--; throw error("',' or ']'"); }
        }
    }

    private String string() {
        pos++; // "
        StringBuilder sb = null;
        int start = pos;
        while (true) {
            if (pos >= text.length()) throw error("closing '\"'");
            char c = text.charAt(pos);
            if (c == '"') {
                String s = sb == null ? text.substring(start, pos) : sb.append(text, start, pos).toString();
                pos++;
                return s;
            }
            if (c == '\\') {
                if (sb == null) sb = new StringBuilder();
                sb.append(text, start, pos);
                pos++;
                if (pos >= text.length()) throw error("an escape character");
                char e = text.charAt(pos++);
                switch (e) {
                    case '"' -> sb.append('"');
                    case '\\' -> sb.append('\\');
                    case '/' -> sb.append('/');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'u' -> {
                        if (pos + 4 > text.length()) throw error("4 hex digits after \\u");
                        int v = 0;
                        for (int i = 0; i < 4; i++) {
                            int d = Character.digit(text.charAt(pos + i), 16);
                            if (d < 0) throw error("4 hex digits after \\u");
                            v = v * 16 + d;
                        }
                        pos += 4;
                        sb.append((char) v);
                    }
                    default -> { pos--; throw error("a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)"); }
                }
                start = pos;
            } else {
                if (c < 0x20) throw error("no raw control character inside a string");
                pos++;
            }
        }
    }

    private Double number() {
        int start = pos;
        if (peek() == '-') pos++;
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if ((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') pos++;
            else break;
        }
        try {
            return Double.valueOf(text.substring(start, pos));
        } catch (NumberFormatException e) {
            pos = start;
            throw error("a number");
        }
    }

    private Object literal(String word, Object v) {
        if (!text.startsWith(word, pos)) throw error("'" + word + "'");
        pos += word.length();
        return v;
    }

    private void expect(char c) {
        if (peek() != c) throw error("'" + c + "'");
        pos++;
    }

    private char peek() { return pos < text.length() ? text.charAt(pos) : '\0'; }

    private void skipWs() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++;
            else break;
        }
    }

    private TokenizerException error(String expected) {
        String found = pos >= text.length() ? "end of input"
                : "'" + text.substring(pos, Math.min(text.length(), pos + 20)).replace("\n", "\\n") + "'";
        return new TokenizerException(source + ": invalid JSON at character " + pos + ": expected " + expected
                + ", found " + found + ". The file is corrupt or not JSON; download it again.");
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
        if (v instanceof Double d) return d;
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
