package org.dit4j.server.json;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.StreamReadConstraints;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Collection;
import java.util.Map;

/** The server's JSON mapper (Jackson trees keep key order, as Python dicts do) and small builders. */
public final class Json {

    private Json() {}

    public static final ObjectMapper MAPPER = new ObjectMapper()
            .enable(DeserializationFeature.USE_BIG_INTEGER_FOR_INTS)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    static {
        MAPPER.getFactory().setStreamReadConstraints(StreamReadConstraints.builder()
                .maxNestingDepth(200).maxStringLength(64 << 20).maxNumberLength(400).build());
    }

    public static final JsonNodeFactory F = JsonNodeFactory.withExactBigDecimals(false);

    public static ObjectNode object() { return F.objectNode(); }

    public static ArrayNode array() { return F.arrayNode(); }

    /** Object from alternating key/value pairs; values go through {@link #node(Object)}. */
    public static ObjectNode obj(Object... kv) {
        if (kv.length % 2 != 0) throw new IllegalArgumentException("obj() needs key/value pairs");
        ObjectNode o = object();
        for (int i = 0; i < kv.length; i += 2) o.set((String) kv[i], node(kv[i + 1]));
        return o;
    }

    /** Converts plain Java values (String, Number, Boolean, Map, Collection, arrays, JsonNode, null) to a tree. */
    public static JsonNode node(Object v) {
        if (v == null) return F.nullNode();
        if (v instanceof JsonNode n) return n;
        if (v instanceof String s) return F.textNode(s);
        if (v instanceof Boolean b) return F.booleanNode(b);
        if (v instanceof Integer i) return F.numberNode(i);
        if (v instanceof Long l) return F.numberNode(l);
        if (v instanceof java.math.BigInteger b) return F.numberNode(b);
        if (v instanceof Float f) return F.numberNode((double) f);
        if (v instanceof Double d) return F.numberNode(d);
        if (v instanceof Map<?, ?> m) {
            ObjectNode o = object();
            m.forEach((k, val) -> o.set(String.valueOf(k), node(val)));
            return o;
        }
        if (v instanceof Collection<?> c) {
            ArrayNode a = array();
            c.forEach(x -> a.add(node(x)));
            return a;
        }
        if (v instanceof Object[] arr) {
            ArrayNode a = array();
            for (Object x : arr) a.add(node(x));
            return a;
        }
        return F.textNode(v.toString());
    }

    public static String write(JsonNode n) {
        try {
            return MAPPER.writeValueAsString(n);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise JSON: " + e.getMessage(), e);
        }
    }

    public static JsonNode parse(String s) throws JsonProcessingException { return MAPPER.readTree(s); }
}
