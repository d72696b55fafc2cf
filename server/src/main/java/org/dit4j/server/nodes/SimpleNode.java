package org.dit4j.server.nodes;

import java.util.function.Function;

/** A node given by a schema function and a body; most nodes are one of these. */
final class SimpleNode implements Node {

    @FunctionalInterface
    interface Body {
        NodeResult run(NodeCall call) throws Exception;
    }

    private final String name;
    private final Function<NodeEnv, NodeSchema> schema;
    private final Body body;

    SimpleNode(String name, Function<NodeEnv, NodeSchema> schema, Body body) {
        this.name = name;
        this.schema = schema;
        this.body = body;
    }

    @Override public String name() { return name; }

    @Override public NodeSchema schema(NodeEnv env) { return schema.apply(env); }

    @Override public NodeResult execute(NodeCall call) throws Exception { return body.run(call); }
}
