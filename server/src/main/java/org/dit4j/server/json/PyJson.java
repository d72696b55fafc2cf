package org.dit4j.server.json;

import com.fasterxml.jackson.databind.JsonNode;
import org.dit4j.engine.flux.PythonJson;

import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Python's text forms of values: {@code json.dumps} with default arguments (", " and ": " separators,
 * {@code ensure_ascii=True}) as ComfyUI writes the PNG text chunks, and {@code repr}/{@code str} of floats, strings
 * and lists as its validation messages print them.
 */
public final class PyJson {

    private PyJson() {}

    /** {@code json.dumps(value)}. */
    public static String dumps(JsonNode n) {
        StringBuilder sb = new StringBuilder();
        dump(n, sb);
        return sb.toString();
    }

    private static void dump(JsonNode n, StringBuilder sb) {
        switch (n.getNodeType()) {
            case OBJECT -> {
                sb.append('{');
                Iterator<Map.Entry<String, JsonNode>> it = n.properties().iterator();
                boolean first = true;
                while (it.hasNext()) {
                    var e = it.next();
                    if (!first) sb.append(", ");
                    first = false;
                    quote(e.getKey(), sb);
                    sb.append(": ");
                    dump(e.getValue(), sb);
                }
                sb.append('}');
            }
            case ARRAY -> {
                sb.append('[');
                for (int i = 0; i < n.size(); i++) {
                    if (i > 0) sb.append(", ");
                    dump(n.get(i), sb);
                }
                sb.append(']');
            }
            case STRING -> quote(n.textValue(), sb);
            case NUMBER -> sb.append(n.isIntegralNumber() ? n.bigIntegerValue().toString() : floatRepr(n.doubleValue()));
            case BOOLEAN -> sb.append(n.booleanValue() ? "true" : "false");
            default -> sb.append("null");
        }
    }

    private static void quote(String s, StringBuilder sb) {
        PythonJson.quote(s, sb);
    }

    /** Python's {@code repr(float)}: shortest round-trip digits, scientific when the exponent is &lt; −4 or ≥ 16. */
    public static String floatRepr(double d) {
        return PythonJson.floatRepr(d);
    }

    /** Python's {@code str(value)} for a JSON scalar as validation messages print it. */
    public static String str(JsonNode n) {
        if (n == null || n.isNull()) return "None";
        if (n.isTextual()) return n.textValue();
        if (n.isBoolean()) return n.booleanValue() ? "True" : "False";
        if (n.isIntegralNumber()) return n.bigIntegerValue().toString();
        if (n.isNumber()) return floatRepr(n.doubleValue());
        return pyRepr(n);
    }

    /** Python's {@code repr} of a JSON value (dicts and lists with single-quoted strings). */
    public static String pyRepr(JsonNode n) {
        if (n == null || n.isNull()) return "None";
        if (n.isTextual()) return strRepr(n.textValue());
        if (n.isArray()) {
            StringBuilder sb = new StringBuilder("[");
            for (int i = 0; i < n.size(); i++) {
                if (i > 0) sb.append(", ");
                sb.append(pyRepr(n.get(i)));
            }
            return sb.append(']').toString();
        }
        if (n.isObject()) {
            StringBuilder sb = new StringBuilder("{");
            boolean first = true;
            for (var e : n.properties()) {
                if (!first) sb.append(", ");
                first = false;
                sb.append(strRepr(e.getKey())).append(": ").append(pyRepr(e.getValue()));
            }
            return sb.append('}').toString();
        }
        return str(n);
    }

    /** {@code repr(list_of_str)}. */
    public static String listRepr(List<String> items) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) sb.append(", ");
            sb.append(strRepr(items.get(i)));
        }
        return sb.append(']').toString();
    }

    /** {@code repr(str)}: single quotes unless the text has a single quote and no double quote. */
    public static String strRepr(String s) {
        char q = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        StringBuilder sb = new StringBuilder().append(q);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == q || c == '\\') sb.append('\\').append(c);
            else if (c == '\n') sb.append("\\n");
            else if (c == '\r') sb.append("\\r");
            else if (c == '\t') sb.append("\\t");
            else if (c < 0x20 || c == 0x7f) sb.append(String.format("\\x%02x", (int) c));
            else sb.append(c);
        }
        return sb.append(q).toString();
    }
}
