package org.dit4j.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.http.Context;
import io.javalin.http.UnauthorizedResponse;
import io.javalin.http.UploadedFile;
import io.javalin.router.JavalinDefaultRoutingApi;
import io.javalin.websocket.WsConfig;
import org.dit4j.server.ComfyServer;
import org.dit4j.server.engine.DeviceInfo;
import org.dit4j.server.exec.QueueItem;
import org.dit4j.server.exec.Validator;
import org.dit4j.server.files.AtomicFiles;
import org.dit4j.server.files.SafePaths;
import org.dit4j.server.image.Images;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;
import org.dit4j.server.nodes.Node;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The route handlers: ComfyUI's server.py routes with its request and response shapes, plus the safety checks
 * (bearer token, origin check, traversal-proof /view and /upload/image, size limits).
 */
public final class Api {

    private static final Set<String> SENSITIVE_EXTRA_DATA_KEYS = Set.of("auth_token_comfy_org", "api_key_comfy_org");

    private final ComfyServer server;
    private final WsHub hub = new WsHub();
    private final AtomicLong number = new AtomicLong();

    public Api(ComfyServer server) { this.server = server; }

    public WsHub hub() { return hub; }

    /** Broadcasts {@code status} (ComfyUI's queue_updated). */
    public void queueChanged() { hub.send("status", Json.obj("status", queueInfo()), null); }

    private ObjectNode queueInfo() { return Json.obj("exec_info", Json.obj("queue_remaining", server.queue().remaining())); }

    /** Registers every route under {@code prefix} ("" and "/api"). */
    public void routes(JavalinDefaultRoutingApi r, String prefix) {
        r.ws(prefix + "/ws", this::websocket);
        r.get(prefix.isEmpty() ? "/" : prefix + "/", ctx -> ctx.contentType("text/plain; charset=utf-8")
                .result("dit4j: ComfyUI-compatible API (ComfyUI " + ComfyServer.COMFYUI_API_VERSION + " routes). No web UI is bundled.\n"));
        r.get(prefix + "/embeddings", ctx -> json(ctx, Json.node(server.folders().list("embeddings").stream()
                .map(f -> f.contains(".") ? f.substring(0, f.lastIndexOf('.')) : f).toList())));
        r.get(prefix + "/models", ctx -> json(ctx, Json.node(server.folders().names())));
        r.get(prefix + "/models/{folder}", ctx -> {
            String folder = ctx.pathParam("folder");
            if (!server.folders().names().contains(folder)) ctx.status(404);
            else json(ctx, Json.node(server.folders().list(folder)));
        });
        r.get(prefix + "/extensions", ctx -> json(ctx, Json.array()));
        r.get(prefix + "/system_stats", ctx -> json(ctx, systemStats()));
        r.get(prefix + "/features", ctx -> json(ctx, features()));
        r.get(prefix + "/prompt", ctx -> json(ctx, queueInfo()));
        r.post(prefix + "/prompt", this::postPrompt);
        r.get(prefix + "/object_info", ctx -> {
            ObjectNode out = Json.object();
            for (Node n : server.catalog().all()) out.set(n.name(), n.schema(server.env()).toJson());
            json(ctx, out);
        });
        r.get(prefix + "/object_info/{node_class}", ctx -> {
            ObjectNode out = Json.object();
            server.catalog().get(ctx.pathParam("node_class")).ifPresent(n -> out.set(n.name(), n.schema(server.env()).toJson()));
            json(ctx, out);
        });
        r.get(prefix + "/history", ctx -> {
            Integer max = ctx.queryParam("max_items") == null ? null : Integer.parseInt(ctx.queryParam("max_items"));
            int offset = ctx.queryParam("offset") == null ? -1 : Integer.parseInt(ctx.queryParam("offset"));
            json(ctx, Json.node(server.queue().history(null, max, offset)));
        });
        r.get(prefix + "/history/{prompt_id}", ctx -> json(ctx, Json.node(server.queue().history(ctx.pathParam("prompt_id"), null, -1))));
        r.post(prefix + "/history", ctx -> {
            JsonNode body = bodyJson(ctx);
            if (body.path("clear").asBoolean(false)) server.queue().wipeHistory();
            for (JsonNode id : body.path("delete")) server.queue().deleteHistory(id.asText());
            ctx.status(200);
        });
        r.get(prefix + "/queue", ctx -> json(ctx, server.queueJson()));
        r.post(prefix + "/queue", ctx -> {
            JsonNode body = bodyJson(ctx);
            if (body.path("clear").asBoolean(false)) server.queue().wipe();
            for (JsonNode id : body.path("delete")) server.queue().delete(id.asText());
            ctx.status(200);
        });
        r.post(prefix + "/interrupt", ctx -> {
            JsonNode body = bodyJsonOrEmpty(ctx);
            String id = body.path("prompt_id").isTextual() && !body.get("prompt_id").textValue().isEmpty() ? body.get("prompt_id").textValue() : null;
            if (id == null || server.queue().runningItems().stream().anyMatch(i -> i.promptId().equals(id))) server.interrupts().request();
            ctx.status(200);
        });
        r.post(prefix + "/free", ctx -> {
            JsonNode body = bodyJson(ctx);
            if (body.path("unload_models").asBoolean(false)) server.queue().setFlag("unload_models", true);
            if (body.path("free_memory").asBoolean(false)) server.queue().setFlag("free_memory", true);
            ctx.status(200);
        });
        r.get(prefix + "/view", this::view);
        r.post(prefix + "/upload/image", this::upload);
    }

