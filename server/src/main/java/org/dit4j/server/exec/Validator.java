package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;
import org.dit4j.server.nodes.InputSpec;
import org.dit4j.server.nodes.Node;
import org.dit4j.server.nodes.NodeCatalog;
import org.dit4j.server.nodes.NodeEnv;
import org.dit4j.server.nodes.NodeSchema;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * ComfyUI's {@code execution.validate_prompt}: finds the output nodes, validates each one's inputs recursively,
 * converts literals in place (INT, FLOAT, STRING, BOOLEAN as Python's int(), float(), str(), bool() would) and
 * reports problems with ComfyUI's error types, messages and {@code node_errors} layout.
 */
public final class Validator {

    /** {@code (valid, error, good_outputs, node_errors)}. */
    public record Result(boolean ok, ObjectNode error, List<String> outputs, ObjectNode nodeErrors) {}

    private record Checked(boolean valid, List<ObjectNode> errors) {}

    private final NodeCatalog catalog;
    private final NodeEnv env;

    public Validator(NodeCatalog catalog, NodeEnv env) {
        this.catalog = catalog;
        this.env = env;
    }

    /** Validates {@code prompt} (mutating literal inputs to their converted values, as ComfyUI does). */
    public Result validate(ObjectNode prompt, List<String> partialTargets) {
        Map<String, NodeSchema> schemas = new HashMap<>();
        Set<String> outputs = new LinkedHashSet<>();
        for (var e : prompt.properties()) {
            String id = e.getKey();
            JsonNode node = e.getValue();
            JsonNode title = node.isObject() ? node.path("_meta").path("title") : null;
            if (!node.isObject() || !node.has("class_type")) {
                String t = title != null && title.isTextual() && !title.textValue().isEmpty() ? title.textValue() : "ID #" + id;
                return fail(error("missing_node_type", "Node '" + t + "' has no class_type. The workflow may be corrupted or a custom node is missing.",
                        "Node ID '#" + id + "'", Json.obj("node_id", id, "class_type", null, "node_title", title != null && title.isTextual() ? title.textValue() : null)));
            }
            String classType = PyJson.str(node.get("class_type"));
            Node n = node.get("class_type").isTextual() ? catalog.get(classType).orElse(null) : null;
            if (n == null) {
                String t = title != null && title.isTextual() ? title.textValue() : classType;
                return fail(error("missing_node_type", "Node '" + t + "' not found. The custom node may not be installed.",
                        "Node ID '#" + id + "'", Json.obj("node_id", id, "class_type", classType, "node_title", t)));
            }
            NodeSchema s = n.schema(env);
            schemas.put(id, s);
            if (s.outputNode() && (partialTargets == null || partialTargets.contains(id))) outputs.add(id);
        }
        if (outputs.isEmpty()) return fail(error("prompt_no_outputs", "Prompt has no outputs", "", Json.object()));

        List<String> good = new ArrayList<>();
        List<Map.Entry<String, List<ObjectNode>>> errors = new ArrayList<>();
        ObjectNode nodeErrors = Json.object();
        Map<String, Checked> validated = new LinkedHashMap<>();
        for (String o : outputs) {
            Checked m;
            try {
                m = validateInputs(prompt, o, validated, schemas);
            } catch (PyError ex) {
                m = new Checked(false, List.of(error("exception_during_validation", "Exception when validating node", ex.getMessage(),
                        Json.obj("exception_type", ex.pyType, "traceback", List.of()))));
                validated.put(o, m);
            }
            if (m.valid) {
                good.add(o);
                continue;
            }
            errors.add(Map.entry(o, m.errors));
            for (var v : validated.entrySet()) {
                if (v.getValue().valid || v.getValue().errors.isEmpty()) continue;
                String nodeId = v.getKey();
                if (!nodeErrors.has(nodeId)) {
                    ObjectNode ne = Json.object();
                    ne.set("errors", Json.node(v.getValue().errors));
                    ne.set("dependent_outputs", Json.array());
                    ne.put("class_type", PyJson.str(prompt.get(nodeId).get("class_type")));
                    nodeErrors.set(nodeId, ne);
                }
                ((ArrayNode) nodeErrors.get(nodeId).get("dependent_outputs")).add(o);
            }
        }
        if (good.isEmpty()) {
            List<String> lines = new ArrayList<>();
            for (var e : errors) for (ObjectNode err : e.getValue()) lines.add(err.get("message").asText() + ": " + err.get("details").asText());
            return new Result(false, error("prompt_outputs_failed_validation", "Prompt outputs failed validation", String.join("\n", lines),
                    Json.object()), List.of(), nodeErrors);
        }
        return new Result(true, null, good, nodeErrors);
    }

    private Result fail(ObjectNode error) { return new Result(false, error, List.of(), Json.object()); }

    static ObjectNode error(String type, String message, String details, ObjectNode extraInfo) {
        return Json.obj("type", type, "message", message, "details", details, "extra_info", extraInfo);
    }

    private Checked validateInputs(ObjectNode prompt, String id, Map<String, Checked> validated, Map<String, NodeSchema> schemas) {
        Checked done = validated.get(id);
        if (done != null) return done;
        JsonNode nodeJson = prompt.get(id);
        if (nodeJson == null) throw new PyError("KeyError", PyJson.strRepr(id));
        if (!nodeJson.has("inputs")) throw new PyError("KeyError", "'inputs'");
        if (!nodeJson.get("inputs").isObject()) throw new PyError("AttributeError", "inputs of node " + id + " is not a dict");
        ObjectNode inputs = (ObjectNode) nodeJson.get("inputs");
        NodeSchema schema = schemas.get(id);
        Node node = catalog.get(nodeJson.get("class_type").textValue()).orElseThrow();
        Set<String> selfValidated = node.selfValidated();

        List<ObjectNode> errors = new ArrayList<>();
        boolean valid = true;
        Map<String, InputSpec> all = new LinkedHashMap<>(schema.required());
        all.putAll(schema.optional());
        for (var in : all.entrySet()) {
            String x = in.getKey();
            InputSpec spec = in.getValue();
            boolean required = schema.required().containsKey(x);
            if (!inputs.has(x)) {
                if (required)
                    errors.add(error("required_input_missing", "Required input is missing", x, Json.obj("input_name", x)));
                continue;
            }
            JsonNode val = inputs.get(x);
            if (val.isArray()) {
                if (val.size() != 2) {
                    errors.add(error("bad_linked_input", "Bad linked input, must be a length-2 list of [node_id, slot_index]", x,
                            Json.obj("input_name", x, "input_config", spec.inputConfig(), "received_value", val)));
                    continue;
                }
                String oId = linkKey(prompt, val.get(0));
                NodeSchema src = schemas.get(oId);
                String receivedType = outputType(src, val.get(1));
                String inputType = spec.isCombo() ? null : spec.type();
                if (!typesMatch(receivedType, inputType)) {
                    String inputTypeText = spec.isCombo() ? PyJson.listRepr(spec.combo()) : spec.type();
                    errors.add(error("return_type_mismatch", "Return type mismatch between linked nodes",
                            x + ", received_type(" + receivedType + ") mismatch input_type(" + inputTypeText + ")",
                            Json.obj("input_name", x, "input_config", spec.inputConfig(), "received_type", receivedType, "linked_node", val)));
                    continue;
                }
                try {
                    Checked r = validateInputs(prompt, oId, validated, schemas);
                    if (!r.valid) valid = false;
                } catch (PyError ex) {
                    valid = false;
                    validated.put(oId, new Checked(false, List.of(error("exception_during_inner_validation", "Exception when validating inner node",
                            ex.getMessage(), Json.obj("input_name", x, "input_config", spec.inputConfig(), "exception_message", ex.getMessage(),
                                    "exception_type", ex.pyType, "traceback", List.of(), "linked_node", val)))));
                }
                continue;
            }
            if (val.isObject() && val.has("__value__")) {
                val = val.get("__value__");
                inputs.set(x, val);
            }
            if (!spec.isCombo()) {
                try {
                    JsonNode converted = Literals.convert(spec.type(), val);
                    if (converted != val) {
                        inputs.set(x, converted);
                        val = converted;
                    }
                } catch (PyError ex) {
                    errors.add(error("invalid_input_type", "Failed to convert an input value to a " + spec.type() + " value",
                            x + ", " + PyJson.str(val) + ", " + ex.getMessage(),
                            Json.obj("input_name", x, "input_config", spec.inputConfig(), "received_value", val, "exception_message", ex.getMessage())));
                    continue;
                }
            }
            if (selfValidated.contains(x)) continue;
            Object min = spec.option("min"), max = spec.option("max");
            if (min != null && val.isNumber() && compare(val, min) < 0) {
                errors.add(error("value_smaller_than_min", "Value " + PyJson.str(val) + " smaller than min of " + pyStr(min), x,
                        Json.obj("input_name", x, "input_config", spec.inputConfig(), "received_value", val)));
                continue;
            }
            if (max != null && val.isNumber() && compare(val, max) > 0) {
                errors.add(error("value_bigger_than_max", "Value " + PyJson.str(val) + " bigger than max of " + pyStr(max), x,
                        Json.obj("input_name", x, "input_config", spec.inputConfig(), "received_value", val)));
                continue;
            }
            if (spec.isCombo() && !(val.isTextual() && spec.combo().contains(val.textValue()))) {
                boolean big = spec.combo().size() > 20;
                String listInfo = big ? "(list of length " + spec.combo().size() + ")" : PyJson.listRepr(spec.combo());
                errors.add(error("value_not_in_list", "Value not in list", x + ": '" + PyJson.str(val) + "' not in " + listInfo,
                        Json.obj("input_name", x, "input_config", big ? null : spec.inputConfig(), "received_value", val)));
            }
        }
        if (!selfValidated.isEmpty()) {
            Map<String, JsonNode> literals = new LinkedHashMap<>();
            for (String x : selfValidated) if (inputs.has(x) && !inputs.get(x).isArray()) literals.put(x, inputs.get(x));
            if (!literals.isEmpty()) {
                String r = node.validate(env, literals);
                if (r != null)
                    for (String x : literals.keySet())
                        errors.add(error("custom_validation_failed", "Custom validation failed for node", x + " - " + r, Json.obj("input_name", x)));
            }
        }
        Checked ret = new Checked(errors.isEmpty() && valid, List.copyOf(errors));
        validated.put(id, ret);
        return ret;
    }

    /** The prompt key a link's node id names; Python raises KeyError when it is missing (ids are strings). */
    static String linkKey(ObjectNode prompt, JsonNode ref) {
        if (!ref.isTextual() || !prompt.has(ref.textValue())) throw new PyError("KeyError", PyJson.pyRepr(ref));
        return ref.textValue();
    }

    /** {@code RETURN_TYPES[slot]} with Python's indexing errors. */
    static String outputType(NodeSchema src, JsonNode slot) {
        if (!slot.isIntegralNumber()) {
            String t = slot.isTextual() ? "str" : slot.isFloatingPointNumber() ? "float" : slot.isBoolean() ? "bool" : slot.isNull() ? "NoneType"
                    : slot.isArray() ? "list" : "dict";
            if (!slot.isBoolean()) throw new PyError("TypeError", "tuple indices must be integers or slices, not " + t);
        }
        int n = src.outputs().size();
        long i = slot.isBoolean() ? (slot.booleanValue() ? 1 : 0) : slot.asLong();
        if (i < -n || i >= n) throw new PyError("IndexError", "tuple index out of range");
        return src.outputs().get((int) (i < 0 ? n + i : i));
    }

    /** comfy_execution.validation.validate_node_input (non-strict): equal, '*', or intersecting comma-separated unions. */
    static boolean typesMatch(String received, String input) {
        if (received.equals(input)) return true;
        if (input == null) return false;
        Set<String> r = new LinkedHashSet<>(), i = new LinkedHashSet<>();
        for (String t : received.split(",")) r.add(t.strip());
        for (String t : input.split(",")) i.add(t.strip());
        if (r.contains("*") || i.contains("*")) return true;
        r.retainAll(i);
        return !r.isEmpty();
    }

    private static int compare(JsonNode val, Object bound) {
        BigDecimal v = val.isIntegralNumber() ? new BigDecimal(val.bigIntegerValue()) : BigDecimal.valueOf(val.doubleValue());
        BigDecimal b = bound instanceof BigInteger bi ? new BigDecimal(bi) : bound instanceof Double d ? BigDecimal.valueOf(d)
                : BigDecimal.valueOf(((Number) bound).longValue());
        return v.compareTo(b);
    }

    private static String pyStr(Object o) {
        return o instanceof Double d ? PyJson.floatRepr(d) : String.valueOf(o);
    }
}
