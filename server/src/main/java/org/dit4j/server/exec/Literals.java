package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.JsonNode;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.regex.Pattern;

/** Python's int(), float(), str() and bool() applied to JSON literals, as ComfyUI's validation converts widget values. */
final class Literals {

    private Literals() {}

    private static final Pattern INT_TEXT = Pattern.compile("[+-]?(\\d(_?\\d)*)");
    private static final Pattern FLOAT_TEXT = Pattern.compile("[+-]?((\\d(_?\\d)*)?\\.?(\\d(_?\\d)*)?([eE][+-]?\\d(_?\\d)*)?|inf(inity)?|nan)",
            Pattern.CASE_INSENSITIVE);

    /** Converts {@code val} for an input of type {@code type}; returns {@code val} itself when nothing changes. */
    static JsonNode convert(String type, JsonNode val) {
        return switch (type) {
            case "INT" -> toInt(val);
            case "FLOAT" -> toFloat(val);
            case "STRING" -> val.isTextual() ? val : Json.F.textNode(val.isNumber() || val.isBoolean() || val.isNull() ? PyJson.str(val) : PyJson.pyRepr(val));
            case "BOOLEAN" -> val.isBoolean() ? val : Json.F.booleanNode(truthy(val));
            default -> val;
        };
    }

    private static JsonNode toInt(JsonNode val) {
        if (val.isIntegralNumber()) return val;
        if (val.isBoolean()) return Json.F.numberNode(val.booleanValue() ? 1 : 0);
        if (val.isNumber()) {
            double d = val.doubleValue();
            if (Double.isNaN(d)) throw new PyError("ValueError", "cannot convert float NaN to integer");
            if (Double.isInfinite(d)) throw new PyError("OverflowError", "cannot convert float infinity to integer");
            return intNode(new BigDecimal(d).toBigInteger());
        }
        if (val.isTextual()) {
            String s = val.textValue().strip();
            if (!INT_TEXT.matcher(s).matches())
                throw new PyError("ValueError", "invalid literal for int() with base 10: " + PyJson.strRepr(val.textValue()));
            return intNode(new BigInteger(s.replace("_", "")));
        }
        throw new PyError("TypeError", "int() argument must be a string, a bytes-like object or a real number, not '" + pyType(val) + "'");
    }

    private static JsonNode toFloat(JsonNode val) {
        if (val.isFloatingPointNumber()) return val;
        if (val.isIntegralNumber()) return Json.F.numberNode(val.bigIntegerValue().doubleValue());
        if (val.isBoolean()) return Json.F.numberNode(val.booleanValue() ? 1.0 : 0.0);
        if (val.isTextual()) {
            String s = val.textValue().strip();
            if (s.isEmpty() || !FLOAT_TEXT.matcher(s).matches() || s.matches("[+-]?\\.?([eE].*)?"))
                throw new PyError("ValueError", "could not convert string to float: " + PyJson.strRepr(val.textValue()));
            String t = s.replace("_", "").toLowerCase();
            double d = t.contains("nan") ? Double.NaN : t.contains("inf") ? (t.startsWith("-") ? Double.NEGATIVE_INFINITY : Double.POSITIVE_INFINITY)
                    : Double.parseDouble(t);
            return Json.F.numberNode(d);
        }
        throw new PyError("TypeError", "float() argument must be a string or a real number, not '" + pyType(val) + "'");
    }

    private static JsonNode intNode(BigInteger b) {
        return b.bitLength() < 63 ? Json.F.numberNode(b.longValue()) : Json.F.numberNode(b);
    }

    private static boolean truthy(JsonNode v) {
        if (v.isNull()) return false;
        if (v.isNumber()) return v.isIntegralNumber() ? v.bigIntegerValue().signum() != 0 : v.doubleValue() != 0;
        if (v.isTextual()) return !v.textValue().isEmpty();
        if (v.isContainerNode()) return v.size() > 0;
        return true;
    }

    static String pyType(JsonNode v) {
        if (v.isNull()) return "NoneType";
        if (v.isArray()) return "list";
        if (v.isObject()) return "dict";
        if (v.isTextual()) return "str";
        if (v.isBoolean()) return "bool";
        return v.isIntegralNumber() ? "int" : "float";
    }
}
