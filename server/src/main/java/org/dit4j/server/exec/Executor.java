package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.engine.InterruptedRun;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;
import org.dit4j.server.nodes.InputSpec;
import org.dit4j.server.nodes.Node;
import org.dit4j.server.nodes.NodeCall;
import org.dit4j.server.nodes.NodeCatalog;
import org.dit4j.server.nodes.NodeEnv;
import org.dit4j.server.nodes.NodeResult;
import org.dit4j.server.nodes.NodeSchema;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.preview.LatentPreview;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * ComfyUI's PromptExecutor for one prompt at a time: computes input signatures, reports the cached nodes, runs the
 * nodes the outputs need (dependencies first, cached ones skipped), sends the WebSocket events ComfyUI sends, and
 * builds the history entry. A failing node ends the prompt with {@code execution_error}; the executor stays usable.
 */
public final class Executor {

    private final NodeCatalog catalog;
    private final NodeEnv env;
    private final EventSink events;
    private final Interrupts interrupts;
    private final OutputCache cache = new OutputCache();
    private volatile String lastNodeId, currentClient;
    private final LatentPreview.Method previewMethod;
    private final int previewSize;

    public Executor(NodeCatalog catalog, NodeEnv env, EventSink events, Interrupts interrupts) {
        this(catalog, env, events, interrupts, LatentPreview.Method.NONE, LatentPreview.DEFAULT_SIZE);
    }

    /** With step previews: {@code previewMethod} LATENT2RGB sends a JPEG per sampler step, fitted into previewSize². */
    public Executor(NodeCatalog catalog, NodeEnv env, EventSink events, Interrupts interrupts, LatentPreview.Method previewMethod,
                    int previewSize) {
        this.catalog = catalog;
        this.env = env;
        this.events = events;
        this.interrupts = interrupts;
        this.previewMethod = previewMethod;
        this.previewSize = previewSize;
    }

    /** The node running now and the client it reports to (for a WebSocket that reconnects mid-run). */
    public String lastNodeId() { return lastNodeId; }

    public String currentClient() { return currentClient; }

    /** Drops every cached node output (POST /free with free_memory). */
    public void resetCache() { cache.clear(); }

    int cachedEntries() { return cache.size(); }