    // ------------------------------------------------------------------ guard: token, origin, CORS

    /** Bearer token (when configured) and ComfyUI's origin check against cross-site requests to loopback. */
    public void guard(Context ctx) {
        String cors = server.config().corsOrigin();
        if (cors != null) {
            ctx.header("Access-Control-Allow-Origin", cors);
            ctx.header("Access-Control-Allow-Methods", "POST, GET, DELETE, PUT, OPTIONS");
            ctx.header("Access-Control-Allow-Headers", "Content-Type, Authorization");
            ctx.header("Access-Control-Allow-Credentials", "true");
        } else if (!originAllowed(ctx.header("Host"), ctx.header("Origin"))) {
            throw new io.javalin.http.ForbiddenResponse("request with non matching host and origin");
        }
        if (!authorized(ctx.header("Authorization"), ctx.queryParam("token")))
            throw new UnauthorizedResponse("a bearer token is required: send 'Authorization: Bearer <token>'");
    }

    boolean authorized(String header, String queryToken) {
        String token = server.config().token();
        if (token == null) return true;
        String given = header != null && header.regionMatches(true, 0, "Bearer ", 0, 7) ? header.substring(7).strip() : queryToken;
        return given != null && MessageDigest.isEqual(given.getBytes(StandardCharsets.UTF_8), token.getBytes(StandardCharsets.UTF_8));
    }

    /** ComfyUI's origin_only_middleware: for a loopback Host, an Origin naming another host is refused. */
    static boolean originAllowed(String host, String origin) {
        if (host == null || origin == null) return true;
        try {
            URI o = URI.create(origin);
            URI h = URI.create("//" + host.toLowerCase(Locale.ROOT));
            if (h.getHost() == null || o.getHost() == null) return true;
            if (!isLoopback(h.getHost())) return true;
            String hostDomain = o.getPort() == -1 ? h.getHost() : h.getHost() + (h.getPort() == -1 ? "" : ":" + h.getPort());
            String originDomain = h.getPort() == -1 ? o.getHost() : o.getHost() + (o.getPort() == -1 ? "" : ":" + o.getPort());
            return hostDomain.equalsIgnoreCase(originDomain);
        } catch (IllegalArgumentException e) {
            return false;
        }
    }

    private static boolean isLoopback(String host) {
        String h = host.startsWith("[") ? host.substring(1, host.length() - 1) : host;
        if (h.equals("localhost")) return true;
        if (!h.matches("[0-9.]+|[0-9a-fA-F:]+")) return false;
        try {
            return InetAddress.getByName(h).isLoopbackAddress();
        } catch (IOException e) {
            return false;
        }
    }

    // ------------------------------------------------------------------ websocket

