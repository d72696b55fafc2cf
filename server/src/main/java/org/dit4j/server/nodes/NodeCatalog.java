package org.dit4j.server.nodes;

import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/** The node classes the server offers (ComfyUI's NODE_CLASS_MAPPINGS). */
public final class NodeCatalog {

    private final Map<String, Node> nodes = new LinkedHashMap<>();

    /** Every node dit4j implements: ComfyUI core nodes for Flux/Wan workflows and the TACO-style acceleration nodes. */
    public static NodeCatalog standard() {
        NodeCatalog c = new NodeCatalog();
        LoaderNodes.register(c);
        ConditioningNodes.register(c);
        LatentNodes.register(c);
        SamplingNodes.register(c);
        ImageNodes.register(c);
        AccelerationNodes.register(c);
        return c;
    }

    public NodeCatalog register(Node n) {
        if (nodes.putIfAbsent(n.name(), n) != null) throw new IllegalStateException("node class " + n.name() + " registered twice");
        return this;
    }

    public Optional<Node> get(String classType) { return Optional.ofNullable(nodes.get(classType)); }

    public Collection<Node> all() { return Collections.unmodifiableCollection(nodes.values()); }
}