    /** Runs one queued prompt; returns the history entry ({@code prompt}, {@code outputs}, {@code status}, {@code meta}). */
    public ObjectNode execute(QueueItem item) {
        interrupts.clear();
        String promptId = item.promptId();
        ObjectNode prompt = item.prompt();
        JsonNode cid = item.extraData().get("client_id");
        String client = cid != null && cid.isTextual() ? cid.textValue() : null;
        currentClient = client;
        ArrayNode messages = Json.array();
        Run run = new Run(promptId, client, messages);

        run.message("execution_start", Json.obj("prompt_id", promptId), false);
        Map<String, String> sigs = new HashMap<>();
        for (String id : iterable(prompt)) signature(prompt, id, sigs);
        List<String> cached = new ArrayList<>();
        for (String id : iterable(prompt)) if (cache.get(sigs.get(id)) != null) cached.add(id);
        run.message("execution_cached", Json.obj("nodes", cached, "prompt_id", promptId), false);

        List<String> order = new ArrayList<>();
        Set<String> seen = new LinkedHashSet<>();
        for (String o : item.outputs()) plan(prompt, o, sigs, seen, order, true);

        List<String> executed = new ArrayList<>();
        boolean success = true;
        Map<String, ObjectNode> progressState = new LinkedHashMap<>();
        for (String id : order) {
            String sig = sigs.get(id);
            String classType = prompt.get(id).get("class_type").textValue();
            OutputCache.Entry hit = cache.get(sig);
            if (hit != null) {
                if (client != null)
                    events.send("executed", Json.obj("node", id, "display_node", id, "output", hit.ui(), "prompt_id", promptId), client);
                continue;
            }
            Map<String, Object> inputs = null;
            try {
                Node node = catalog.get(classType).orElseThrow(() -> new IllegalStateException("node class " + classType + " vanished"));
                NodeSchema schema = node.schema(env);
                inputs = gatherInputs(prompt, id, schema, sigs);
                progress(run, progressState, id, "running", 0, 1);
                if (client != null) {
                    lastNodeId = id;
                    events.send("executing", Json.obj("node", id, "display_node", id, "prompt_id", promptId), client);
                }
                interrupts.check();
                StepObserver observer = new StepObserver() {
                    @Override public void stepDone(int step, int total) {
                        interrupts.check();
                        events.send("progress", Json.obj("value", step + 1, "max", total, "prompt_id", promptId, "node", id), client);
                        progress(run, progressState, id, "running", step + 1, total);
                    }

                    @Override public void stepDone(int step, int total, LatentFormat format, float[] x0, long[] shape) {
                        stepDone(step, total);
                        if (previewMethod == LatentPreview.Method.LATENT2RGB && format != null && x0 != null)
                            sendPreview(format, x0, shape, client);
                    }
                };
                JsonNode extraPng = item.extraData().get("extra_pnginfo");
                NodeResult r = node.execute(new NodeCall(id, inputs, prompt, extraPng, env, observer, interrupts::check));
                if (r.outputs().size() < schema.outputs().size())
                    throw new IllegalStateException("node " + classType + " returned " + r.outputs().size() + " outputs, its schema declares "
                            + schema.outputs().size());
                cache.put(sig, new OutputCache.Entry(List.copyOf(nullSafe(r.outputs())), r.ui(), id));
                if (r.ui() != null && client != null)
                    events.send("executed", Json.obj("node", id, "display_node", id, "output", r.ui(), "prompt_id", promptId), client);
                progress(run, progressState, id, "finished", 1, 1);
                executed.add(id);
            } catch (InterruptedRun ex) {
                run.message("execution_interrupted", Json.obj("prompt_id", promptId, "node_id", id, "node_type", classType, "executed", executed), true);
                success = false;
                break;
            } catch (Throwable ex) {
                ObjectNode formatted = Json.object();
                if (inputs != null) inputs.forEach((k, v) -> formatted.set(k, Json.array().add(formatValue(v))));
                List<String> trace = new ArrayList<>();
                for (StackTraceElement el : ex.getStackTrace()) {
                    if (trace.size() >= 30) break;
                    trace.add("  at " + el + "\n");
                }
                String msg = ex.getMessage() == null ? ex.toString() : ex.getMessage();
                if (ex instanceof OutOfMemoryError) msg += "\nThis error means the server ran out of memory. TIPS: lower the batch size or resolution.";
                System.err.println("dit4j server: node " + id + " (" + classType + ") of prompt " + promptId + " failed: " + ex);
                run.message("execution_error", Json.obj("prompt_id", promptId, "node_id", id, "node_type", classType, "executed", executed,
                        "exception_message", msg, "exception_type", ex.getClass().getName(), "traceback", trace,
                        "current_inputs", formatted, "current_outputs", cached), false);
                success = false;
                break;
            }
        }
        lastNodeId = null;
        if (success) run.message("execution_success", Json.obj("prompt_id", promptId), false, true);

        ObjectNode outputs = Json.object(), meta = Json.object();
        for (String id : iterable(prompt)) {
            OutputCache.Entry e = cache.get(sigs.get(id));
            if (e != null && e.ui() != null) {
                outputs.set(id, e.ui());
                meta.set(id, Json.obj("node_id", id, "display_node", id, "parent_node", null, "real_node_id", id));
            }
        }
        cache.retainOnly(new LinkedHashSet<>(sigs.values()));
        ObjectNode h = Json.object();
        h.set("prompt", item.toJson());
        h.set("outputs", outputs);
        h.set("status", Json.obj("status_str", success ? "success" : "error", "completed", success, "messages", messages));
        h.set("meta", meta);
        currentClient = null;
        return h;
    }

    /** Events that also go into the history's status messages (ComfyUI's add_message). */
    private final class Run {
        final String promptId, client;
        final ArrayNode messages;

        Run(String promptId, String client, ArrayNode messages) {
            this.promptId = promptId;
            this.client = client;
            this.messages = messages;
        }

        void message(String event, ObjectNode data, boolean broadcast) { message(event, data, broadcast, false); }

        /** {@code deferSend}: recorded now, sent by {@link Executor#afterHistoryStored} once the history entry exists. */
        void message(String event, ObjectNode data, boolean broadcast, boolean deferSend) {
            data.put("timestamp", System.currentTimeMillis());
            messages.add(Json.array().add(event).add(data));
            if (client == null && !broadcast) return;
            if (!deferSend) events.send(event, data, client);
        }
    }

    /** Sends what {@link #execute} deferred (execution_success) once the caller stored the history entry. */
    public void afterHistoryStored(ObjectNode history) {
        JsonNode msgs = history.path("status").path("messages");
        String client = history.path("prompt").path(3).path("client_id").textValue();
        for (JsonNode m : msgs)
            if (m.get(0).asText().equals("execution_success") && client != null) events.send("execution_success", m.get(1), client);
    }

    /** ComfyUI sends the preview after the step's progress event, to the prompt's client (to every client without one). */
    private void sendPreview(LatentFormat format, float[] x0, long[] shape, String client) {
        byte[] jpeg;
        try {
            jpeg = LatentPreview.jpeg(format, x0, shape, previewSize);
        } catch (RuntimeException e) {
            System.err.println("dit4j server: preview failed (" + e.getMessage() + "); continuing without it");
            return;
        }
        events.sendBinary(LatentPreview.message(LatentPreview.JPEG, jpeg), client);
    }

    private void progress(Run run, Map<String, ObjectNode> state, String id, String st, double value, double max) {
        state.put(id, Json.obj("value", value, "max", max, "state", st, "node_id", id, "prompt_id", run.promptId,
                "display_node_id", id, "parent_node_id", null, "real_node_id", id));
        ObjectNode nodes = Json.object();
        state.forEach(nodes::set);
        events.send("progress_state", Json.obj("prompt_id", run.promptId, "nodes", nodes), run.client);
    }