    private void websocket(WsConfig ws) {
        ws.onConnect(ctx -> {
            if (!authorized(ctx.header("Authorization"), ctx.queryParam("token"))) {
                ctx.closeSession(new org.eclipse.jetty.websocket.core.CloseStatus(1008, "unauthorized"));
                return;
            }
            if (server.config().corsOrigin() == null && !originAllowed(ctx.header("Host"), ctx.header("Origin"))) {
                ctx.closeSession(new org.eclipse.jetty.websocket.core.CloseStatus(1008, "origin not allowed"));
                return;
            }
            String sid = ctx.queryParam("clientId");
            if (sid == null || sid.isEmpty()) sid = UUID.randomUUID().toString().replace("-", "");
            ctx.attribute("sid", sid);
            ctx.attribute("first", Boolean.TRUE);
            ctx.enableAutomaticPings(20, java.util.concurrent.TimeUnit.SECONDS);
            hub.add(sid, ctx);
            hub.send("status", Json.obj("status", queueInfo(), "sid", sid), sid);
            String last = server.executor().lastNodeId();
            if (sid.equals(server.executor().currentClient()) && last != null) hub.send("executing", Json.obj("node", last), sid);
        });
        ws.onMessage(ctx -> {
            String sid = ctx.attribute("sid");
            boolean first = Boolean.TRUE.equals(ctx.attribute("first"));
            ctx.attribute("first", Boolean.FALSE);
            if (!first || sid == null) return;
            try {
                JsonNode msg = Json.parse(ctx.message());
                if ("feature_flags".equals(msg.path("type").asText())) hub.send("feature_flags", features(), sid);
            } catch (IOException e) {
                // ComfyUI logs and ignores invalid JSON from clients
            }
        });
        ws.onClose(ctx -> {
            String sid = ctx.attribute("sid");
            if (sid != null) hub.remove(sid, ctx);
        });
        ws.onError(ctx -> {
            String sid = ctx.attribute("sid");
            if (sid != null) hub.remove(sid, ctx);
        });
    }

    private ObjectNode features() {
        return Json.obj("supports_preview_metadata", false, "max_upload_size", server.config().maxUploadBytes());
    }

    // ------------------------------------------------------------------ POST /prompt

    private void postPrompt(Context ctx) {
        JsonNode body;
        try {
            body = Json.parse(new String(ctx.bodyAsBytes(), StandardCharsets.UTF_8));
        } catch (IOException e) {
            badRequest(ctx, null, "invalid_json", "The request body is not valid JSON", e.getMessage());
            return;
        }
        if (body == null || !body.isObject()) {
            badRequest(ctx, null, "invalid_json", "The request body must be a JSON object", "got " + (body == null ? "nothing" : body.getNodeType()));
            return;
        }
        Number num;
        if (body.has("number")) {
            JsonNode n = body.get("number");
            try {
                num = n.isNumber() ? n.doubleValue() : Double.parseDouble(n.asText().strip());
            } catch (NumberFormatException e) {
                badRequest(ctx, null, "invalid_prompt", "'number' must be a number", "got " + n);
                return;
            }
        } else {
            long v = number.getAndIncrement();
            num = body.path("front").asBoolean(false) ? -v : v;
        }
        if (!body.has("prompt")) {
            badRequest(ctx, null, "no_prompt", "No prompt provided", "No prompt provided");
            return;
        }
        if (!body.get("prompt").isObject()) {
            badRequest(ctx, null, "invalid_prompt", "The prompt must be a JSON object keyed by node id (the API format)",
                    "got " + body.get("prompt").getNodeType());
            return;
        }
        ObjectNode prompt = (ObjectNode) body.get("prompt");
        String promptId = body.has("prompt_id") && !body.get("prompt_id").isNull() ? PyJson.str(body.get("prompt_id")) : UUID.randomUUID().toString();
        List<String> partial = null;
        if (body.has("partial_execution_targets") && body.get("partial_execution_targets").isArray()) {
            partial = new ArrayList<>();
            for (JsonNode t : body.get("partial_execution_targets")) partial.add(t.asText());
        }
        Validator.Result v = server.validator().validate(prompt, partial);
        ObjectNode extra = body.path("extra_data").isObject() ? ((ObjectNode) body.get("extra_data")).deepCopy() : Json.object();
        if (body.has("client_id")) extra.set("client_id", body.get("client_id"));
        if (!v.ok()) {
            ctx.status(400);
            json(ctx, Json.obj("error", v.error(), "node_errors", v.nodeErrors()));
            return;
        }
        ObjectNode sensitive = Json.object();
        for (String k : SENSITIVE_EXTRA_DATA_KEYS) if (extra.has(k)) sensitive.set(k, extra.remove(k));
        extra.put("create_time", System.currentTimeMillis());
        QueueItem item = server.enqueue(num, promptId, prompt, extra, v.outputs(), sensitive);
        json(ctx, Json.obj("prompt_id", item.promptId(), "number", item.number(), "node_errors", v.nodeErrors()));
    }

    private static void badRequest(Context ctx, Object unused, String type, String message, String details) {
        ctx.status(400);
        json(ctx, Json.obj("error", Json.obj("type", type, "message", message, "details", details, "extra_info", Json.object()), "node_errors", Json.object()));
    }

