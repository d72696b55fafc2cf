package org.dit4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.flux.FluxModelResolver;
import org.dit4j.engine.flux.FluxPipeline;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.flux.FluxRequest;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.DeviceInfo;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;
import org.dit4j.server.flux.FluxEngine;
import org.dit4j.server.json.Json;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The real server with the real Flux engine (CPU, float32) on a tiny random Flux dev model written in ComfyUI's folders,
 * driven over HTTP and WebSocket with the API workflows of models.md §4.3. Images are compared with
 * {@link FluxPipeline} for the same seed, prompt and steps: the server's PNG (ComfyUI truncates to 8 bits) and the
 * pipeline's RGB (rounded) differ by at most one level where ComfyUI's semantics and the pipeline's coincide.
 */
class FluxServerTest {

    @TempDir static Path base;
    static Ops ops;
    static FluxEngine flux;
    static Counting engine;
    static Harness h;
    static Path models;

    /** The engine with load counters (to see what a prompt reloads). */
    static final class Counting implements ModelProvider, Sampling {
        final FluxEngine e;
        final AtomicInteger unet = new AtomicInteger(), clip = new AtomicInteger(), vae = new AtomicInteger(), ckpt = new AtomicInteger(),
                samples = new AtomicInteger();

        Counting(FluxEngine e) { this.e = e; }

        @Override public DiffusionModel loadDiffusionModel(Path file, String weightDtype) throws Exception {
            unet.incrementAndGet();
            return e.loadDiffusionModel(file, weightDtype);
        }

        @Override public TextEncoder loadTextEncoder(List<Path> files, String type, String device) throws Exception {
            clip.incrementAndGet();
            return e.loadTextEncoder(files, type, device);
        }

        @Override public Vae loadVae(Path file) throws Exception {
            vae.incrementAndGet();
            return e.loadVae(file);
        }

        @Override public Checkpoint loadCheckpoint(Path file) throws Exception {
            ckpt.incrementAndGet();
            return e.loadCheckpoint(file);
        }

        @Override public LoraWeights loadLora(Path file) throws Exception { return e.loadLora(file); }

        @Override public List<DeviceInfo> devices() { return e.devices(); }

        @Override public List<String> samplerNames() { return e.samplerNames(); }

        @Override public SampleResult sample(SampleJob job, StepObserver observer) {
            samples.incrementAndGet();
            return e.sample(job, observer);
        }
    }

    @BeforeAll static void start() throws Exception {
        models = TinyFluxAccess.writeFiles(base.resolve("models"), true, 11);
        writeAllInOne(models.resolve("checkpoints/flux-tiny-aio.safetensors"));
        Files.write(models.resolve("diffusion_models/broken.safetensors"), new byte[] {9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3});
        Files.copy(models.resolve("vae/ae.safetensors"), models.resolve("diffusion_models/not-flux.safetensors"));
        Files.write(models.resolve("diffusion_models/old.ckpt"), new byte[] {(byte) 0x80, 2});
        writeLora(models.resolve("loras/style.safetensors"));
        Files.copy(models.resolve("vae/ae.safetensors"), models.resolve("loras/not-a-lora.safetensors"));
        ops = new CpuBackend();
        flux = new FluxEngine(ops, models, hub());
        engine = new Counting(flux);
        h = new Harness(base, engine, engine);
    }

    @AfterAll static void stop() {
        h.close();
        flux.close();
        ops.close();
    }

    static HfHub hub() { return new HfHub(base.resolve("empty-hub"), null, true, null); }

