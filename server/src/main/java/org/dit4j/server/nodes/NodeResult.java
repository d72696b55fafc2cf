package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.Arrays;
import java.util.List;

/** A node's return: one value per output slot, and the UI dict output nodes report ({@code {"images": [...]}}). */
public record NodeResult(List<Object> outputs, ObjectNode ui) {

    public static NodeResult of(Object... outputs) { return new NodeResult(Arrays.asList(outputs), null); }

    public static NodeResult ui(ObjectNode ui) { return new NodeResult(List.of(), ui); }
}
