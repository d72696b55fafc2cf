package org.dit4j.engine.flux;

import java.util.List;
import java.util.Map;

/**
 * JSON text as Python's {@code json.dumps} writes it by default (ComfyUI writes its PNG "prompt" chunk that way):
 * separators {@code ", "} and {@code ": "}, non-ASCII characters escaped as {@code \\uXXXX} (ensure_ascii), floats in
 * their shortest round-trip form with a ".0" for whole numbers. Values: Map (insertion order), List, String, Integer,
 * Long, Float, Double, Boolean, null. The server's Jackson-based {@code PyJson} writes its floats and strings with
 * {@link #floatRepr} and {@link #quote}.
 */
public final class PythonJson {
    private PythonJson() {}

    /** {@code json.dumps(v)}. */
    public static String dumps(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v) {
        switch (v) {
            case null -> sb.append("null");
            case String s -> quote(s, sb);
            case Boolean b -> sb.append(b ? "true" : "false");
            case Integer i -> sb.append(i);
            case Long l -> sb.append(l);
            case Float f -> number(sb, Double.parseDouble(Float.toString(f)));
            case Double d -> number(sb, d);
            case Map<?, ?> m -> {
                sb.append('{');
                boolean first = true;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (!first) sb.append(", ");
                    first = false;
                    quote(String.valueOf(e.getKey()), sb);
                    sb.append(": ");
                    write(sb, e.getValue());
                }
                sb.append('}');
            }
            case List<?> l -> {
                sb.append('[');
                for (int i = 0; i < l.size(); i++) {
                    if (i > 0) sb.append(", ");
                    write(sb, l.get(i));
                }
                sb.append(']');
            }
            default -> throw new IllegalArgumentException("cannot write " + v.getClass().getSimpleName() + " as JSON");
        }
    }

    /**
     * Python's {@code repr(float)}: the shortest digits that round-trip (Java's {@link Double#toString} finds the same
     * digits), written in fixed notation when the decimal exponent e of the first digit is −5 &lt; e &lt; 16, else as
     * {@code d.ddde±XX}.
     */
    public static String floatRepr(double d) {
        StringBuilder sb = new StringBuilder();
        number(sb, d);
        return sb.toString();
    }

    private static void number(StringBuilder sb, double d) {
        if (Double.isNaN(d)) {
            sb.append("NaN");
            return;
        }
        if (Double.isInfinite(d)) {
            sb.append(d > 0 ? "Infinity" : "-Infinity");
            return;
        }
        if (d == 0) {
            sb.append(1 / d < 0 ? "-0.0" : "0.0");
            return;
        }
        if (d < 0) sb.append('-');
        java.math.BigDecimal bd = new java.math.BigDecimal(Double.toString(Math.abs(d))).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int decpt = digits.length() - bd.scale();          // position of the decimal point relative to the first digit
        if (decpt > -4 && decpt <= 16) {
            if (decpt <= 0) sb.append("0.").append("0".repeat(-decpt)).append(digits);
            else if (decpt >= digits.length()) sb.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
            else sb.append(digits, 0, decpt).append('.').append(digits, decpt, digits.length());
        } else {
            sb.append(digits.charAt(0));
            if (digits.length() > 1) sb.append('.').append(digits, 1, digits.length());
            int e = decpt - 1;
            sb.append('e').append(e < 0 ? '-' : '+');
            if (Math.abs(e) < 10) sb.append('0');
            sb.append(Math.abs(e));
        }
    }

    /** A JSON string literal of {@code s} as {@code json.dumps} writes it (ensure_ascii: \\uXXXX beyond printable ASCII). */
    public static void quote(String s, StringBuilder sb) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20 || c > 0x7E) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        sb.append('"');
    }
}