    /** ComfyUI's single-file layout: model.diffusion_model., text_encoders.{clip_l,t5xxl}.transformer., vae. */
    static void writeAllInOne(Path file) throws Exception {
        Map<String, Tensor> all = new LinkedHashMap<>();
        Map<String, String> parts = Map.of("diffusion_models/flux-tiny.safetensors", "model.diffusion_model.",
                "text_encoders/clip_l.safetensors", "text_encoders.clip_l.transformer.",
                "text_encoders/t5xxl_tiny.safetensors", "text_encoders.t5xxl.transformer.", "vae/ae.safetensors", "vae.");
        List<WeightSource> open = new java.util.ArrayList<>();
        try {
            for (var e : parts.entrySet()) {
                WeightSource w = WeightSource.open(models.resolve(e.getKey()));
                open.add(w);
                for (String n : w.names()) all.put(e.getValue() + n, w.tensor(n));
            }
            Files.createDirectories(file.getParent());
            SafeTensorsWriter.write(file, all, Map.of("format", "pt"));
        } finally {
            for (WeightSource w : open) w.close();
        }
    }

    /** A kohya-style LoRA on double block 0's image qkv, single block 0's linear1 and the final linear of the tiny model. */
    static void writeLora(Path file) throws Exception {
        org.dit4j.models.flux.FluxConfig fc;
        try (WeightSource w = WeightSource.open(models.resolve("diffusion_models/flux-tiny.safetensors"))) {
            fc = org.dit4j.models.flux.FluxConfig.detect(w);
        }
        int d = fc.hiddenSize(), rank = 4;
        java.util.Random rnd = new java.util.Random(5);
        Map<String, Tensor> t = new LinkedHashMap<>();
        Map<String, long[]> mods = Map.of("lora_unet_double_blocks_0_img_attn_qkv", new long[] {3L * d, d},
                "lora_unet_single_blocks_0_linear1", new long[] {3L * d + fc.mlpHidden(), d},
                "lora_unet_final_layer_linear", new long[] {fc.outChannels(), d});
        for (var m : mods.entrySet()) {
            long rows = m.getValue()[0], cols = m.getValue()[1];
            float[] a = new float[(int) (rank * cols)], b = new float[(int) (rows * rank)];
            for (int i = 0; i < a.length; i++) a[i] = (float) (rnd.nextGaussian() / Math.sqrt(cols));
            for (int i = 0; i < b.length; i++) b[i] = (float) (rnd.nextGaussian() * 2.0);
            t.put(m.getKey() + ".lora_down.weight", Tensor.of(a, rank, cols));
            t.put(m.getKey() + ".lora_up.weight", Tensor.of(b, rows, rank));
            t.put(m.getKey() + ".alpha", Tensor.of(new float[] {2f}));
        }
        Files.createDirectories(file.getParent());
        SafeTensorsWriter.write(file, t, Map.of());
    }

    static String id(JsonNode r) { return r.get("prompt_id").asText(); }

    /** models.md §4.3 with the tiny files; {@code loader} replaces nodes 1-3 when not null (checkpoint variant). */
    static ObjectNode ksamplerWorkflow(long seed, int size, String text, String unet) throws Exception {
        return (ObjectNode) Json.parse("""
            {
             "1": {"class_type":"UNETLoader","inputs":{"unet_name":"%s","weight_dtype":"default"}},
             "2": {"class_type":"DualCLIPLoader","inputs":{"clip_name1":"t5xxl_tiny.safetensors","clip_name2":"clip_l.safetensors","type":"flux"}},
             "3": {"class_type":"VAELoader","inputs":{"vae_name":"ae.safetensors"}},
             "4": {"class_type":"CLIPTextEncode","inputs":{"text":"%s","clip":["2",0]}},
             "5": {"class_type":"FluxGuidance","inputs":{"conditioning":["4",0],"guidance":3.5}},
             "6": {"class_type":"ConditioningZeroOut","inputs":{"conditioning":["4",0]}},
             "7": {"class_type":"EmptySD3LatentImage","inputs":{"width":%d,"height":%d,"batch_size":1}},
             "8": {"class_type":"ModelSamplingFlux","inputs":{"model":["1",0],"max_shift":1.15,"base_shift":0.5,"width":%d,"height":%d}},
             "9": {"class_type":"KSampler","inputs":{"model":["8",0],"seed":%d,"steps":4,"cfg":1.0,"sampler_name":"euler","scheduler":"simple","positive":["5",0],"negative":["6",0],"latent_image":["7",0],"denoise":1.0}},
             "10":{"class_type":"VAEDecode","inputs":{"samples":["9",0],"vae":["3",0]}},
             "11":{"class_type":"SaveImage","inputs":{"images":["10",0],"filename_prefix":"flux"}}
            }""".formatted(unet, text, size, size, size, size, seed));
    }

