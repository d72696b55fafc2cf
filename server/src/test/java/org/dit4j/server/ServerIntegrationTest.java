package org.dit4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The real server on a loopback port, driven over HTTP and WebSocket with the fake engine. */
class ServerIntegrationTest {

    @TempDir static Path dir;
    static Harness h;

    @BeforeAll static void start() throws Exception { h = new Harness(dir); }

    @AfterAll static void stop() { h.close(); }

    private static String id(JsonNode r) { return r.get("prompt_id").asText(); }

    @Test void fluxWorkflowEndToEnd() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            JsonNode status = ws.await(Harness.WsClient.type("status", null), 5000);
            assertEquals(client, status.path("data").path("sid").asText());
            assertTrue(status.path("data").path("status").path("exec_info").has("queue_remaining"));

            ObjectNode prompt = Harness.fluxWorkflow(7, 64, "a red fox in snow");
            ObjectNode body = Json.obj("prompt", prompt, "client_id", client,
                    "extra_data", Json.obj("extra_pnginfo", Json.obj("workflow", Json.obj("nodes", List.of(1, 2), "note", "caf\u00e9"))));
            HttpResponse<String> resp = h.post("/prompt", body);
            assertEquals(200, resp.statusCode(), resp.body());
            JsonNode r = Json.parse(resp.body());
            String pid = id(r);
            assertTrue(r.get("number").isIntegralNumber());
            assertEquals(0, r.get("node_errors").size());

            ws.await(m -> m.path("type").asText().equals("executing") && m.path("data").path("node").isNull()
                    && m.path("data").path("prompt_id").asText().equals(pid), 10000);
            List<String> types = ws.snapshot().stream().filter(m -> m.path("data").path("prompt_id").asText().equals(pid))
                    .map(m -> m.get("type").asText()).filter(t -> !t.equals("progress_state")).toList();
            assertEquals("execution_start", types.get(0));
            assertEquals("execution_cached", types.get(1));
            assertEquals("execution_success", types.get(types.size() - 2));
            assertEquals("executing", types.get(types.size() - 1));
            List<JsonNode> progress = ws.snapshot().stream().filter(Harness.WsClient.type("progress", pid)::test).toList();
            assertEquals(4, progress.size());
            for (int i = 0; i < 4; i++) {
                assertEquals(i + 1, progress.get(i).path("data").path("value").asInt());
                assertEquals(4, progress.get(i).path("data").path("max").asInt());
                assertEquals("9", progress.get(i).path("data").path("node").asText());
            }
            JsonNode executed = ws.await(Harness.WsClient.type("executed", pid), 1000);
            assertEquals("11", executed.path("data").path("node").asText());
            JsonNode img = executed.path("data").path("output").path("images").get(0);
            assertEquals("output", img.path("type").asText());
            assertTrue(img.path("filename").asText().matches("flux_\\d{5}_\\.png"), img.toString());

            JsonNode hist = h.awaitHistory(pid, 5000);
            assertEquals("success", hist.path("status").path("status_str").asText());
            assertTrue(hist.path("status").path("completed").asBoolean());
            assertEquals(img, hist.path("outputs").path("11").path("images").get(0));
            assertEquals(pid, hist.path("prompt").get(1).asText());
            assertEquals("execution_start", hist.path("status").path("messages").get(0).get(0).asText());

