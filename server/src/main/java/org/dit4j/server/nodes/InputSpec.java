package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import org.dit4j.server.json.Json;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One input of a node as ComfyUI's INPUT_TYPES declares it: a type name ({@code INT}, {@code FLOAT},
 * {@code STRING}, {@code BOOLEAN}, or a link type such as {@code MODEL}) or a combo (list of allowed strings), plus
 * options ({@code default}, {@code min}, {@code max}, {@code step}, {@code tooltip}, ...).
 */
public record InputSpec(String type, List<String> combo, Map<String, Object> options) {

    public InputSpec {
        if ((type == null) == (combo == null)) throw new IllegalArgumentException("an input is either a type or a combo");
        combo = combo == null ? null : List.copyOf(combo);
        options = new LinkedHashMap<>(options);
    }

    public static InputSpec of(String type) { return new InputSpec(type, null, Map.of()); }

    public static InputSpec of(String type, Object... kv) { return new InputSpec(type, null, map(kv)); }

    public static InputSpec combo(List<String> values, Object... kv) { return new InputSpec(null, values, map(kv)); }

    public boolean isCombo() { return combo != null; }

    /** True for the widget types whose values are literals in the API format. */
    public boolean isPrimitive() { return isCombo() || List.of("INT", "FLOAT", "STRING", "BOOLEAN").contains(type); }

    public Object option(String key) { return options.get(key); }

    /** The object_info form: {@code [type]}, {@code [type, options]} or {@code [[values...], options]}. */
    public ArrayNode toJson() {
        ArrayNode a = Json.array();
        a.add(isCombo() ? Json.node(combo) : Json.node(type));
        if (!options.isEmpty()) a.add(Json.node(options));
        return a;
    }

    /** The {@code input_config} ComfyUI puts into validation errors: {@code [type_or_list, options]}. */
    public JsonNode inputConfig() {
        ArrayNode a = Json.array();
        a.add(isCombo() ? Json.node(combo) : Json.node(type));
        a.add(Json.node(options));
        return a;
    }

    private static Map<String, Object> map(Object... kv) {
        if (kv.length % 2 != 0) throw new IllegalArgumentException("options need key/value pairs");
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) m.put((String) Objects.requireNonNull(kv[i]), kv[i + 1]);
        return m;
    }
}