    /** The SamplerCustomAdvanced variant with the acceleration nodes inserted (caches at threshold 0, one GPU). */
    static ObjectNode customWorkflow(long seed, int size, String text, double teaCache) throws Exception {
        return customWorkflow(seed, size, text, teaCache, 0.0);
    }

    static ObjectNode customWorkflow(long seed, int size, String text, double teaCache, double magCache) throws Exception {
        return (ObjectNode) Json.parse("""
            {
             "1": {"class_type":"ParallelUNETLoader","inputs":{"unet_name":"flux-tiny.safetensors","weight_dtype":"default","num_gpus":1,"ulysses_degree":1,"ring_degree":1,"cfg_degree":1,"pipefusion_degree":1}},
             "2": {"class_type":"DualCLIPLoader","inputs":{"clip_name1":"t5xxl_tiny.safetensors","clip_name2":"clip_l.safetensors","type":"flux"}},
             "3": {"class_type":"VAELoader","inputs":{"vae_name":"ae.safetensors"}},
             "4": {"class_type":"CLIPTextEncode","inputs":{"text":"%s","clip":["2",0]}},
             "5": {"class_type":"FluxGuidance","inputs":{"conditioning":["4",0],"guidance":3.5}},
             "7": {"class_type":"EmptySD3LatentImage","inputs":{"width":%d,"height":%d,"batch_size":1}},
             "8": {"class_type":"ModelSamplingFlux","inputs":{"model":["14",0],"max_shift":1.15,"base_shift":0.5,"width":%d,"height":%d}},
             "12":{"class_type":"TeaCache","inputs":{"model":["1",0],"model_type":"flux","rel_l1_thresh":%s,"start_percent":0.0,"end_percent":1.0,"cache_device":"cuda"}},
             "13":{"class_type":"MagCache","inputs":{"model":["12",0],"model_type":"flux","magcache_thresh":%s,"retention_ratio":0.1,"magcache_K":5}},
             "14":{"class_type":"CompileModel","inputs":{"model":["13",0],"mode":"default","backend":"inductor","fullgraph":false,"dynamic":false}},
             "20":{"class_type":"RandomNoise","inputs":{"noise_seed":%d}},
             "21":{"class_type":"BasicGuider","inputs":{"model":["8",0],"conditioning":["5",0]}},
             "22":{"class_type":"KSamplerSelect","inputs":{"sampler_name":"euler"}},
             "23":{"class_type":"BasicScheduler","inputs":{"model":["8",0],"scheduler":"simple","steps":4,"denoise":1.0}},
             "24":{"class_type":"SamplerCustomAdvanced","inputs":{"noise":["20",0],"guider":["21",0],"sampler":["22",0],"sigmas":["23",0],"latent_image":["7",0]}},
             "10":{"class_type":"VAEDecode","inputs":{"samples":["24",0],"vae":["3",0]}},
             "11":{"class_type":"SaveImage","inputs":{"images":["10",0],"filename_prefix":"custom/fox"}}
            }""".formatted(text, size, size, size, size, Double.toString(teaCache), Double.toString(magCache), seed));
    }

    /** Runs a prompt to its end; returns the history entry. */
    static JsonNode run(ObjectNode prompt, String client) throws Exception {
        return h.awaitHistory(id(h.queue(prompt, client, 200)), 120_000);
    }

    /** The first image of output node 11 of a finished prompt. */
    static BufferedImage image(JsonNode hist) throws Exception {
        assertEquals("success", hist.path("status").path("status_str").asText(), hist.toString());
        JsonNode img = hist.path("outputs").path("11").path("images").get(0);
        var view = h.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=" + img.path("subfolder").asText() + "&type=output");
        assertEquals(200, view.statusCode());
        return ImageIO.read(new ByteArrayInputStream(view.body()));
    }

