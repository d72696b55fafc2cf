package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.engine.StepObserver;

import java.util.Map;

/**
 * One execution of a node: its inputs (link values and literals converted to Long, Double, String, Boolean),
 * the hidden values (prompt, extra_pnginfo, unique_id), the environment and the progress/interrupt hooks.
 */
public record NodeCall(String nodeId, Map<String, Object> inputs, ObjectNode prompt, JsonNode extraPngInfo, NodeEnv env,
                       StepObserver progress, Runnable interruptCheck) {

    public boolean has(String name) { return inputs.get(name) != null; }

    public Object raw(String name) { return inputs.get(name); }

    public <T> T get(String name, Class<T> type) {
        Object v = inputs.get(name);
        if (v == null) throw new IllegalArgumentException("node " + nodeId + ": input '" + name + "' has no value");
        if (!type.isInstance(v))
            throw new IllegalArgumentException("node " + nodeId + ": input '" + name + "' must be " + type.getSimpleName()
                    + ", got " + v.getClass().getSimpleName() + " (" + v + ")");
        return type.cast(v);
    }

    public <T> T optional(String name, Class<T> type) { return has(name) ? get(name, type) : null; }

    public String string(String name) { return get(name, String.class); }

    public long integer(String name) { return get(name, Long.class); }

    /** An INT input as int, refusing values outside the int range. */
    public int int32(String name) {
        long v = integer(name);
        if (v < Integer.MIN_VALUE || v > Integer.MAX_VALUE)
            throw new IllegalArgumentException("node " + nodeId + ": input '" + name + "' = " + v + " does not fit a 32-bit integer");
        return (int) v;
    }

    public double number(String name) { return get(name, Double.class); }

    public boolean bool(String name) { return get(name, Boolean.class); }
}
