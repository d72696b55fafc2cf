package org.dit4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.json.Json;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/** A real server on a free loopback port with the fake engine, tiny model files, and HTTP/WebSocket clients. */
final class Harness implements AutoCloseable {

    final Path base;
    /** The fake engine, or null when the harness runs another engine. */
    final FakeEngine engine;
    final ComfyServer server;
    final String url;
    final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    final String token;

    Harness(Path base) throws IOException { this(base, null); }

    Harness(Path base, String token) throws IOException {
        this.base = base;
        this.token = token;
        this.engine = new FakeEngine();
        Path m = base.resolve("models");
        for (String f : List.of("diffusion_models/flux1-dev.safetensors", "unet/flux1-schnell.safetensors", "diffusion_models/broken.safetensors",
                "text_encoders/t5xxl_fp16.safetensors", "clip/clip_l.safetensors", "vae/ae.safetensors", "loras/style.safetensors",
                "checkpoints/flux1-dev-fp8.safetensors")) {
            Files.createDirectories(m.resolve(f).getParent());
            Files.write(m.resolve(f), new byte[]{1, 2, 3});
        }
        ServerConfig cfg = ServerConfig.defaults(base).withPort(0).withToken(token);
        server = new ComfyServer(cfg, engine).start();
        url = "http://127.0.0.1:" + server.port();
    }

    /** A server with {@code engine} over the models already in {@code base/models} (no fake files are written). */
    Harness(Path base, ModelProvider provider, Sampling sampling) throws IOException {
        this(base, provider, sampling, c -> c);
    }

    /** As {@link #Harness(Path, ModelProvider, Sampling)} with the default configuration changed by {@code config}. */
    Harness(Path base, ModelProvider provider, Sampling sampling, java.util.function.UnaryOperator<ServerConfig> config) throws IOException {
        this.base = base;
        this.token = null;
        this.engine = null;
        server = new ComfyServer(config.apply(ServerConfig.defaults(base).withPort(0)), provider, sampling).start();
        url = "http://127.0.0.1:" + server.port();
    }