    /** Post-order walk from an output: uncached dependencies first; cached nodes are not entered. */
    private void plan(ObjectNode prompt, String id, Map<String, String> sigs, Set<String> seen, List<String> order, boolean isOutput) {
        if (!seen.add(id)) return;
        if (!isOutput && cache.get(sigs.get(id)) != null) return;
        if (isOutput && cache.get(sigs.get(id)) != null) {
            order.add(id);
            return;
        }
        JsonNode inputs = prompt.get(id).get("inputs");
        for (var e : inputs.properties()) {
            JsonNode v = e.getValue();
            if (v.isArray() && v.size() == 2 && v.get(0).isTextual() && prompt.has(v.get(0).textValue()))
                plan(prompt, v.get(0).textValue(), sigs, seen, order, false);
        }
        order.add(id);
    }

    private Map<String, Object> gatherInputs(ObjectNode prompt, String id, NodeSchema schema, Map<String, String> sigs) {
        Map<String, Object> out = new LinkedHashMap<>();
        JsonNode inputs = prompt.get(id).get("inputs");
        for (var e : inputs.properties()) {
            InputSpec spec = schema.input(e.getKey()).orElse(null);
            if (spec == null) continue;
            JsonNode v = e.getValue();
            if (v.isArray() && v.size() == 2) {
                OutputCache.Entry src = cache.get(sigs.get(v.get(0).textValue()));
                out.put(e.getKey(), src == null ? null : src.outputs().get(v.get(1).asInt() < 0 ? src.outputs().size() + v.get(1).asInt() : v.get(1).asInt()));
            } else {
                out.put(e.getKey(), literal(spec, v));
            }
        }
        return out;
    }

    /** A validated literal as the Java value nodes read: INT → Long (64-bit two's complement), FLOAT → Double, ... */
    static Object literal(InputSpec spec, JsonNode v) {
        if (spec.isCombo()) return v.isTextual() ? v.textValue() : PyJson.str(v);
        return switch (spec.type()) {
            case "INT" -> v.isIntegralNumber() ? v.bigIntegerValue().longValue() : (long) v.asDouble();
            case "FLOAT" -> v.asDouble();
            case "BOOLEAN" -> v.asBoolean();
            case "STRING" -> v.isTextual() ? v.textValue() : PyJson.str(v);
            default -> v.isTextual() ? v.textValue() : v;
        };
    }

    private static JsonNode formatValue(Object v) {
        if (v == null || v instanceof String || v instanceof Number || v instanceof Boolean) return Json.node(v);
        return Json.F.textNode(v.toString());
    }

    private static List<Object> nullSafe(List<Object> l) {
        List<Object> out = new ArrayList<>(l.size());
        out.addAll(l);
        return java.util.Collections.unmodifiableList(out);
    }

    /**
     * The input signature (ComfyUI's CacheKeySetInputSignature): class, IS_CHANGED value and inputs sorted by name,
     * links replaced by the upstream node's signature and slot; hashed. Null for nodes that cannot be signed
     * (malformed or unknown); such nodes are never cached.
     */
    private String signature(ObjectNode prompt, String id, Map<String, String> memo) {
        if (memo.containsKey(id)) return memo.get(id);
        memo.put(id, null);                                   // cycles resolve to "uncacheable"
        JsonNode node = prompt.get(id);
        if (node == null || !node.isObject() || !node.path("class_type").isTextual() || !node.path("inputs").isObject()) return null;
        Node n = catalog.get(node.get("class_type").textValue()).orElse(null);
        if (n == null) return null;
        ArrayNode sig = Json.array();
        sig.add(node.get("class_type").textValue());
        TreeMap<String, JsonNode> sorted = new TreeMap<>();
        Map<String, JsonNode> literals = new LinkedHashMap<>();
        for (var e : node.get("inputs").properties()) {
            JsonNode v = e.getValue();
            if (v.isArray() && v.size() == 2) {
                String up = v.get(0).isTextual() ? signature(prompt, v.get(0).textValue(), memo) : null;
                if (up == null) return null;
                sorted.put(e.getKey(), Json.array().add("link").add(up).add(v.get(1)));
            } else {
                sorted.put(e.getKey(), v);
                literals.put(e.getKey(), v);
            }
        }
        String fp = n.fingerprint(env, literals);
        sig.add(fp == null ? Json.F.nullNode() : Json.F.textNode(fp));
        ObjectNode ins = Json.object();
        sorted.forEach(ins::set);
        sig.add(ins);
        String s = sha256(Json.write(sig));
        memo.put(id, s);
        return s;
    }

    private static String sha256(String s) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Iterable<String> iterable(ObjectNode o) {
        List<String> l = new ArrayList<>();
        o.fieldNames().forEachRemaining(l::add);
        return l;
    }

}