            // the sampler received ComfyUI's schedule for ModelSamplingFlux at 64x64
            SampleJob job = h.engine.jobs.stream().filter(j -> j.noiseSeed() == 7).findFirst().orElseThrow();
            float[] expected = Schedulers.calculate(ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, 64, 64)), "simple", 4);
            assertArrayEquals(expected, job.sigmas());
            assertEquals(1.0, job.cfg());
            assertEquals(3.5, job.positive().entries().getFirst().guidance());

            HttpResponse<byte[]> view = h.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=&type=output");
            assertEquals(200, view.statusCode());
            assertEquals("image/png", view.headers().firstValue("Content-Type").orElse("").split(";")[0]);
            BufferedImage png = ImageIO.read(new ByteArrayInputStream(view.body()));
            assertEquals(64, png.getWidth());
            assertEquals(64, png.getHeight());
            // the fake model's x0 for channel 0, through sigmoid, truncated to 8 bits as SaveImage does
            float[] emb = ((FakeEngine.Embedding) job.positive().entries().getFirst().embedding()).values();
            int red = (png.getRGB(10, 10) >>> 16) & 0xff;
            int want = org.dit4j.server.image.Png.toByte((float) (1 / (1 + Math.exp(-(emb[0] * 3f)))));
            assertTrue(Math.abs(red - want) <= 1, "red " + red + " vs " + want);

            Map<String, String> text = pngText(view.body());
            assertEquals(PyJson.dumps(prompt), text.get("prompt"));
            assertEquals("{\"nodes\": [1, 2], \"note\": \"caf\\u00e9\"}", text.get("workflow"));
            assertEquals(new ArrayList<>(List.of("prompt", "workflow")), new ArrayList<>(text.keySet()));
        }
    }

    @Test void saveAnimatedWebpWritesOneLosslessFramePerImageWithComfyUisExif() throws Exception {
        ObjectNode prompt = Harness.fluxWorkflow(21, 64, "a fox");
        ((ObjectNode) prompt.get("7").get("inputs")).put("batch_size", 3);
        prompt.set("12", Json.parse("""
            {"class_type":"SaveAnimatedWEBP","inputs":{"images":["10",0],"filename_prefix":"anim/fox","fps":8.0,"lossless":true,"quality":80,"method":"default"}}"""));
        ObjectNode body = Json.obj("prompt", prompt, "client_id", "webp", "extra_data", Json.obj("extra_pnginfo", Json.obj("workflow", Json.obj("a", 1))));
        HttpResponse<String> resp = h.post("/prompt", body);
        assertEquals(200, resp.statusCode(), resp.body());
        JsonNode hist = h.awaitHistory(id(Json.parse(resp.body())), 10000);
        assertEquals("success", hist.path("status").path("status_str").asText(), hist.toString());
        JsonNode out = hist.path("outputs").path("12");
        assertEquals(Json.parse("[true]"), out.path("animated"));
        JsonNode img = out.path("images").get(0);
        assertEquals("anim", img.path("subfolder").asText());
        assertTrue(img.path("filename").asText().matches("fox_\\d{5}_\\.webp"), img.toString());
        HttpResponse<byte[]> view = h.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=anim&type=output");
        assertEquals(200, view.statusCode());
        assertEquals("image/webp", view.headers().firstValue("Content-Type").orElse("").split(";")[0]);
        byte[] webp = view.body();
        assertEquals("RIFF", new String(webp, 0, 4, java.nio.charset.StandardCharsets.US_ASCII));
        java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(webp).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int pos = 12, frames = 0;
        String exif = null;
        while (pos < webp.length) {
            String fourcc = new String(webp, pos, 4, java.nio.charset.StandardCharsets.US_ASCII);
            int size = bb.getInt(pos + 4);
            if (fourcc.equals("ANMF")) {
                frames++;
                int dur = (webp[pos + 20] & 0xFF) | (webp[pos + 21] & 0xFF) << 8 | (webp[pos + 22] & 0xFF) << 16;
                assertEquals(125, dur, "int(1000/fps) ms");
            }
            if (fourcc.equals("EXIF")) exif = new String(webp, pos + 8, size, java.nio.charset.StandardCharsets.ISO_8859_1);
            pos += 8 + size + (size & 1);
        }
        assertEquals(3, frames);
        assertTrue(exif != null && exif.startsWith("II*\0"), "EXIF chunk with a little-endian TIFF");
        assertTrue(exif.contains("prompt:" + PyJson.dumps(prompt) + "\0"), "EXIF 0x0110 prompt:<json>");
        assertTrue(exif.contains("workflow:{\"a\": 1}\0"), "EXIF 0x010F workflow:<json>");
        // the frames are SaveImage's pixels exactly (lossless); checked by libwebp when a Python with Pillow is here
        String python = org.dit4j.engine.video.WebpWriterTestAccess.python();
        if (python != null) {
            java.nio.file.Path f = java.nio.file.Files.createTempFile("anim", ".webp"), raw = java.nio.file.Files.createTempFile("anim", ".rgb");
            java.nio.file.Files.write(f, webp);
            java.io.ByteArrayOutputStream all = new java.io.ByteArrayOutputStream();
            JsonNode pngs = hist.path("outputs").path("11").path("images");
            assertEquals(3, pngs.size());
            for (JsonNode pi : pngs) {
                BufferedImage png = ImageIO.read(new ByteArrayInputStream(h.getBytes("/view?filename=" + pi.path("filename").asText()
                        + "&subfolder=&type=output").body()));
                for (int y = 0; y < 64; y++) for (int x = 0; x < 64; x++) {
                    int rgb = png.getRGB(x, y);
                    all.write(rgb >>> 16 & 0xFF);
                    all.write(rgb >>> 8 & 0xFF);
                    all.write(rgb & 0xFF);
                }
            }
            java.nio.file.Files.write(raw, all.toByteArray());
            Process p = new ProcessBuilder(python, org.dit4j.engine.video.WebpWriterTestAccess.script().toString(), f.toString(), raw.toString(),
                    "64", "64", "125").redirectErrorStream(true).start();
            String res = new String(p.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor(), res);
        }
    }

    /** tEXt chunks of a PNG in file order. */
    static Map<String, String> pngText(byte[] png) {
        Map<String, String> out = new LinkedHashMap<>();
        int p = 8;
        while (p + 8 <= png.length) {
            int len = ((png[p] & 0xff) << 24) | ((png[p + 1] & 0xff) << 16) | ((png[p + 2] & 0xff) << 8) | (png[p + 3] & 0xff);
            String type = new String(png, p + 4, 4, StandardCharsets.US_ASCII);
            if (type.equals("tEXt")) {
                int z = p + 8;
                while (png[z] != 0) z++;
                out.put(new String(png, p + 8, z - p - 8, StandardCharsets.ISO_8859_1),
                        new String(png, z + 1, p + 8 + len - z - 1, StandardCharsets.ISO_8859_1));
            }
            if (type.equals("IDAT") && out.isEmpty()) break;
            p += 12 + len;
        }
        return out;
    }

    @Test void changingOnlyTheSeedDoesNotReloadModels() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            h.awaitHistory(id(h.queue(Harness.fluxWorkflow(100, 32, "cache test"), client, 200)), 10000);
            int unet = h.engine.unetLoads.get(), clip = h.engine.clipLoads.get(), vae = h.engine.vaeLoads.get(), samples = h.engine.samples.get();
            String second = id(h.queue(Harness.fluxWorkflow(101, 32, "cache test"), client, 200));
            h.awaitHistory(second, 10000);
            assertEquals(unet, h.engine.unetLoads.get(), "UNETLoader ran again");
            assertEquals(clip, h.engine.clipLoads.get(), "DualCLIPLoader ran again");
            assertEquals(vae, h.engine.vaeLoads.get(), "VAELoader ran again");
            assertEquals(samples + 1, h.engine.samples.get());
            JsonNode cached = ws.await(Harness.WsClient.type("execution_cached", second), 2000);
            Set<String> nodes = new HashSet<>();
            cached.path("data").path("nodes").forEach(n -> nodes.add(n.asText()));
            assertEquals(Set.of("1", "2", "3", "4", "5", "6", "7", "8"), nodes);

            // the identical prompt again: nothing runs, the output node reports its cached images
            String third = id(h.queue(Harness.fluxWorkflow(101, 32, "cache test"), client, 200));
            JsonNode hist = h.awaitHistory(third, 10000);
            assertEquals(samples + 1, h.engine.samples.get());
            JsonNode executed = ws.await(Harness.WsClient.type("executed", third), 2000);
            assertEquals(hist.path("outputs").path("11"), executed.path("data").path("output"));
        }
    }

    @Test void samplerCustomAdvancedWithAccelerationNodes() throws Exception {
        JsonNode hist = h.awaitHistory(id(h.queue(Harness.customWorkflow(4242), null, 200)), 10000);
        assertEquals("success", hist.path("status").path("status_str").asText(), hist.toString());
        JsonNode img = hist.path("outputs").path("11").path("images").get(0);
        assertEquals("custom", img.path("subfolder").asText());
        assertEquals(200, h.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=custom&type=output").statusCode());
        SampleJob job = h.engine.jobs.stream().filter(j -> j.noiseSeed() == 4242).findFirst().orElseThrow();
        assertEquals(2, job.model().parallel().gpus());
        assertEquals(2, job.model().parallel().ulysses());
        assertEquals(CacheSpec.Kind.TEACACHE, job.model().cache().spec().kind());
        assertEquals(0.4, job.model().cache().spec().threshold().getAsDouble());
        assertEquals("default", job.model().compile().mode());
        assertTrue(job.model().compile().cudaGraphs());
        assertEquals(0.8, job.model().loras().getFirst().strength());
        assertEquals(null, job.negative());
        assertArrayEquals(Schedulers.basic(ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, 64, 64)), "simple", 5, 1.0), job.sigmas());
    }

    // ------------------------------------------------------------------ validation

    private static JsonNode invalid(ObjectNode prompt) throws Exception { return h.queue(prompt, null, 400); }

    private static JsonNode nodeError(JsonNode r, String node) {
        assertEquals("prompt_outputs_failed_validation", r.path("error").path("type").asText(), r.toString());
        JsonNode e = r.path("node_errors").path(node);
        assertFalse(e.isMissingNode(), "no node_errors entry for node " + node + ": " + r);
        assertEquals(List.of("11"), List.of(e.path("dependent_outputs").get(0).asText()));
        return e.path("errors").get(0);
    }

    @Test void validationErrorsAsComfyUIReportsThem() throws Exception {
        ObjectNode p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("10").get("inputs")).remove("vae");
        JsonNode e = nodeError(invalid(p), "10");
        assertEquals("required_input_missing", e.path("type").asText());
        assertEquals("Required input is missing", e.path("message").asText());
        assertEquals("vae", e.path("details").asText());
        assertEquals("VAEDecode", invalid(p).path("node_errors").path("10").path("class_type").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("10").get("inputs")).set("samples", Json.array().add("9"));
        e = nodeError(invalid(p), "10");
        assertEquals("bad_linked_input", e.path("type").asText());
        assertEquals("Bad linked input, must be a length-2 list of [node_id, slot_index]", e.path("message").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("10").get("inputs")).set("samples", Json.array().add("1").add(0));
        e = nodeError(invalid(p), "10");
        assertEquals("return_type_mismatch", e.path("type").asText());
        assertEquals("samples, received_type(MODEL) mismatch input_type(LATENT)", e.path("details").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("1").get("inputs")).put("unet_name", "nope.safetensors");
        e = nodeError(invalid(p), "1");
        assertEquals("value_not_in_list", e.path("type").asText());
        assertEquals("unet_name: 'nope.safetensors' not in ['broken.safetensors', 'flux1-dev.safetensors', 'flux1-schnell.safetensors']",
                e.path("details").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("9").get("inputs")).put("steps", 0);
        e = nodeError(invalid(p), "9");
        assertEquals("value_smaller_than_min", e.path("type").asText());
        assertEquals("Value 0 smaller than min of 1", e.path("message").asText());
        assertEquals("steps", e.path("details").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("9").get("inputs")).put("denoise", 2.0);
        e = nodeError(invalid(p), "9");
        assertEquals("value_bigger_than_max", e.path("type").asText());
        assertEquals("Value 2.0 bigger than max of 1.0", e.path("message").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("9").get("inputs")).put("steps", "abc");
        e = nodeError(invalid(p), "9");
        assertEquals("invalid_input_type", e.path("type").asText());
        assertEquals("Failed to convert an input value to a INT value", e.path("message").asText());
        assertEquals("steps, abc, invalid literal for int() with base 10: 'abc'", e.path("details").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("10").get("inputs")).set("samples", Json.array().add("99").add(0));
        e = nodeError(invalid(p), "10");                                    // raised inside SaveImage's check of its link to 10
        assertEquals("exception_during_inner_validation", e.path("type").asText());
        assertEquals("'99'", e.path("details").asText());
        assertEquals("KeyError", e.path("extra_info").path("exception_type").asText());

        p = Harness.fluxWorkflow(1, 64, "x");
        p.set("12", Json.obj("class_type", "LoadImage", "inputs", Json.obj("image", "missing.png")));
        p.set("13", Json.obj("class_type", "PreviewImage", "inputs", Json.obj("images", Json.array().add("12").add(0))));
        JsonNode partial = h.queue(p, null, 200);                            // one output valid: 200 with node_errors
        JsonNode ce = partial.path("node_errors").path("12").path("errors").get(0);
        assertEquals("custom_validation_failed", ce.path("type").asText());
        assertEquals("image - Invalid image file: missing.png", ce.path("details").asText());
        h.awaitHistory(id(partial), 10000);

        p = Harness.fluxWorkflow(1, 64, "x");
        ((ObjectNode) p.get("3")).put("class_type", "NoSuchNode");
        JsonNode r = invalid(p);
        assertEquals("missing_node_type", r.path("error").path("type").asText());
        assertEquals("Node 'NoSuchNode' not found. The custom node may not be installed.", r.path("error").path("message").asText());
        assertEquals("Node ID '#3'", r.path("error").path("details").asText());
        assertEquals(0, r.path("node_errors").size());

        p = Harness.fluxWorkflow(1, 64, "x");
        p.remove("11");
        assertEquals("prompt_no_outputs", invalid(p).path("error").path("type").asText());

        HttpResponse<String> noPrompt = h.post("/prompt", Json.obj("client_id", "x"));
        assertEquals(400, noPrompt.statusCode());
        assertEquals("no_prompt", Json.parse(noPrompt.body()).path("error").path("type").asText());
        HttpResponse<String> bad = h.http.send(h.req("/prompt").POST(HttpRequest.BodyPublishers.ofString("{not json")).build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(400, bad.statusCode());
    }

    @Test void literalsAreConvertedAsPythonDoes() throws Exception {
        ObjectNode p = Harness.fluxWorkflow(1, 32, "convert");
        ((ObjectNode) p.get("9").get("inputs")).put("seed", "12345");
        ((ObjectNode) p.get("9").get("inputs")).put("cfg", 1);
        ((ObjectNode) p.get("9").get("inputs")).put("steps", 3.9);
        JsonNode hist = h.awaitHistory(id(h.queue(p, null, 200)), 10000);
        JsonNode inputs = hist.path("prompt").get(2).path("9").path("inputs");
        assertTrue(inputs.get("seed").isIntegralNumber());
        assertEquals(12345, inputs.get("seed").asLong());
        assertTrue(inputs.get("cfg").isFloatingPointNumber());
        assertEquals(3, inputs.get("steps").asInt());                        // int(3.9) truncates
    }

    // ------------------------------------------------------------------ errors, interrupt, queue

    @Test void failingNodeReportsExecutionErrorAndServerKeepsServing() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            ObjectNode p = Harness.fluxWorkflow(5, 32, "broken");
            ((ObjectNode) p.get("1").get("inputs")).put("unet_name", "broken.safetensors");
            String pid = id(h.queue(p, client, 200));
            JsonNode err = ws.await(Harness.WsClient.type("execution_error", pid), 10000);
            assertEquals("1", err.path("data").path("node_id").asText());
            assertEquals("UNETLoader", err.path("data").path("node_type").asText());
            assertTrue(err.path("data").path("exception_message").asText().contains("broken.safetensors"));
            for (String k : List.of("executed", "traceback", "current_inputs", "current_outputs", "exception_type", "timestamp"))
                assertTrue(err.path("data").has(k), k);
            ws.await(m -> m.path("type").asText().equals("executing") && m.path("data").path("node").isNull()
                    && m.path("data").path("prompt_id").asText().equals(pid), 5000);
            JsonNode hist = h.awaitHistory(pid, 5000);
            assertEquals("error", hist.path("status").path("status_str").asText());
            assertFalse(hist.path("status").path("completed").asBoolean());
            JsonNode ok = h.awaitHistory(id(h.queue(Harness.fluxWorkflow(6, 32, "after error"), client, 200)), 10000);
            assertEquals("success", ok.path("status").path("status_str").asText());
        }
    }

    @Test void interruptStopsBetweenSteps() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            h.engine.stepDelayMillis = 100;
            ObjectNode p = Harness.fluxWorkflow(77, 32, "interrupt me");
            ((ObjectNode) p.get("9").get("inputs")).put("steps", 40);
            String pid = id(h.queue(p, client, 200));
            ws.await(Harness.WsClient.type("progress", pid), 10000);
            assertEquals(200, h.post("/interrupt", Json.object()).statusCode());
            JsonNode intr = ws.await(Harness.WsClient.type("execution_interrupted", pid), 10000);
            assertEquals("9", intr.path("data").path("node_id").asText());
            assertEquals("KSampler", intr.path("data").path("node_type").asText());
            JsonNode hist = h.awaitHistory(pid, 5000);
            assertEquals("error", hist.path("status").path("status_str").asText());
            long steps = ws.snapshot().stream().filter(Harness.WsClient.type("progress", pid)::test).count();
            assertTrue(steps < 40, "ran " + steps + " of 40 steps");
        } finally {
            h.engine.stepDelayMillis = 0;
        }
        assertEquals("success", h.awaitHistory(id(h.queue(Harness.fluxWorkflow(78, 32, "after interrupt"), null, 200)), 10000)
                .path("status").path("status_str").asText());
    }

    @Test void queueDeleteClearAndPriority() throws Exception {
        h.engine.stepDelayMillis = 30;
        try {
            ObjectNode slow = Harness.fluxWorkflow(1000, 32, "slow");
            ((ObjectNode) slow.get("9").get("inputs")).put("steps", 15);
            String a = id(h.queue(slow, null, 200));
            long end = System.currentTimeMillis() + 5000;
            while (h.getJson("/queue").path("queue_running").isEmpty() && System.currentTimeMillis() < end) Thread.sleep(10);
            String b = id(h.queue(Harness.fluxWorkflow(1001, 32, "b"), null, 200));
            String c = id(h.queue(Harness.fluxWorkflow(1002, 32, "c"), null, 200));
            HttpResponse<String> fr = h.post("/prompt", Json.obj("prompt", Harness.fluxWorkflow(1003, 32, "front"), "front", true));
            String d = id(Json.parse(fr.body()));
            assertTrue(Json.parse(fr.body()).get("number").asLong() < 0);
            JsonNode q = h.getJson("/queue");
            assertEquals(a, q.path("queue_running").get(0).get(1).asText());
            assertEquals(d, q.path("queue_pending").get(0).get(1).asText(), "front=true runs first");
            assertEquals(5, q.path("queue_pending").get(0).size());
            assertEquals(200, h.post("/queue", Json.obj("delete", List.of(b))).statusCode());
            q = h.getJson("/queue");
            for (JsonNode item : q.path("queue_pending")) assertFalse(item.get(1).asText().equals(b));
            h.awaitHistory(c, 15000);
            h.awaitHistory(d, 15000);
            assertFalse(h.getJson("/history/" + b).has(b), "deleted prompt ran");
            List<Long> order = h.engine.jobs.stream().map(SampleJob::noiseSeed).filter(s -> s >= 1000 && s <= 1003).toList();
            assertEquals(List.of(1000L, 1003L, 1002L), order);
            assertEquals(0, h.getJson("/prompt").path("exec_info").path("queue_remaining").asInt());
        } finally {
            h.engine.stepDelayMillis = 0;
        }
    }

    @Test void fiftyConcurrentPromptsAllComplete() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(16);
        try {
            List<Future<String>> futures = new ArrayList<>();
            for (int i = 0; i < 50; i++) {
                int seed = 5000 + i;
                futures.add(pool.submit(() -> id(h.queue(Harness.fluxWorkflow(seed, 16, "concurrent " + (seed % 3)), null, 200))));
            }
            Set<String> ids = new HashSet<>();
            for (Future<String> f : futures) ids.add(f.get());
            assertEquals(50, ids.size());
            for (String pid : ids) assertEquals("success", h.awaitHistory(pid, 30000).path("status").path("status_str").asText());
            Set<String> files = new HashSet<>();
            for (String pid : ids) files.add(h.getJson("/history/" + pid).path(pid).path("outputs").path("11").path("images").get(0).path("filename").asText());
            assertEquals(50, files.size(), "every prompt saved its own file");
        } finally {
            pool.shutdownNow();
        }
    }

    // ------------------------------------------------------------------ files

    @Test void viewAndUploadRejectTraversal() throws Exception {
        Path secret = dir.resolve("secret.txt");
        Files.writeString(secret, "secret");
        Files.writeString(dir.resolve("output").resolve("note.txt"), "hello");
        Path link = dir.resolve("output").resolve("link.txt");
        Files.deleteIfExists(link);
        Files.createSymbolicLink(link, secret);
        assertEquals(200, h.get("/view?filename=note.txt").statusCode());
        assertEquals("hello", h.get("/view?filename=note.txt&type=output").body());
        assertEquals(400, h.get("/view?filename=../secret.txt").statusCode());
        assertEquals(400, h.get("/view?filename=%2Fetc%2Fpasswd").statusCode());
        assertEquals(400, h.get("/view?filename=..%2F..%2Fsecret.txt&type=output").statusCode());
        assertEquals(403, h.get("/view?filename=secret.txt&subfolder=..").statusCode());
        assertEquals(403, h.get("/view?filename=secret.txt&subfolder=%2Ftmp").statusCode());
        assertEquals(400, h.get("/view?filename=note.txt&type=models").statusCode());
        assertEquals(403, h.get("/view?filename=link.txt").statusCode(), "symlink out of the output folder");
        assertEquals(404, h.get("/view?filename=none.png").statusCode());
        assertEquals(200, h.get("/api/view?filename=note.txt").statusCode());

        byte[] png = org.dit4j.server.image.Png.encode(new org.dit4j.server.engine.ImageBatch(1, 16, 16, 3, new float[16 * 16 * 3]), 0, List.of(), 1);
        assertEquals(400, upload("../evil.png", "", png).statusCode());
        assertEquals(400, upload("evil.png", "../..", png).statusCode());
        assertEquals(400, upload("evil.png", "/tmp", png).statusCode());
        HttpResponse<String> ok = upload("cat.png", "", png);
        assertEquals(200, ok.statusCode(), ok.body());
        assertEquals(Json.obj("name", "cat.png", "subfolder", "", "type", "input"), Json.parse(ok.body()));
        assertEquals("cat.png", Json.parse(upload("cat.png", "", png).body()).path("name").asText(), "same bytes: no copy");
        byte[] other = png.clone();
        other[other.length - 13] ^= 1;
        assertEquals("cat (1).png", Json.parse(upload("cat.png", "", other).body()).path("name").asText());
        JsonNode combo = h.getJson("/object_info/LoadImage").path("LoadImage").path("input").path("required").path("image").get(0);
        assertTrue(combo.toString().contains("cat.png"), combo.toString());

        Harness small;
        ServerConfig cfg = ServerConfig.defaults(dir.resolve("small")).withPort(0).withMaxUploadBytes(4096);
        try (ComfyServer s = new ComfyServer(cfg, new FakeEngine()).start()) {
            byte[] big = new byte[64 * 1024];
            HttpResponse<String> r = multipart("http://127.0.0.1:" + s.port(), "big.png", "", big);
            assertEquals(413, r.statusCode(), "oversized upload: " + r.body());
            assertFalse(Files.exists(dir.resolve("small/input/big.png")));
        }
    }

    private HttpResponse<String> upload(String filename, String subfolder, byte[] data) throws Exception {
        return multipart(h.url, filename, subfolder, data);
    }

    private HttpResponse<String> multipart(String url, String filename, String subfolder, byte[] data) throws Exception {
        String boundary = "----dit4j" + UUID.randomUUID();
        var out = new java.io.ByteArrayOutputStream();
        out.writeBytes(("--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" + filename
                + "\"\r\nContent-Type: image/png\r\n\r\n").getBytes(StandardCharsets.UTF_8));
        out.writeBytes(data);
        out.writeBytes(("\r\n--" + boundary + "\r\nContent-Disposition: form-data; name=\"subfolder\"\r\n\r\n" + subfolder
                + "\r\n--" + boundary + "--\r\n").getBytes(StandardCharsets.UTF_8));
        return h.http.send(HttpRequest.newBuilder(java.net.URI.create(url + "/upload/image"))
                .header("Content-Type", "multipart/form-data; boundary=" + boundary)
                .POST(HttpRequest.BodyPublishers.ofByteArray(out.toByteArray())).build(), HttpResponse.BodyHandlers.ofString());
    }

    // ------------------------------------------------------------------ info routes, security

    @Test void infoRoutes() throws Exception {
        JsonNode info = h.getJson("/object_info");
        for (String n : List.of("UNETLoader", "DualCLIPLoader", "CLIPLoader", "VAELoader", "CheckpointLoaderSimple", "CLIPTextEncode",
                "FluxGuidance", "ConditioningZeroOut", "EmptySD3LatentImage", "EmptyLatentImage", "ModelSamplingFlux", "KSampler",
                "KSamplerAdvanced", "RandomNoise", "BasicGuider", "CFGGuider", "KSamplerSelect", "BasicScheduler", "SamplerCustomAdvanced",
                "VAEDecode", "VAEDecodeTiled", "VAEEncode", "LoadImage", "FluxKontextImageScale", "ReferenceLatent", "LoraLoaderModelOnly",
                "SaveImage", "PreviewImage", "ParallelUNETLoader", "ParallelLoraLoader", "ParallelLoraLoaderModelOnly", "TeaCache",
                "ParallelTeaCache", "MagCache", "CompileModel", "CompileFluxModel", "ParallelCompileModel"))
            assertTrue(info.has(n), n + " missing from /object_info");
        JsonNode ks = info.path("KSampler");
        assertEquals("18446744073709551615", ks.path("input").path("required").path("seed").get(1).path("max").asText());
        assertEquals(List.of("model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive", "negative", "latent_image", "denoise"),
                Json.MAPPER.convertValue(ks.path("input_order").path("required"), List.class));
        assertEquals("LATENT", ks.path("output").get(0).asText());
        assertTrue(info.path("SaveImage").path("output_node").asBoolean());
        assertEquals(List.of("output", "denoised_output"), Json.MAPPER.convertValue(info.path("SamplerCustomAdvanced").path("output_name"), List.class));
        JsonNode one = h.getJson("/api/object_info/KSampler");
        assertEquals(1, one.size());
        assertEquals(0, h.getJson("/object_info/Nope").size());
        assertTrue(Json.MAPPER.convertValue(h.getJson("/models"), List.class).contains("diffusion_models"));
        assertEquals(List.of("broken.safetensors", "flux1-dev.safetensors", "flux1-schnell.safetensors"),
                Json.MAPPER.convertValue(h.getJson("/models/diffusion_models"), List.class));
        assertEquals(List.of("clip_l.safetensors", "t5xxl_fp16.safetensors"), Json.MAPPER.convertValue(h.getJson("/models/text_encoders"), List.class));
        assertEquals(404, h.get("/models/unet").statusCode());
        assertEquals(0, h.getJson("/embeddings").size());
        JsonNode stats = h.getJson("/system_stats");
        assertEquals("Fake GPU", stats.path("devices").get(0).path("name").asText());
        assertTrue(stats.path("system").has("comfyui_version"));
        assertTrue(h.getJson("/features").has("max_upload_size"));
        assertTrue(h.getJson("/api/prompt").path("exec_info").has("queue_remaining"));
        HttpResponse<String> evil = h.http.send(h.req("/prompt").header("Origin", "http://evil.example").GET().build(), HttpResponse.BodyHandlers.ofString());
        assertEquals(403, evil.statusCode(), "cross-origin request to a loopback host");
    }

    @Test void bearerTokenIsRequiredWhenConfigured() throws Exception {
        try (Harness secured = new Harness(dir.resolve("secured"), "s3cret")) {
            assertEquals(200, secured.get("/prompt").statusCode());
            HttpResponse<String> anon = secured.http.send(HttpRequest.newBuilder(java.net.URI.create(secured.url + "/prompt")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(401, anon.statusCode());
            HttpResponse<String> wrong = secured.http.send(HttpRequest.newBuilder(java.net.URI.create(secured.url + "/prompt"))
                    .header("Authorization", "Bearer nope").GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(401, wrong.statusCode());
            try (Harness.WsClient ws = secured.ws("tok")) {
                assertNotNull(ws.await(Harness.WsClient.type("status", null), 5000));
            }
        }
    }

    @Test void historyRoutes() throws Exception {
        String pid = id(h.queue(Harness.fluxWorkflow(9001, 16, "history"), null, 200));
        h.awaitHistory(pid, 10000);
        assertTrue(h.getJson("/history?max_items=1").size() <= 1);
        assertTrue(h.getJson("/history").has(pid));
        assertEquals(200, h.post("/history", Json.obj("delete", List.of(pid))).statusCode());
        assertFalse(h.getJson("/history").has(pid));
        ArrayNode none = Json.array();
        assertEquals(0, none.size());
    }
}