    // ------------------------------------------------------------------ /view

    private Optional<Path> dirByType(String type) {
        return switch (type) {
            case "output" -> Optional.of(server.env().outputDir());
            case "input" -> Optional.of(server.env().inputDir());
            case "temp" -> Optional.of(server.env().tempDir());
            default -> Optional.empty();
        };
    }

    private void view(Context ctx) throws IOException {
        String filename = ctx.queryParam("filename");
        if (filename == null) {
            ctx.status(404);
            return;
        }
        Path dir = null;
        for (String t : List.of("output", "input", "temp"))
            if (filename.endsWith("[" + t + "]")) {
                dir = dirByType(t).orElseThrow();
                filename = filename.substring(0, filename.length() - t.length() - 2).strip();
            }
        if (filename.isEmpty() || filename.startsWith("/") || filename.contains("..") || filename.indexOf('\0') >= 0 || filename.contains("\\")) {
            ctx.status(400);
            return;
        }
        if (dir == null) {
            Optional<Path> d = dirByType(Optional.ofNullable(ctx.queryParam("type")).orElse("output"));
            if (d.isEmpty()) {
                ctx.status(400);
                return;
            }
            dir = d.get();
        }
        Path root = dir;
        String subfolder = ctx.queryParam("subfolder");
        if (subfolder != null && !subfolder.isEmpty()) {
            Optional<Path> sub = SafePaths.inside(root, subfolder);
            if (sub.isEmpty()) {
                ctx.status(403);
                return;
            }
            dir = sub.get();
        }
        String base = filename.contains("/") ? filename.substring(filename.lastIndexOf('/') + 1) : filename;
        Path file = dir.resolve(base).normalize();
        if (!file.startsWith(root)) {
            ctx.status(403);
            return;
        }
        if (!Files.isRegularFile(file)) {
            ctx.status(404);
            return;
        }
        if (!SafePaths.realInside(root, file)) {            // a symbolic link that leads out of the folder
            ctx.status(403);
            return;
        }
        byte[] data = Files.readAllBytes(file);
        ctx.header("Content-Disposition", "filename=\"" + base.replace("\"", "") + "\"");
        String preview = ctx.queryParam("preview");
        String channel = ctx.queryParam("channel");
        if (preview != null) {
            String[] p = preview.split(";");
            int quality = 90;
            if (p[p.length - 1].matches("\\d+")) quality = Integer.parseInt(p[p.length - 1]);
            try {
                ctx.contentType("image/jpeg").result(Images.jpeg(data, quality));
                return;
            } catch (IOException e) {
                // not an image: fall through and send the file as it is
            }
        }
        if (channel != null && (channel.equals("rgb") || channel.equals("a"))) {
            BufferedImage img = ImageIO.read(new ByteArrayInputStream(data));
            if (img != null) {
                BufferedImage out;
                if (channel.equals("rgb")) {
                    out = new BufferedImage(img.getWidth(), img.getHeight(), BufferedImage.TYPE_INT_RGB);
                    out.getGraphics().drawImage(img, 0, 0, null);
                } else {
                    out = new BufferedImage(img.getWidth(), img.getHeight(), BufferedImage.TYPE_INT_ARGB);
                    for (int y = 0; y < img.getHeight(); y++)
                        for (int x = 0; x < img.getWidth(); x++) out.setRGB(x, y, img.getColorModel().hasAlpha() ? img.getRGB(x, y) & 0xff000000 : 0xff000000);
                }
                ByteArrayOutputStream bos = new ByteArrayOutputStream();
                ImageIO.write(out, "png", bos);
                ctx.contentType("image/png").result(bos.toByteArray());
                return;
            }
        }
        ctx.contentType(contentType(base)).result(data);
    }

    static String contentType(String name) {
        String n = name.toLowerCase(Locale.ROOT);
        if (n.endsWith(".png")) return "image/png";
        if (n.endsWith(".jpg") || n.endsWith(".jpeg")) return "image/jpeg";
        if (n.endsWith(".webp")) return "image/webp";
        if (n.endsWith(".gif")) return "image/gif";
        if (n.endsWith(".mp4")) return "video/mp4";
        if (n.endsWith(".webm")) return "video/webm";
        if (n.endsWith(".json")) return "application/json";
        return "application/octet-stream";
    }

    // ------------------------------------------------------------------ /upload/image