    static int maxDiff(BufferedImage a, RgbImage b) {
        assertEquals(b.width(), a.getWidth());
        assertEquals(b.height(), a.getHeight());
        int m = 0;
        for (int y = 0; y < b.height(); y++)
            for (int x = 0; x < b.width(); x++) {
                int p = a.getRGB(x, y);
                for (int k = 0; k < 3; k++) {
                    int va = (p >>> (16 - 8 * k)) & 0xff, vb = b.rgb()[3 * (y * b.width() + x) + k] & 0xff;
                    m = Math.max(m, Math.abs(va - vb));
                }
            }
        return m;
    }

    static int maxDiff(BufferedImage a, BufferedImage b) {
        int m = 0;
        for (int y = 0; y < a.getHeight(); y++)
            for (int x = 0; x < a.getWidth(); x++)
                for (int k = 0; k < 3; k++)
                    m = Math.max(m, Math.abs(((a.getRGB(x, y) >>> (8 * k)) & 0xff) - ((b.getRGB(x, y) >>> (8 * k)) & 0xff)));
        return m;
    }

    static RgbImage pipelineImage(String prompt, long seed, int size) { return pipelineImage(prompt, seed, size, List.of()); }

    static RgbImage pipelineImage(String prompt, long seed, int size, List<LoraSpec> loras) {
        var files = new FluxModelResolver(hub(), models, null).fromFiles(List.of(models.resolve("diffusion_models/flux-tiny.safetensors"),
                models.resolve("vae/ae.safetensors"), models.resolve("text_encoders/clip_l.safetensors"),
                models.resolve("text_encoders/t5xxl_tiny.safetensors")));
        try (FluxPipeline p = new FluxPipeline(ops, files, FluxPipeline.Settings.defaults(ops), loras, false)) {
            return p.generate(FluxRequest.of(prompt, seed).withSize(size, size).withSteps(4).withGuidance(3.5f)
                    .withT5Length(FluxEngine.COMFY_T5_MIN_LENGTH), FluxProgress.NONE).images().getFirst();
        }
    }

    // ------------------------------------------------------------------------------------------------ tests

    @Test void fluxWorkflowGivesFluxPipelinesImageAndASeedChangeReloadsNothing() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            String pid = id(h.queue(ksamplerWorkflow(42, 64, "a red fox in snow", "flux-tiny.safetensors"), client, 200));
            ws.await(Harness.WsClient.type("execution_success", pid), 120_000);
            List<JsonNode> progress = ws.snapshot().stream().filter(Harness.WsClient.type("progress", pid)::test).toList();
            assertEquals(4, progress.size(), "one progress event per sampler step");
            assertEquals(4, progress.getLast().path("data").path("max").asInt());
            BufferedImage first = image(h.awaitHistory(pid, 5000));
            assertEquals(64, first.getWidth());
            assertEquals(64, first.getHeight());
            int d = maxDiff(first, pipelineImage("a red fox in snow", 42, 64));
            assertTrue(d <= 1, "server PNG vs FluxPipeline (same seed, prompt, steps): max difference " + d + " levels, tolerance 1");