    HttpRequest.Builder req(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(20));
        if (token != null) b.header("Authorization", "Bearer " + token);
        return b;
    }

    HttpResponse<String> get(String path) throws Exception { return http.send(req(path).GET().build(), HttpResponse.BodyHandlers.ofString()); }

    HttpResponse<byte[]> getBytes(String path) throws Exception { return http.send(req(path).GET().build(), HttpResponse.BodyHandlers.ofByteArray()); }

    HttpResponse<String> post(String path, JsonNode body) throws Exception {
        return http.send(req(path).header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(Json.write(body))).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    JsonNode getJson(String path) throws Exception {
        HttpResponse<String> r = get(path);
        if (r.statusCode() != 200) throw new AssertionError("GET " + path + " → " + r.statusCode() + " " + r.body());
        return Json.parse(r.body());
    }

    /** POST /prompt; returns the parsed body; asserts the status. */
    JsonNode queue(ObjectNode prompt, String clientId, int expectStatus) throws Exception {
        ObjectNode body = Json.obj("prompt", prompt);
        if (clientId != null) body.put("client_id", clientId);
        HttpResponse<String> r = post("/prompt", body);
        if (r.statusCode() != expectStatus) throw new AssertionError("POST /prompt → " + r.statusCode() + " (expected " + expectStatus + "): " + r.body());
        return Json.parse(r.body());
    }

    /** Waits until the history has the prompt. */
    JsonNode awaitHistory(String promptId, long timeoutMillis) throws Exception {
        long end = System.currentTimeMillis() + timeoutMillis;
        while (System.currentTimeMillis() < end) {
            JsonNode h = getJson("/history/" + promptId);
            if (h.has(promptId)) return h.get(promptId);
            Thread.sleep(20);
        }
        throw new AssertionError("prompt " + promptId + " did not finish within " + timeoutMillis + " ms; queue: " + get("/queue").body());
    }

    WsClient ws(String clientId) throws Exception { return new WsClient(this, clientId); }

    @Override public void close() { server.close(); }

    /** The Flux dev API workflow of models.md §4.3 at a small size. */
    static ObjectNode fluxWorkflow(long seed, int size, String text) throws IOException {
        return (ObjectNode) Json.parse("""
            {
             "1": {"class_type":"UNETLoader","inputs":{"unet_name":"flux1-dev.safetensors","weight_dtype":"default"}},
             "2": {"class_type":"DualCLIPLoader","inputs":{"clip_name1":"t5xxl_fp16.safetensors","clip_name2":"clip_l.safetensors","type":"flux"}},
             "3": {"class_type":"VAELoader","inputs":{"vae_name":"ae.safetensors"}},
             "4": {"class_type":"CLIPTextEncode","inputs":{"text":"%s","clip":["2",0]}},
             "5": {"class_type":"FluxGuidance","inputs":{"conditioning":["4",0],"guidance":3.5}},
             "6": {"class_type":"ConditioningZeroOut","inputs":{"conditioning":["4",0]}},
             "7": {"class_type":"EmptySD3LatentImage","inputs":{"width":%d,"height":%d,"batch_size":1}},
             "8": {"class_type":"ModelSamplingFlux","inputs":{"model":["1",0],"max_shift":1.15,"base_shift":0.5,"width":%d,"height":%d}},
             "9": {"class_type":"KSampler","inputs":{"model":["8",0],"seed":%d,"steps":4,"cfg":1.0,"sampler_name":"euler","scheduler":"simple","positive":["5",0],"negative":["6",0],"latent_image":["7",0],"denoise":1.0}},
             "10":{"class_type":"VAEDecode","inputs":{"samples":["9",0],"vae":["3",0]}},
             "11":{"class_type":"SaveImage","inputs":{"images":["10",0],"filename_prefix":"flux"}}
            }""".formatted(text, size, size, size, size, seed));
    }

    /** The SamplerCustomAdvanced variant with TeaCache, MagCache-free compile and parallel loader inserted. */
    static ObjectNode customWorkflow(long seed) throws IOException {
        return (ObjectNode) Json.parse("""
            {
             "1": {"class_type":"ParallelUNETLoader","inputs":{"unet_name":"flux1-dev.safetensors","weight_dtype":"default","num_gpus":2,"ulysses_degree":2,"ring_degree":1,"cfg_degree":1,"pipefusion_degree":1}},
             "2": {"class_type":"DualCLIPLoader","inputs":{"clip_name1":"t5xxl_fp16.safetensors","clip_name2":"clip_l.safetensors","type":"flux"}},
             "3": {"class_type":"VAELoader","inputs":{"vae_name":"ae.safetensors"}},
             "4": {"class_type":"CLIPTextEncode","inputs":{"text":"a red fox in snow","clip":["2",0]}},
             "5": {"class_type":"FluxGuidance","inputs":{"conditioning":["4",0],"guidance":3.5}},
             "7": {"class_type":"EmptySD3LatentImage","inputs":{"width":64,"height":64,"batch_size":1}},
             "8": {"class_type":"ModelSamplingFlux","inputs":{"model":["14",0],"max_shift":1.15,"base_shift":0.5,"width":64,"height":64}},
             "12":{"class_type":"TeaCache","inputs":{"model":["1",0],"model_type":"flux","rel_l1_thresh":0.4,"start_percent":0.0,"end_percent":1.0,"cache_device":"cuda"}},
             "13":{"class_type":"ParallelLoraLoaderModelOnly","inputs":{"model":["12",0],"lora_name":"style.safetensors","strength_model":0.8}},
             "14":{"class_type":"CompileModel","inputs":{"model":["13",0],"mode":"default","backend":"inductor","fullgraph":false,"dynamic":false}},
             "20":{"class_type":"RandomNoise","inputs":{"noise_seed":%d}},
             "21":{"class_type":"BasicGuider","inputs":{"model":["8",0],"conditioning":["5",0]}},
             "22":{"class_type":"KSamplerSelect","inputs":{"sampler_name":"euler"}},
             "23":{"class_type":"BasicScheduler","inputs":{"model":["8",0],"scheduler":"simple","steps":5,"denoise":1.0}},
             "24":{"class_type":"SamplerCustomAdvanced","inputs":{"noise":["20",0],"guider":["21",0],"sampler":["22",0],"sigmas":["23",0],"latent_image":["7",0]}},
             "10":{"class_type":"VAEDecode","inputs":{"samples":["24",0],"vae":["3",0]}},
             "11":{"class_type":"SaveImage","inputs":{"images":["10",0],"filename_prefix":"custom/fox"}}
            }""".formatted(seed));
    }

    /** A WebSocket client that records every text message. */
    static final class WsClient implements WebSocket.Listener, AutoCloseable {
        final List<JsonNode> messages = new ArrayList<>();
        final List<ByteBufferCopy> binary = new ArrayList<>();
        final WebSocket socket;
        private final StringBuilder partial = new StringBuilder();

        record ByteBufferCopy(byte[] data) {}

        WsClient(Harness h, String clientId) throws Exception {
            WebSocket.Builder b = h.http.newWebSocketBuilder();
            if (h.token != null) b.header("Authorization", "Bearer " + h.token);
            socket = b.buildAsync(URI.create(h.url.replace("http", "ws") + "/ws?clientId=" + clientId), this).get(5, TimeUnit.SECONDS);
            // the server registers the session in its connect handler, which can run after the client's handshake has
            // completed; like ComfyUI's clients, wait for the greeting (status with our sid) before queueing prompts
            await(m -> m.path("type").asText().equals("status") && m.path("data").has("sid"), 10000);
        }

        @Override public CompletionStage<?> onText(WebSocket ws, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
                try {
                    JsonNode n = Json.parse(partial.toString());
                    synchronized (messages) {
                        messages.add(n);
                        messages.notifyAll();
                    }
                } catch (IOException e) {
                    throw new AssertionError("server sent invalid JSON: " + partial, e);
                }
                partial.setLength(0);
            }
            ws.request(1);
            return CompletableFuture.completedFuture(null);
        }

        private final java.io.ByteArrayOutputStream partialBinary = new java.io.ByteArrayOutputStream();

        @Override public CompletionStage<?> onBinary(WebSocket ws, java.nio.ByteBuffer data, boolean last) {
            byte[] b = new byte[data.remaining()];
            data.get(b);
            partialBinary.writeBytes(b);
            if (last) {
                synchronized (messages) {
                    binary.add(new ByteBufferCopy(partialBinary.toByteArray()));
                    messages.add(Json.obj("type", "__binary__", "data", Json.obj("index", binary.size() - 1)));
                    messages.notifyAll();
                }
                partialBinary.reset();
            }
            ws.request(1);
            return CompletableFuture.completedFuture(null);
        }

        /** Binary messages received so far. */
        List<byte[]> binaries() {
            synchronized (messages) {
                return binary.stream().map(ByteBufferCopy::data).toList();
            }
        }

        /** Waits for a message matching {@code p}; returns it. */
        JsonNode await(Predicate<JsonNode> p, long timeoutMillis) throws InterruptedException {
            long end = System.currentTimeMillis() + timeoutMillis;
            synchronized (messages) {
                while (true) {
                    for (JsonNode m : messages) if (p.test(m)) return m;
                    long left = end - System.currentTimeMillis();
                    if (left <= 0) throw new AssertionError("no matching WebSocket message within " + timeoutMillis + " ms; got " + messages);
                    messages.wait(left);
                }
            }
        }

        List<JsonNode> snapshot() {
            synchronized (messages) {
                return new ArrayList<>(messages);
            }
        }

        static Predicate<JsonNode> type(String t, String promptId) {
            return m -> m.path("type").asText().equals(t) && (promptId == null || m.path("data").path("prompt_id").asText().equals(promptId));
        }

        @Override public void close() { socket.abort(); }
    }
}