    private void upload(Context ctx) throws IOException {
        long declared = ctx.req().getContentLengthLong();
        if (declared > server.config().maxUploadBytes() + (1 << 20)) {
            ctx.status(413).result("upload larger than the limit of " + server.config().maxUploadBytes() + " bytes");
            return;
        }
        UploadedFile image;
        try {
            image = ctx.uploadedFile("image");
        } catch (Exception e) {
            boolean tooLarge = declared > server.config().maxUploadBytes();
            ctx.status(tooLarge ? 413 : 400).result(tooLarge ? "upload larger than the limit of " + server.config().maxUploadBytes() + " bytes"
                    : "malformed multipart body: " + e.getMessage());
            return;
        }
        if (image == null) {
            ctx.status(400).result("multipart field 'image' is missing");
            return;
        }
        String type = Optional.ofNullable(ctx.formParam("type")).orElse("input");
        Optional<Path> dirOpt = dirByType(type);
        String filename = image.filename();
        if (dirOpt.isEmpty() || filename == null || filename.isEmpty()) {
            ctx.status(400);
            return;
        }
        Path dir = dirOpt.get();
        String subfolder = Optional.ofNullable(ctx.formParam("subfolder")).orElse("");
        String rel = subfolder.isEmpty() ? filename : subfolder + "/" + filename;
        Optional<Path> target = SafePaths.inside(dir, rel);
        if (target.isEmpty() || filename.contains("/") || filename.contains("\\")) {
            ctx.status(400);
            return;
        }
        byte[] data;
        try (InputStream in = image.content()) {
            data = in.readNBytes((int) Math.min(Integer.MAX_VALUE - 8, server.config().maxUploadBytes() + 1));
        }
        if (data.length > server.config().maxUploadBytes()) {
            ctx.status(413);
            return;
        }
        Path path = target.get();
        String overwrite = ctx.formParam("overwrite");
        boolean duplicate = false;
        if (!("true".equals(overwrite) || "1".equals(overwrite))) {
            int dot = filename.lastIndexOf('.');
            String stem = dot <= 0 ? filename : filename.substring(0, dot), ext = dot <= 0 ? "" : filename.substring(dot);
            int i = 1;
            while (Files.exists(path)) {
                if (Arrays.equals(Files.readAllBytes(path), data)) {
                    duplicate = true;
                    break;
                }
                filename = stem + " (" + i + ")" + ext;
                path = path.resolveSibling(filename);
                i++;
            }
        }
        if (!duplicate) AtomicFiles.write(path, data);
        json(ctx, Json.obj("name", filename, "subfolder", subfolder, "type", type));
    }

    // ------------------------------------------------------------------ /system_stats

    private ObjectNode systemStats() {
        var mem = org.dit4j.server.HostMemory.read();
        ObjectNode system = Json.obj("os", System.getProperty("os.name").toLowerCase(Locale.ROOT).contains("win") ? "nt" : "posix",
                "ram_total", mem.total(), "ram_free", mem.free(),
                "comfyui_version", ComfyServer.COMFYUI_API_VERSION + "+dit4j", "required_frontend_version", "",
                "python_version", "Java " + Runtime.version(), "pytorch_version", "dit4j 0.1.0",
                "embedded_python", false, "argv", ManagementFactory.getRuntimeMXBean().getInputArguments());
        ArrayNode devices = Json.array();
        for (DeviceInfo d : server.provider().devices())
            devices.add(Json.obj("name", d.name(), "type", d.type(), "index", d.index(), "vram_total", d.vramTotal(), "vram_free", d.vramFree(),
                    "torch_vram_total", d.vramTotal(), "torch_vram_free", d.vramFree()));
        return Json.obj("system", system, "devices", devices);
    }

    // ------------------------------------------------------------------ helpers

    private static JsonNode bodyJson(Context ctx) {
        try {
            JsonNode n = Json.parse(new String(ctx.bodyAsBytes(), StandardCharsets.UTF_8));
            if (n == null || !n.isObject()) throw new io.javalin.http.BadRequestResponse("the request body must be a JSON object");
            return n;
        } catch (IOException e) {
            throw new io.javalin.http.BadRequestResponse("the request body is not valid JSON: " + e.getMessage());
        }
    }

    private static JsonNode bodyJsonOrEmpty(Context ctx) {
        try {
            JsonNode n = Json.parse(new String(ctx.bodyAsBytes(), StandardCharsets.UTF_8));
            return n != null && n.isObject() ? n : Json.object();
        } catch (IOException e) {
            return Json.object();
        }
    }

    static void json(Context ctx, JsonNode n) { ctx.contentType("application/json; charset=utf-8").result(Json.write(n)); }

}
