package org.dit4j.engine.flux;

import java.util.List;
import java.util.Map;

/**
 * JSON text as Python's {@code json.dumps} writes it by default (ComfyUI writes its PNG "prompt" chunk that way):
 * separators {@code ", "} and {@code ": "}, non-ASCII characters escaped as {@code \\uXXXX} (ensure_ascii), floats in
 * their shortest round-trip form with a ".0" for whole numbers. Values: Map (insertion order), List, String, Integer,
 * Long, Float, Double, Boolean, null.
 */
final class PythonJson {
    private PythonJson() {}

    static String dumps(Object v) {
        StringBuilder sb = new StringBuilder();
        write(sb, v);
        return sb.toString();
    }

    private static void write(StringBuilder sb, Object v) {
        switch (v) {
            case null -> sb.append("null");
            case String s -> string(sb, s);
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
                    string(sb, String.valueOf(e.getKey()));
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

    private static void number(StringBuilder sb, double d) {
        if (Double.isNaN(d)) sb.append("NaN");
        else if (Double.isInfinite(d)) sb.append(d > 0 ? "Infinity" : "-Infinity");
        else if (d == Math.rint(d) && Math.abs(d) < 1e16) sb.append((long) d).append(".0");
        else sb.append(Double.toString(d).replace("E", "e"));
    }

    private static void string(StringBuilder sb, String s) {
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