            int unet = engine.unet.get(), clip = engine.clip.get(), vae = engine.vae.get(), samples = engine.samples.get();
            String second = id(h.queue(ksamplerWorkflow(43, 64, "a red fox in snow", "flux-tiny.safetensors"), client, 200));
            BufferedImage other = image(h.awaitHistory(second, 120_000));
            assertEquals(unet, engine.unet.get(), "UNETLoader ran again");
            assertEquals(clip, engine.clip.get(), "DualCLIPLoader ran again");
            assertEquals(vae, engine.vae.get(), "VAELoader ran again");
            assertEquals(samples + 1, engine.samples.get());
            JsonNode cached = ws.await(Harness.WsClient.type("execution_cached", second), 2000);
            Set<String> nodes = new HashSet<>();
            cached.path("data").path("nodes").forEach(n -> nodes.add(n.asText()));
            assertEquals(Set.of("1", "2", "3", "4", "5", "6", "7", "8"), nodes);
            assertTrue(maxDiff(first, other) > 10, "another seed, another image");
            int d2 = maxDiff(other, pipelineImage("a red fox in snow", 43, 64));
            assertTrue(d2 <= 1, "second seed vs FluxPipeline: " + d2 + " levels");
        }
    }

    @Test void samplerCustomAdvancedWithAccelerationNodesGivesTheKSamplerImage() throws Exception {
        BufferedImage ks = image(run(ksamplerWorkflow(7, 48, "a blue house", "flux-tiny.safetensors"), null));
        BufferedImage custom = image(run(customWorkflow(7, 48, "a blue house", 0.0), null));
        assertEquals(48, custom.getWidth());
        int d = maxDiff(ks, custom);
        assertTrue(d <= 1, "BasicGuider (cfg 1) with TeaCache/MagCache at threshold 0, CompileModel and ParallelUNETLoader(1 GPU) vs "
                + "KSampler: " + d + " levels");
    }

    @Test void stepCachesAndSeveralGpusRun() throws Exception {
        BufferedImage plain = image(run(customWorkflow(8, 32, "a cat", 0.0), null));
        // TeaCache with a threshold no step stays under: every step computed through the staged transformer, the same image
        ObjectNode tiny = customWorkflow(8, 32, "a cat", 1e-9);
        tiny.remove("13");
        ((ObjectNode) tiny.get("14").get("inputs")).set("model", Json.parse("[\"12\", 0]"));
        int d = maxDiff(image(run(tiny, null)), plain);
        assertTrue(d <= 1, "TeaCache at 1e-9 (nothing skipped) vs no cache: " + d + " levels");
        // TeaCache 0.4 and MagCache 0.24 (the nodes' defaults) run; what they skip changes the image
        ObjectNode tea = customWorkflow(8, 32, "a cat", 0.4);
        tea.remove("13");
        ((ObjectNode) tea.get("14").get("inputs")).set("model", Json.parse("[\"12\", 0]"));
        assertEquals(32, image(run(tea, null)).getWidth());
        assertEquals(32, image(run(customWorkflow(8, 32, "a cat", 0.0, 0.24), null)).getWidth());

        // ParallelUNETLoader with 2 "GPUs" (CPU ranks): Ulysses 2, then ring 2 in the next prompt (no restart): the same image
        ObjectNode p = customWorkflow(8, 32, "a cat", 0.0);
        ((ObjectNode) p.get("1").get("inputs")).put("num_gpus", 2).put("ulysses_degree", 2);
        int du = maxDiff(image(run(p, null)), plain);
        assertTrue(du <= 1, "num_gpus 2 (Ulysses) vs one device: " + du + " levels");
        ((ObjectNode) p.get("1").get("inputs")).put("ulysses_degree", 1).put("ring_degree", 2);
        int dr = maxDiff(image(run(p, null)), plain);
        assertTrue(dr <= 1, "num_gpus 2 (ring) vs one device: " + dr + " levels");
    }

    @Test void loraLoaderModelOnlyMergesTheLoraAsFluxPipelineDoes() throws Exception {
        ObjectNode p = ksamplerWorkflow(21, 32, "a red fox", "flux-tiny.safetensors");
        p.set("15", Json.parse("{\"class_type\":\"LoraLoaderModelOnly\",\"inputs\":{\"model\":[\"1\",0],"
                + "\"lora_name\":\"style.safetensors\",\"strength_model\":0.8}}"));
        ((ObjectNode) p.get("8").get("inputs")).set("model", Json.parse("[\"15\", 0]"));
        BufferedImage withLora = image(run(p, null));
        RgbImage ref = pipelineImage("a red fox", 21, 32, List.of(new LoraSpec(models.resolve("loras/style.safetensors"), 0.8f)));
        int d = maxDiff(withLora, ref);
        assertTrue(d <= 1, "LoRA 0.8 vs FluxPipeline with the same LoRA: " + d + " levels");
        BufferedImage plain = image(run(ksamplerWorkflow(21, 32, "a red fox", "flux-tiny.safetensors"), null));
        assertTrue(maxDiff(plain, withLora) > 5, "the LoRA changes the image: " + maxDiff(plain, withLora));
        int d0 = maxDiff(plain, pipelineImage("a red fox", 21, 32));
        assertTrue(d0 <= 1, "after a LoRA run the model without LoRA is the plain model again: " + d0 + " levels");

        // ParallelLoraLoader with strength_clip 1: this LoRA has no text-encoder tensors, so the CLIP is unchanged (as in ComfyUI)
        ObjectNode pl = ksamplerWorkflow(21, 32, "a red fox", "flux-tiny.safetensors");
        pl.set("15", Json.parse("{\"class_type\":\"ParallelLoraLoader\",\"inputs\":{\"model\":[\"1\",0],\"clip\":[\"2\",0],"
                + "\"lora_name\":\"style.safetensors\",\"strength_model\":0.8,\"strength_clip\":1.0}}"));
        ((ObjectNode) pl.get("8").get("inputs")).set("model", Json.parse("[\"15\", 0]"));
        ((ObjectNode) pl.get("4").get("inputs")).set("clip", Json.parse("[\"15\", 1]"));
        int dp = maxDiff(image(run(pl, null)), ref);
        assertTrue(dp <= 1, "ParallelLoraLoader vs FluxPipeline with the LoRA: " + dp + " levels");

        // a file that is no LoRA
        ((ObjectNode) p.get("15").get("inputs")).put("lora_name", "not-a-lora.safetensors");
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            String pid = id(h.queue(p, client, 200));
            JsonNode err = ws.await(Harness.WsClient.type("execution_error", pid), 60_000);
            assertEquals("LoraLoaderModelOnly", err.path("data").path("node_type").asText());
            assertTrue(err.path("data").path("exception_message").asText().contains("not a LoRA"), err.toString());
        }
    }

    @Test void checkpointLoaderSimpleLoadsTheAllInOneFile() throws Exception {
        ObjectNode p = ksamplerWorkflow(11, 32, "a small dog", "flux-tiny.safetensors");
        p.set("1", Json.parse("{\"class_type\":\"CheckpointLoaderSimple\",\"inputs\":{\"ckpt_name\":\"flux-tiny-aio.safetensors\"}}"));
        ((ObjectNode) p.get("4").get("inputs")).set("clip", Json.parse("[\"1\", 1]"));
        ((ObjectNode) p.get("10").get("inputs")).set("vae", Json.parse("[\"1\", 2]"));
        p.remove("2");
        p.remove("3");
        int before = engine.ckpt.get();
        BufferedImage aio = image(run(p, null));
        assertEquals(before + 1, engine.ckpt.get());
        BufferedImage parts = image(run(ksamplerWorkflow(11, 32, "a small dog", "flux-tiny.safetensors"), null));
        int d = maxDiff(aio, parts);
        assertTrue(d <= 1, "all-in-one checkpoint vs the separate files of the same weights: " + d + " levels");
    }

    @Test void badModelFilesGiveExecutionErrorsAndTheServerKeepsServing() throws Exception {
        String client = UUID.randomUUID().toString();
        try (Harness.WsClient ws = h.ws(client)) {
            // not a safetensors file
            String pid = id(h.queue(ksamplerWorkflow(5, 32, "x", "broken.safetensors"), client, 200));
            JsonNode err = ws.await(Harness.WsClient.type("execution_error", pid), 60_000);
            assertEquals("1", err.path("data").path("node_id").asText());
            assertEquals("UNETLoader", err.path("data").path("node_type").asText());
            assertTrue(err.path("data").path("exception_message").asText().contains("broken.safetensors"), err.toString());

            // a pickle checkpoint is refused by name
            String pidPickle = id(h.queue(ksamplerWorkflow(5, 32, "x", "old.ckpt"), client, 200));
            JsonNode errPickle = ws.await(Harness.WsClient.type("execution_error", pidPickle), 60_000);
            assertTrue(errPickle.path("data").path("exception_message").asText().contains("safetensors files only"), errPickle.toString());

            // a VAE where the transformer should be
            String pid2 = id(h.queue(ksamplerWorkflow(5, 32, "x", "not-flux.safetensors"), client, 200));
            JsonNode err2 = ws.await(Harness.WsClient.type("execution_error", pid2), 60_000);
            String m2 = err2.path("data").path("exception_message").asText();
            assertTrue(m2.contains("not-flux.safetensors") && m2.contains("not a Flux.1 transformer"), m2);

            // two T5 files and no CLIP-L
            ObjectNode p = ksamplerWorkflow(5, 32, "x", "flux-tiny.safetensors");
            ((ObjectNode) p.get("2").get("inputs")).put("clip_name2", "t5xxl_tiny.safetensors");
            String pid3 = id(h.queue(p, client, 200));
            JsonNode err3 = ws.await(Harness.WsClient.type("execution_error", pid3), 60_000);
            assertEquals("DualCLIPLoader", err3.path("data").path("node_type").asText());
            assertTrue(err3.path("data").path("exception_message").asText().contains("CLIP-L"), err3.toString());

            // a wrong CLIP type
            ObjectNode q = ksamplerWorkflow(5, 32, "x", "flux-tiny.safetensors");
            ((ObjectNode) q.get("2").get("inputs")).put("type", "sdxl");
            String pid4 = id(h.queue(q, client, 200));
            JsonNode err4 = ws.await(Harness.WsClient.type("execution_error", pid4), 60_000);
            assertTrue(err4.path("data").path("exception_message").asText().contains("'sdxl'"), err4.toString());

            JsonNode ok = run(ksamplerWorkflow(6, 32, "after errors", "flux-tiny.safetensors"), client);
            assertEquals("success", ok.path("status").path("status_str").asText());
            assertFalse(ok.path("outputs").path("11").isMissingNode());
        }
    }

    @Test void kontextWorkflowEncodesTheReferenceAndSamples() throws Exception {
        // a 40×24 reference, uploaded, scaled for Kontext, encoded, referenced; the target latent sized 32×32
        BufferedImage ref = new BufferedImage(40, 24, BufferedImage.TYPE_INT_RGB);
        for (int y = 0; y < 24; y++) for (int x = 0; x < 40; x++) ref.setRGB(x, y, (x * 6) << 16 | (y * 10) << 8 | ((x + y) % 7) * 30);
        java.io.ByteArrayOutputStream png = new java.io.ByteArrayOutputStream();
        ImageIO.write(ref, "png", png);
        Files.write(base.resolve("input/ref.png"), png.toByteArray());
        ObjectNode p = ksamplerWorkflow(3, 32, "make it winter", "flux-tiny.safetensors");
        p.set("30", Json.parse("{\"class_type\":\"LoadImage\",\"inputs\":{\"image\":\"ref.png\"}}"));
        p.set("31", Json.parse("{\"class_type\":\"VAEEncode\",\"inputs\":{\"pixels\":[\"30\",0],\"vae\":[\"3\",0]}}"));
        p.set("32", Json.parse("{\"class_type\":\"ReferenceLatent\",\"inputs\":{\"conditioning\":[\"4\",0],\"latent\":[\"31\",0]}}"));
        ((ObjectNode) p.get("5").get("inputs")).set("conditioning", Json.parse("[\"32\", 0]"));
        ((ObjectNode) p.get("5").get("inputs")).put("guidance", 2.5);
        p.set("10", Json.parse("{\"class_type\":\"VAEDecodeTiled\",\"inputs\":{\"samples\":[\"9\",0],\"vae\":[\"3\",0],\"tile_size\":64,"
                + "\"overlap\":0,\"temporal_size\":64,\"temporal_overlap\":8}}"));
        BufferedImage out = image(run(p, null));
        assertEquals(32, out.getWidth());
        assertEquals(32, out.getHeight());
        BufferedImage plain = image(run(ksamplerWorkflow(3, 32, "make it winter", "flux-tiny.safetensors"), null));
        assertTrue(maxDiff(out, plain) > 0, "the reference changes the image");
    }
}
