package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.JsonNode;

import java.util.Map;
import java.util.Set;

/** A node class of the API format ({@code class_type}). Implementations are stateless; caching is the executor's. */
public interface Node {

    /** The class_type this node answers to. */
    String name();

    /** INPUT_TYPES and the rest of node_info; combos may list files, so the schema is recomputed when asked. */
    NodeSchema schema(NodeEnv env);

    /** Runs the node; inputs hold linked values and converted literals by name. */
    NodeResult execute(NodeCall call) throws Exception;

    /**
     * Inputs this node validates itself (ComfyUI's VALIDATE_INPUTS arguments): for these the generic min/max and
     * combo checks are skipped and {@link #validate} decides.
     */
    default Set<String> selfValidated() { return Set.of(); }

    /** VALIDATE_INPUTS: null when valid, else the reason (reported as custom_validation_failed). */
    default String validate(NodeEnv env, Map<String, JsonNode> literals) { return null; }

    /** IS_CHANGED: a value that changes when the node's result would (e.g. a file hash); null for pure nodes. */
    default String fingerprint(NodeEnv env, Map<String, JsonNode> literals) { return null; }
}
