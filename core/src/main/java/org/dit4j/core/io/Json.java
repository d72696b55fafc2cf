package org.dit4j.core.io;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small, strict JSON (RFC 8259) parser for checkpoint headers, index files and model configs.
 * <p>
 * Values map to Java as: object → {@code Map<String,Object>} (insertion order, unmodifiable), array →
 * {@code List<Object>} (unmodifiable), string → {@link String}, number → {@link Long} when it is written as an
 * integer that fits, {@link BigInteger} for larger integers, {@link Double} when it has a fraction or exponent,
 * {@code true}/{@code false} → {@link Boolean}, {@code null} → {@code null}.
 * <p>
 * Strict means: no comments, no trailing commas, no leading zeros, no unescaped control characters in strings,
 * no duplicate keys in an object, nothing but whitespace after the value. Nesting deeper than {@code maxDepth}
 * and number literals longer than {@value #MAX_NUMBER_CHARS} characters are rejected, so hostile input cannot
 * exhaust the stack or make number conversion slow. Every failure is a {@link SyntaxException} that tells the
 * line and column.
 */
public final class Json {
    /** Default nesting limit (objects and arrays). Safetensors headers need 3. */
    public static final int DEFAULT_MAX_DEPTH = 64;
    /** Longest accepted number literal. */
    public static final int MAX_NUMBER_CHARS = 1000;

    private final String s;
    private final int maxDepth;
    private final int maxElements;
    private int pos;

    private Json(String s, int maxDepth, int maxElements) {
        this.s = s;
        this.maxDepth = maxDepth;
        this.maxElements = maxElements;
    }

    /** A malformed document; the message says what was expected and where. */
    public static final class SyntaxException extends RuntimeException {
        private final int offset;

        SyntaxException(String message, int offset) {
            super(message);
            this.offset = offset;
        }

        /** Character offset of the problem in the parsed text. */
        public int offset() { return offset; }
    }

    /** Parses one JSON document with the default depth limit. */
    public static Object parse(String text) { return parse(text, DEFAULT_MAX_DEPTH); }

    /** Parses one JSON document; objects and arrays may nest at most {@code maxDepth} deep. */
    public static Object parse(String text, int maxDepth) { return parse(text, maxDepth, Integer.MAX_VALUE); }

    /**
     * Parses one JSON document; objects and arrays may nest at most {@code maxDepth} deep and hold at most
     * {@code maxElements} members or elements each (bounds the memory a small hostile document can demand).
     */
    public static Object parse(String text, int maxDepth, int maxElements) {
        Json p = new Json(text, maxDepth, maxElements);
        p.skipWs();
        Object v = p.value(0);
        p.skipWs();
        if (p.pos != text.length()) throw p.error("unexpected " + p.describeHere() + " after the end of the JSON value");
        return v;
    }

    /**
     * Reads a document whose top level is an object one member at a time, so that an object with millions of
     * members (a large safetensors header) never exists as one map. Strict like {@link #parse}: duplicate names
     * and anything after the closing brace are errors.
     * <pre>
     * Json.MemberReader r = Json.members(text, 8);
     * while (r.hasNext()) { String name = r.nextName(); Object value = r.nextValue(); ... }
     * </pre>
     */
    public static final class MemberReader {
        private final Json p;
        private final java.util.Set<String> seen = new java.util.HashSet<>();
        private boolean first = true;
        private boolean done;

        private MemberReader(Json p) { this.p = p; }

        /** True if another member follows; false after the closing brace (which also checks the end of the document). */
        public boolean hasNext() {
            if (done) return false;
            p.skipWs();
            char c = p.peek();
            if (c == '}') {
                p.pos++;
                p.skipWs();
                if (p.pos != p.s.length()) throw p.error("unexpected " + p.describeHere() + " after the end of the JSON value");
                done = true;
                return false;
            }
            if (!first) {
                if (c != ',') throw p.error("expected ',' or '}' in object, found " + p.describeHere());
                p.pos++;
                p.skipWs();
            }
            first = false;
            if (p.peek() != '"') throw p.error("expected a string key in object, found " + p.describeHere());
            return true;
        }

        /** The next member's name; call after {@link #hasNext} returned true. */
        public String nextName() {
            int keyPos = p.pos;
            String key = p.string();
            if (!seen.add(key)) throw new SyntaxException("duplicate key " + quote(abbreviate(key)) + p.where(keyPos), keyPos);
            p.skipWs();
            if (p.peek() != ':') throw p.error("expected ':' after object key " + quote(abbreviate(key)) + ", found " + p.describeHere());
            p.pos++;
            p.skipWs();
            return key;
        }

        /** The value of the member whose name was just read, parsed as by {@link Json#parse}. */
        public Object nextValue() { return p.value(1); }
    }

    /**
     * A {@link MemberReader} over {@code text}, which must start (after whitespace) with '{'. The top-level object
     * may have any number of members; the values' own objects and arrays are limited to {@code maxDepth} nesting
     * (the top level counts as 1) and {@code maxElements} members or elements each.
     */
    public static MemberReader members(String text, int maxDepth, int maxElements) {
        Json p = new Json(text, maxDepth, maxElements);
        p.skipWs();
        if (p.peek() != '{') throw p.error("expected a JSON object, found " + p.describeHere());
        p.checkDepth(1);
        p.pos++;
        return new MemberReader(p);
    }

    /** {@code s} as a JSON string literal (quotes included). Control characters and lone surrogates are escaped. */
    public static String quote(String s) {
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                case '\b' -> b.append("\\b");
                case '\f' -> b.append("\\f");
                default -> {
                    boolean paired = Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1));
                    if (paired) {
                        b.append(c).append(s.charAt(++i));
                    } else if (c < 0x20 || Character.isSurrogate(c)) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    // ------------------------------------------------------------------ grammar

    private Object value(int depth) {
        if (pos >= s.length()) throw error("unexpected end of input, expected a value");
        char c = s.charAt(pos);
        return switch (c) {
            case '{' -> object(depth + 1);
            case '[' -> array(depth + 1);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) yield number();
                throw error("expected a value (object, array, string, number, true, false or null), found " + describeHere());
            }
        };
    }

    private Map<String, Object> object(int depth) {
        checkDepth(depth);
        pos++; // '{'
        Map<String, Object> m = new LinkedHashMap<>();
        skipWs();
        if (peek() == '}') { pos++; return Collections.unmodifiableMap(m); }
        while (true) {
            skipWs();
            if (peek() != '"') throw error("expected a string key in object, found " + describeHere());
            int keyPos = pos;
            String key = string();
            skipWs();
            if (peek() != ':') throw error("expected ':' after object key " + quote(abbreviate(key)) + ", found " + describeHere());
            pos++;
            skipWs();
            Object v = value(depth);
            if (m.size() == maxElements) throw error("object has more members than the limit of " + maxElements);
            if (m.containsKey(key)) throw new SyntaxException("duplicate key " + quote(abbreviate(key)) + where(keyPos), keyPos);
            m.put(key, v);
            skipWs();
            char c = peek();
            if (c == ',') { pos++; continue; }
            if (c == '}') { pos++; return Collections.unmodifiableMap(m); }
            throw error("expected ',' or '}' in object, found " + describeHere());
        }
    }

    private List<Object> array(int depth) {
        checkDepth(depth);
        pos++; // '['
        List<Object> l = new ArrayList<>();
        skipWs();
        if (peek() == ']') { pos++; return Collections.unmodifiableList(l); }
        while (true) {
            skipWs();
            if (l.size() == maxElements) throw error("array has more elements than the limit of " + maxElements);
            l.add(value(depth));
            skipWs();
            char c = peek();
            if (c == ',') { pos++; continue; }
            if (c == ']') { pos++; return Collections.unmodifiableList(l); }
            throw error("expected ',' or ']' in array, found " + describeHere());
        }
    }

    private String string() {
        int start = pos;
        pos++; // opening quote
        StringBuilder b = null;
        int runStart = pos;
        while (true) {
            if (pos >= s.length()) throw new SyntaxException("unterminated string starting" + where(start), start);
            char c = s.charAt(pos);
            if (c == '"') {
                String out = b == null ? s.substring(runStart, pos) : b.append(s, runStart, pos).toString();
                pos++;
                return out;
            }
            if (c < 0x20) throw error(String.format("control character U+%04X must be escaped inside a string", (int) c));
            if (c != '\\') { pos++; continue; }
            if (b == null) b = new StringBuilder();
            b.append(s, runStart, pos);
            pos++;
            if (pos >= s.length()) throw new SyntaxException("unterminated string starting" + where(start), start);
            char e = s.charAt(pos++);
            switch (e) {
                case '"' -> b.append('"');
                case '\\' -> b.append('\\');
                case '/' -> b.append('/');
                case 'b' -> b.append('\b');
                case 'f' -> b.append('\f');
                case 'n' -> b.append('\n');
                case 'r' -> b.append('\r');
                case 't' -> b.append('\t');
                case 'u' -> {
                    if (pos + 4 > s.length()) throw error("incomplete \\u escape");
                    int cp = 0;
                    for (int i = 0; i < 4; i++) {
                        int d = Character.digit(s.charAt(pos + i), 16);
                        if (d < 0 || s.charAt(pos + i) > 'f') throw error("\\u escape needs 4 hex digits");
                        cp = cp * 16 + d;
                    }
                    pos += 4;
                    b.append((char) cp);
                }
                default -> { pos--; throw error("invalid escape '\\" + printable(e) + "' in string"); }
            }
            runStart = pos;
        }
    }

    private Object number() {
        int start = pos;
        if (peek() == '-') pos++;
        if (pos >= s.length() || !isDigit(s.charAt(pos))) throw error("expected a digit in number");
        if (s.charAt(pos) == '0') {
            pos++;
            if (pos < s.length() && isDigit(s.charAt(pos))) throw error("leading zeros are not allowed in numbers");
        } else {
            while (pos < s.length() && isDigit(s.charAt(pos))) pos++;
        }
        boolean integral = true;
        if (pos < s.length() && s.charAt(pos) == '.') {
            integral = false;
            pos++;
            if (pos >= s.length() || !isDigit(s.charAt(pos))) throw error("expected a digit after the decimal point");
            while (pos < s.length() && isDigit(s.charAt(pos))) pos++;
        }
        if (pos < s.length() && (s.charAt(pos) == 'e' || s.charAt(pos) == 'E')) {
            integral = false;
            pos++;
            if (pos < s.length() && (s.charAt(pos) == '+' || s.charAt(pos) == '-')) pos++;
            if (pos >= s.length() || !isDigit(s.charAt(pos))) throw error("expected a digit in the exponent");
            while (pos < s.length() && isDigit(s.charAt(pos))) pos++;
        }
        if (pos - start > MAX_NUMBER_CHARS)
            throw new SyntaxException("number literal of " + (pos - start) + " characters is longer than the limit of "
                    + MAX_NUMBER_CHARS + where(start), start);
        String lit = s.substring(start, pos);
        if (!integral) return Double.parseDouble(lit);
        if (lit.length() <= 18) return Long.parseLong(lit);
        BigInteger big = new BigInteger(lit);
        return big.bitLength() < 64 ? (Object) big.longValue() : big;
    }

    private Object literal(String word, Object v) {
        if (!s.startsWith(word, pos)) throw error("expected a value, found " + describeHere());
        pos += word.length();
        return v;
    }

    // ------------------------------------------------------------------ helpers

    private void checkDepth(int depth) {
        if (depth > maxDepth) throw error("JSON nested deeper than the limit of " + maxDepth);
    }

    private void skipWs() {
        while (pos < s.length()) {
            char c = s.charAt(pos);
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++;
            else break;
        }
    }

    private char peek() { return pos < s.length() ? s.charAt(pos) : '\0'; }

    private static boolean isDigit(char c) { return c >= '0' && c <= '9'; }

    private String describeHere() {
        if (pos >= s.length()) return "end of input";
        return "'" + printable(s.charAt(pos)) + "'";
    }

    private static String printable(char c) {
        return c < 0x20 || c > 0x7E ? String.format("U+%04X", (int) c) : String.valueOf(c);
    }

    private static String abbreviate(String k) { return k.length() <= 80 ? k : k.substring(0, 77) + "..."; }

    private SyntaxException error(String msg) { return new SyntaxException(msg + where(pos), pos); }

    private String where(int at) {
        int line = 1, col = 1;
        for (int i = 0; i < at && i < s.length(); i++) {
            if (s.charAt(i) == '\n') { line++; col = 1; } else col++;
        }
        return " at line " + line + ", column " + col + " (character " + at + ")";
    }
}
