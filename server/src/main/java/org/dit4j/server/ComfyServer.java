package org.dit4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.config.SizeUnit;
import io.javalin.http.HttpResponseException;
import io.javalin.router.JavalinDefaultRoutingApi;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.exec.Executor;
import org.dit4j.server.exec.Interrupts;
import org.dit4j.server.exec.PromptQueue;
import org.dit4j.server.exec.QueueItem;
import org.dit4j.server.exec.Validator;
import org.dit4j.server.files.ExtraModelPaths;
import org.dit4j.server.files.ModelFolders;
import org.dit4j.server.http.Api;
import org.dit4j.server.json.Json;
import org.dit4j.server.nodes.NodeCatalog;
import org.dit4j.server.nodes.NodeEnv;
import org.dit4j.server.preview.LatentPreview;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

/**
 * dit4j's ComfyUI-compatible server: ComfyUI's HTTP routes (also under /api) and WebSocket events on Javalin/Jetty,
 * the prompt queue with one worker thread, the executor and the node catalog. Start with {@link #start()}, stop
 * with {@link #close()}.
 */
public final class ComfyServer implements AutoCloseable {

    /** The ComfyUI version whose API this server follows (reported in /system_stats). */
    public static final String COMFYUI_API_VERSION = "0.3.60";

    private final ServerConfig config;
    private final ModelProvider provider;
    private final NodeCatalog catalog;
    private final ModelFolders folders;
    private final NodeEnv env;
    private final Api api;
    private final PromptQueue queue;
    private final Executor executor;
    private final Interrupts interrupts = new Interrupts();
    private Javalin app;
    private Thread worker;
    private volatile boolean stopping;

    public <E extends ModelProvider & Sampling> ComfyServer(ServerConfig config, E engine) throws IOException {
        this(config, engine, engine);
    }

    public ComfyServer(ServerConfig config, ModelProvider provider, Sampling sampling) throws IOException {
        this.config = config;
        this.provider = provider;
        this.catalog = NodeCatalog.standard();
        this.folders = ModelFolders.standard(config.modelsDir());
        for (Path yaml : config.extraModelPaths()) {
            if (!Files.isRegularFile(yaml)) throw new IOException("extra model paths file " + yaml + " does not exist");
            ExtraModelPaths.apply(yaml, folders);
        }
        for (Path d : List.of(config.outputDir(), config.inputDir(), config.tempDir())) Files.createDirectories(d);
        folders.createMissing(List.of("diffusion_models", "text_encoders", "vae", "loras", "checkpoints", "tokenizers"));
        this.env = new NodeEnv(folders, config.inputDir().toAbsolutePath().normalize(), config.outputDir().toAbsolutePath().normalize(),
                config.tempDir().toAbsolutePath().normalize(), provider, sampling, config.gpus(), config.disableMetadata());
        this.api = new Api(this);
        this.queue = new PromptQueue(api::queueChanged);
        this.executor = new Executor(catalog, env, api.hub(), interrupts, config.previewMethod(), config.previewSize());
    }

    public ServerConfig config() { return config; }

    public NodeCatalog catalog() { return catalog; }

    public NodeEnv env() { return env; }

    public ModelFolders folders() { return folders; }

    public PromptQueue queue() { return queue; }

    public Executor executor() { return executor; }

    public Interrupts interrupts() { return interrupts; }

    public ModelProvider provider() { return provider; }

    /** A fresh validator (validation reads the folders at call time). */
    public Validator validator() { return new Validator(catalog, env); }

    /** Binds and starts serving; returns this. */
    public synchronized ComfyServer start() {
        if (app != null) throw new IllegalStateException("server already started");
        app = Javalin.create(cfg -> {
            cfg.startup.showJavalinBanner = false;
            cfg.jetty.host = config.host();
            cfg.jetty.port = config.port();
            cfg.http.maxRequestSize = config.maxUploadBytes();
            cfg.jetty.multipartConfig.maxFileSize(config.maxUploadBytes(), SizeUnit.BYTES);
            cfg.jetty.multipartConfig.maxTotalRequestSize(config.maxUploadBytes() + (1 << 20), SizeUnit.BYTES);
            cfg.jetty.multipartConfig.maxInMemoryFileSize(8, SizeUnit.MB);
            cfg.jetty.modifyWebSocketServletFactory(f -> {
                f.setIdleTimeout(java.time.Duration.ofMinutes(30));
                f.setMaxTextMessageSize(1 << 20);
            });
            JavalinDefaultRoutingApi r = cfg.routes;
            r.before(api::guard);
            r.exception(HttpResponseException.class, (e, ctx) -> ctx.status(e.getStatus()).json(Json.write(Json.obj("error", e.getMessage()))));
            r.exception(Exception.class, (e, ctx) -> {
                System.err.println("dit4j server: " + ctx.method() + " " + ctx.path() + " failed: " + e);
                ctx.status(500).contentType("application/json").result(Json.write(Json.obj("error", Json.obj("type", "server_error",
                        "message", String.valueOf(e.getMessage()), "details", e.getClass().getName(), "extra_info", Json.object()))));
            });
            for (String prefix : List.of("", "/api")) api.routes(r, prefix);
        });
        app.start();
        if (config.previewMethod() != LatentPreview.Method.NONE)
            Thread.ofPlatform().name("dit4j-preview-warmup").daemon().start(() -> {
                try {
                    LatentPreview.warmUp();
                } catch (RuntimeException | LinkageError e) {
                    System.err.println("dit4j server: previews may not work here: " + e);
                }
            });
        worker = Thread.ofPlatform().name("dit4j-prompt-worker").daemon().start(this::workLoop);
        return this;
    }

    /** The bound port (useful with port 0). */
    public int port() { return app.port(); }

    private void workLoop() {
        while (!stopping) {
            try {
                PromptQueue.Task t = queue.take(500);
                if (t != null) {
                    ObjectNode h = executor.execute(t.item());
                    queue.taskDone(t, h, false);
                    executor.afterHistoryStored(h);
                    queue.changed();
                    JsonNode client = t.item().extraData().get("client_id");
                    if (client != null && client.isTextual())
                        api.hub().send("executing", Json.obj("node", null, "prompt_id", t.item().promptId()), client.textValue());
                }
                Map<String, Boolean> flags = queue.takeFlags();
                boolean freeMemory = flags.getOrDefault("free_memory", false);
                if (flags.getOrDefault("unload_models", freeMemory)) provider.unloadModels();
                if (freeMemory) executor.resetCache();
            } catch (InterruptedException e) {
                return;
            } catch (Throwable e) {
                System.err.println("dit4j server: prompt worker caught " + e + "; continuing");
            }
        }
    }

    /** Queues a validated prompt (the body of POST /prompt after validation). */
    public QueueItem enqueue(Number number, String promptId, ObjectNode prompt, ObjectNode extraData, List<String> outputs, ObjectNode sensitive) {
        QueueItem item = new QueueItem(number, promptId, prompt, extraData, outputs, sensitive, queue.nextSequence());
        queue.put(item);
        return item;
    }

    /** Running and pending items as /queue reports them. */
    public ObjectNode queueJson() {
        ArrayNode running = Json.array(), pending = Json.array();
        queue.runningItems().forEach(i -> running.add(i.toJson()));
        queue.pendingItems().forEach(i -> pending.add(i.toJson()));
        return Json.obj("queue_running", running, "queue_pending", pending);
    }

    @Override public synchronized void close() {
        stopping = true;
        interrupts.request();
        if (worker != null) {
            worker.interrupt();
            try {
                worker.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (app != null) app.stop();
        api.hub().close();
        executor.resetCache();
    }

}
