package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.json.Json;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** What /object_info reports for a node class, and what validation checks against. */
public record NodeSchema(String name, String displayName, String category, String description, String pythonModule,
                         boolean outputNode, Map<String, InputSpec> required, Map<String, InputSpec> optional,
                         Map<String, String> hidden, List<String> outputs, List<String> outputNames, List<Boolean> outputIsList,
                         boolean experimental) {

    /** The spec of an input and whether it is required; empty for unknown names. */
    public Optional<InputSpec> input(String name) {
        InputSpec s = required.get(name);
        return Optional.ofNullable(s != null ? s : optional.get(name));
    }

    /** ComfyUI's node_info(): the entry of /object_info. */
    public ObjectNode toJson() {
        ObjectNode o = Json.object();
        ObjectNode input = Json.object();
        ObjectNode req = Json.object();
        required.forEach((k, v) -> req.set(k, v.toJson()));
        input.set("required", req);
        if (!optional.isEmpty()) {
            ObjectNode opt = Json.object();
            optional.forEach((k, v) -> opt.set(k, v.toJson()));
            input.set("optional", opt);
        }
        if (!hidden.isEmpty()) input.set("hidden", Json.node(hidden));
        o.set("input", input);
        ObjectNode order = Json.object();
        order.set("required", Json.node(new ArrayList<>(required.keySet())));
        if (!optional.isEmpty()) order.set("optional", Json.node(new ArrayList<>(optional.keySet())));
        if (!hidden.isEmpty()) order.set("hidden", Json.node(new ArrayList<>(hidden.keySet())));
        o.set("input_order", order);
        o.set("output", Json.node(outputs));
        o.set("output_is_list", Json.node(outputIsList));
        o.set("output_name", Json.node(outputNames));
        o.put("name", name);
        o.put("display_name", displayName);
        o.put("description", description);
        o.put("python_module", pythonModule);
        o.put("category", category);
        o.put("output_node", outputNode);
        if (experimental) o.put("experimental", true);
        return o;
    }

    public static Builder builder(String name) { return new Builder(name); }

    /** Builds a schema in the order ComfyUI's INPUT_TYPES dicts list inputs. */
    public static final class Builder {
        private final String name;
        private String displayName, category = "sd", description = "", module = "nodes";
        private boolean outputNode, experimental;
        private final Map<String, InputSpec> required = new LinkedHashMap<>(), optional = new LinkedHashMap<>();
        private final Map<String, String> hidden = new LinkedHashMap<>();
        private final List<String> outputs = new ArrayList<>(), outputNames = new ArrayList<>();

        private Builder(String name) {
            this.name = name;
            this.displayName = name;
        }

        public Builder display(String d) { displayName = d; return this; }

        public Builder category(String c) { category = c; return this; }

        public Builder description(String d) { description = d; return this; }

        public Builder module(String m) { module = m; return this; }

        public Builder outputNode() { outputNode = true; return this; }

        public Builder experimental() { experimental = true; return this; }

        public Builder required(String input, InputSpec spec) { required.put(input, spec); return this; }

        public Builder required(String input, String type) { return required(input, InputSpec.of(type)); }

        public Builder optional(String input, InputSpec spec) { optional.put(input, spec); return this; }

        public Builder hidden(String input, String kind) { hidden.put(input, kind); return this; }

        /** Adds an output; its name is the type unless {@link #output(String, String)} names it. */
        public Builder output(String type) { return output(type, type); }

        public Builder output(String type, String outputName) {
            outputs.add(type);
            outputNames.add(outputName);
            return this;
        }

        public NodeSchema build() {
            return new NodeSchema(name, displayName, category, description, module, outputNode,
                    Collections.unmodifiableMap(new LinkedHashMap<>(required)), Collections.unmodifiableMap(new LinkedHashMap<>(optional)),
                    Collections.unmodifiableMap(new LinkedHashMap<>(hidden)), List.copyOf(outputs), List.copyOf(outputNames),
                    Collections.nCopies(outputs.size(), false), experimental);
        }
    }
}
