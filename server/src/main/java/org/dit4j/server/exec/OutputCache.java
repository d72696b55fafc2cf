package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.nodes.Values;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Node outputs keyed by input signature (ComfyUI's CacheKeySetInputSignature with the classic HierarchicalCache
 * policy): a node whose class, literal inputs, IS_CHANGED value and upstream signatures are unchanged is not run
 * again. After each prompt only the entries that prompt used are kept; resources (models, encoders, VAEs) that no
 * kept entry refers to any more are closed.
 */
final class OutputCache {

    /** A cached result: output values, the UI dict (output nodes), and the node it came from. */
    record Entry(List<Object> outputs, ObjectNode ui, String nodeId) {}

    private final Map<String, Entry> entries = new HashMap<>();

    synchronized Entry get(String signature) { return signature == null ? null : entries.get(signature); }

    synchronized void put(String signature, Entry e) { entries.put(signature, e); }

    synchronized int size() { return entries.size(); }

    /** Drops every entry whose signature is not in {@code keep}, closing resources only dropped entries referred to. */
    void retainOnly(Set<String> keep) {
        List<Entry> dropped = new ArrayList<>();
        Set<Object> live = Collections.newSetFromMap(new IdentityHashMap<>());
        synchronized (this) {
            var it = entries.entrySet().iterator();
            while (it.hasNext()) {
                var e = it.next();
                if (keep.contains(e.getKey())) {
                    for (Object o : e.getValue().outputs) collect(o, live);
                } else {
                    dropped.add(e.getValue());
                    it.remove();
                }
            }
        }
        closeUnreferenced(dropped, live);
    }

    /** Drops everything (POST /free {"free_memory": true}). */
    void clear() { retainOnly(Set.of()); }

    private static void closeUnreferenced(List<Entry> dropped, Set<Object> live) {
        Set<Object> closed = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Entry e : dropped)
            for (Object o : e.outputs) {
                Set<Object> res = Collections.newSetFromMap(new IdentityHashMap<>());
                collect(o, res);
                for (Object r : res) {
                    if (live.contains(r) || !closed.add(r)) continue;
                    try {
                        ((AutoCloseable) r).close();
                    } catch (Exception ex) {
                        System.err.println("dit4j server: releasing " + r + " failed: " + ex);
                    }
                }
            }
    }

    /** The closeable resources a value holds (a MODEL holds its weights and LoRAs). */
    static void collect(Object o, Set<Object> out) {
        switch (o) {
            case null -> { }
            case ModelRef m -> {
                out.add(m.base());
                for (ModelRef.LoraApplication l : m.loras()) out.add(l.weights());
            }
            case Values.Guider g -> collect(g.model(), out);
            case Checkpoint c -> {
                out.add(c.model());
                if (c.clip() != null) out.add(c.clip());
                if (c.vae() != null) out.add(c.vae());
            }
            case AutoCloseable a -> out.add(a);
            default -> { }
        }
    }
}
