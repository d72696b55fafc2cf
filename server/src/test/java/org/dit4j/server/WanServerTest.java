package org.dit4j.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.engine.wan.TinyWanAccess;
import org.dit4j.engine.wan.WanModelFiles;
import org.dit4j.engine.wan.WanModelResolver;
import org.dit4j.engine.wan.WanPipeline;
import org.dit4j.engine.wan.WanRequest;
import org.dit4j.models.sampling.FlowShiftSchedule;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.flux.FluxEngine;
import org.dit4j.server.json.Json;
import org.dit4j.server.preview.LatentPreview;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ComfyUI's Wan2.1 text-to-video API workflow through the real server and engine (CPU, float32) on a tiny random Wan
 * model set in ComfyUI's folders and file names. Where ComfyUI's semantics and the engine's {@link WanPipeline}
 * coincide — Euler, shift 1, 4 steps (σ = 1, ¾, ½, ¼ and timesteps 1000, 750, 500, 250 are exact in float32), CFG 6,
 * prompts without HTML entities or repeated spaces — the server's result is compared with the pipeline's for the same
 * seed: the final latent within 2e-5 (float32 rounding of the two CFG/Euler formulations) and the saved frames (ComfyUI
 * truncates to 8 bits, the pipeline rounds) within one level.
 */
class WanServerTest {

    @TempDir static Path base;
    static Ops ops;
    static FluxEngine engine;
    static Harness h;
    static Path models;

    static final String POSITIVE = "a red fox running through fresh snow";
    static final String NEGATIVE = "blurry, static, low quality";
    static final String UNET = "wan2.1_t2v_1.3B_bf16.safetensors", CLIP = "umt5_xxl_fp16.safetensors", VAE = "wan_2.1_vae.safetensors";

    @BeforeAll static void start() throws Exception {
        Path tiny = TinyWanAccess.writeFiles(base.resolve("tiny"), 21);
        models = base.resolve("models");
        Files.createDirectories(models.resolve("diffusion_models"));
        Files.createDirectories(models.resolve("text_encoders"));
        Files.createDirectories(models.resolve("vae"));
        TinyWanAccess.writeUnprefixedTransformer(models.resolve("diffusion_models/" + UNET), 21);     // ComfyUI's repackaged names
        Files.copy(tiny.resolve("diffusion_models/wan-tiny.safetensors"), models.resolve("diffusion_models/wan-tiny-prefixed.safetensors"));
        Files.copy(tiny.resolve("text_encoders/umt5-tiny.safetensors"), models.resolve("text_encoders/" + CLIP));
        Files.copy(tiny.resolve("vae/wan-vae-tiny.safetensors"), models.resolve("vae/" + VAE));
        Files.createDirectories(models.resolve("tokenizers"));
        copyTree(tiny.resolve("tokenizers/umt5-xxl"), models.resolve("tokenizers/umt5-xxl"));
        ops = new CpuBackend();
        engine = new FluxEngine(ops, models, hub());
        h = new Harness(base, engine, engine);
    }

    @AfterAll static void stop() {
        h.close();
        engine.close();
        ops.close();
    }

    static HfHub hub() { return new HfHub(base.resolve("empty-hub"), null, true, null); }

    static void copyTree(Path from, Path to) throws Exception {
        Files.createDirectories(to);
        try (var s = Files.list(from)) {
            for (Path p : s.toList()) Files.copy(p, to.resolve(p.getFileName()));
        }
    }

    /** ComfyUI's Wan2.1 text-to-video template (API format), at a tiny size; node ids as in the template. */
    static ObjectNode template(long seed, int steps, double cfg, String sampler, double shift, int length) throws Exception {
        return (ObjectNode) Json.parse("""
            {
             "37": {"class_type":"UNETLoader","inputs":{"unet_name":"%s","weight_dtype":"default"}},
             "38": {"class_type":"CLIPLoader","inputs":{"clip_name":"%s","type":"wan","device":"default"}},
             "39": {"class_type":"VAELoader","inputs":{"vae_name":"%s"}},
             "6":  {"class_type":"CLIPTextEncode","inputs":{"text":"%s","clip":["38",0]}},
             "7":  {"class_type":"CLIPTextEncode","inputs":{"text":"%s","clip":["38",0]}},
             "40": {"class_type":"EmptyHunyuanLatentVideo","inputs":{"width":48,"height":32,"length":%d,"batch_size":1}},
             "48": {"class_type":"ModelSamplingSD3","inputs":{"shift":%s,"model":["37",0]}},
             "3":  {"class_type":"KSampler","inputs":{"seed":%d,"steps":%d,"cfg":%s,"sampler_name":"%s","scheduler":"simple","denoise":1.0,
                    "model":["48",0],"positive":["6",0],"negative":["7",0],"latent_image":["40",0]}},
             "8":  {"class_type":"VAEDecode","inputs":{"samples":["3",0],"vae":["39",0]}},
             "28": {"class_type":"SaveAnimatedWEBP","inputs":{"filename_prefix":"ComfyUI","fps":16,"lossless":false,"quality":90,"method":"default","images":["8",0]}},
             "50": {"class_type":"SaveImage","inputs":{"filename_prefix":"wan/frame","images":["8",0]}}
            }""".formatted(UNET, CLIP, VAE, POSITIVE, NEGATIVE, length, Double.toString(shift), seed, steps, Double.toString(cfg), sampler));
    }

    static List<BufferedImage> frames(Harness hh, JsonNode hist) throws Exception {
        assertEquals("success", hist.path("status").path("status_str").asText(), hist.toString());
        List<BufferedImage> out = new ArrayList<>();
        for (JsonNode img : hist.path("outputs").path("50").path("images")) {
            var view = hh.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=" + img.path("subfolder").asText() + "&type=output");
            assertEquals(200, view.statusCode());
            out.add(ImageIO.read(new ByteArrayInputStream(view.body())));
        }
        return out;
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

    static final float[] EULER_SIGMAS = {1f, 0.75f, 0.5f, 0.25f, 0f};
    static final long[] EULER_TIMESTEPS = {1000, 750, 500, 250};

    /** The engine's pipeline on the same files, seed and prompts over σ = 1, ¾, ½, ¼, 0 with Euler and guidance 6. */
    static WanPipeline.Result pipelineReference(long seed) {
        WanModelFiles files = new WanModelResolver(hub(), models, null).fromFiles(List.of(models.resolve("diffusion_models/" + UNET),
                models.resolve("vae/" + VAE), models.resolve("text_encoders/" + CLIP)));
        try (WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops))) {
            WanRequest r = WanRequest.of(POSITIVE, seed).withNegative(NEGATIVE).withSize(48, 32).withFrames(9).withGuidance(6f)
                    .withSampler("euler");
            return p.generate(r, FlowShiftSchedule.custom(EULER_SIGMAS, EULER_TIMESTEPS, 1.0), null);
        }
    }

    /** {@link #pipelineReference} under a step cache. */
    static WanPipeline.Result pipelineReference(long seed, StepCache policy) {
        WanModelFiles files = new WanModelResolver(hub(), models, null).fromFiles(List.of(models.resolve("diffusion_models/" + UNET),
                models.resolve("vae/" + VAE), models.resolve("text_encoders/" + CLIP)));
        try (WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops))) {
            WanRequest r = WanRequest.of(POSITIVE, seed).withNegative(NEGATIVE).withSize(48, 32).withFrames(9).withGuidance(6f)
                    .withSampler("euler");
            return p.generate(r, FlowShiftSchedule.custom(EULER_SIGMAS, EULER_TIMESTEPS, 1.0), null, policy);
        }
    }

    /** The server's final latent in model space (z = (x − mean)/std) for the Euler/σ = 1, ¾, ½, ¼ job with a cache setting. */
    static float[] serverLatent(DiffusionModel m, TextEncoder te, long seed, ModelRef.CacheSetting cache) {
        ModelRef ref = ModelRef.of(m, ModelRef.ParallelSetting.SINGLE).withSampling(ModelSampling.flow(1.0, 1000)).withCache(cache);
        SampleJob job = new SampleJob(ref, Conditioning.of(te.encode(POSITIVE)), Conditioning.of(te.encode(NEGATIVE)), 6.0, "euler",
                EULER_SIGMAS, seed, true, Latent.zeros(1, 16, 3, 4, 6));
        float[] raw = engine.sample(job, StepObserver.NONE).output().samples();
        int plane = 3 * 4 * 6;
        float[] z = new float[raw.length];
        for (int i = 0; i < z.length; i++) {
            int c = i / plane;
            z[i] = (raw[i] - WanVaeConfig.WAN21_LATENTS_MEAN[c]) / WanVaeConfig.WAN21_LATENTS_STD[c];
        }
        return z;
    }

    static ModelRef.CacheSetting teaCache(double threshold, String type) {
        return new ModelRef.CacheSetting(new CacheSpec(type.endsWith("_ret_mode") ? CacheSpec.Kind.TEACACHE_RET : CacheSpec.Kind.TEACACHE,
                OptionalDouble.of(threshold), OptionalInt.empty(), OptionalDouble.empty()), 0, 1, type, "cuda");
    }

    static ModelRef.CacheSetting magCache(double threshold, double retention, int k) {
        return new ModelRef.CacheSetting(new CacheSpec(CacheSpec.Kind.MAGCACHE, OptionalDouble.of(threshold), OptionalInt.of(k),
                OptionalDouble.of(retention)), 0, 1, "wan2.1_t2v_1.3B", "cuda");
    }

    static float maxDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length);
        float m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }

    static float maxAbs(float[] a) {
        float m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    /**
     * TeaCache and MagCache nodes on the one-GPU Wan path: the server runs the staged transformer with the policy the
     * node describes, and its latent equals the engine's {@link WanPipeline} under the same policy (same decisions: the
     * signals depend on the timestep only) within 2e-5; where steps are skipped the latent differs from the uncached one.
     * On the tiny model the ret-mode TeaCache (e0) skips every call after a branch's first at 0.01, so its end_percent
     * 0.5 leaves steps 0 and 3 computed; MagCache 0.05 (retention 0.2, K 4) computes 2 of 4; TeaCache on e skips
     * nothing there (its 1.3B polynomial on the tiny model's embedding changes), which checks that the staged path
     * reproduces the uncached arithmetic.
     */
    @Test void cacheNodesRunTheCachedTransformerLikeWanPipeline() throws Exception {
        long seed = 42;
        DiffusionModel m = engine.loadDiffusionModel(models.resolve("diffusion_models/" + UNET), "default");
        TextEncoder te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/" + CLIP)), "wan", "default");
        try (m; te) {
            float[] plain = serverLatent(m, te, seed, ModelRef.CacheSetting.NONE);
            float scale = Math.max(1f, maxAbs(plain));
            assertTrue(maxAbs(plain) > 0.1f, "a latent that is not ~0");

            record Case(String name, ModelRef.CacheSetting node, StepCache policy, int computed) {}
            ModelRef.CacheSetting ret = new ModelRef.CacheSetting(teaCache(0.01, "wan2.1_t2v_1.3B_ret_mode").spec(), 0, 0.5,
                    "wan2.1_t2v_1.3B_ret_mode", "cuda");
            List<Case> cases = List.of(
                    new Case("TeaCache ret mode 0.01, end 0.5", ret,
                            new TeaCache(TeaCache.Config.comfyUi(TeaCache.WAN21_T2V_1_3B_RET, 0.01, 0, 0.5)), 2),
                    new Case("MagCache 0.05", magCache(0.05, 0.2, 4),
                            new MagCache(MagCache.Config.comfyUi(MagCache.WAN21_T2V_1_3B.table(), false, 0.05, 0.2, 4, 0, -1)), 2),
                    new Case("TeaCache 0.4", teaCache(0.4, "wan2.1_t2v_1.3B"),
                            new TeaCache(TeaCache.Config.comfyUi(TeaCache.WAN21_T2V_1_3B, 0.4, 0, 1)), 4));
            for (Case c : cases) {
                WanPipeline.Result ref = pipelineReference(seed, c.policy());
                assertEquals(c.computed(), ref.cache().summary().computed(Branch.COND), c.name() + ": " + ref.cache().trace());
                assertEquals(c.computed(), ref.cache().summary().computed(Branch.UNCOND), c.name() + ": " + ref.cache().trace());
                float[] mine = serverLatent(m, te, seed, c.node());
                float vsPipeline = maxDiff(mine, ref.latents()), vsPlain = maxDiff(mine, plain);
                assertTrue(vsPipeline <= 2e-5f * scale, c.name() + ": server vs WanPipeline with the same policy, max |Δ| " + vsPipeline);
                if (c.computed() < 4)
                    assertTrue(vsPlain > 1e-3f && vsPlain < scale, c.name() + ": skipped steps change the latent, but not beyond its "
                            + "scale: max |Δ| vs uncached " + vsPlain + " (max |z| " + scale + ")");
                else
                    assertTrue(vsPlain <= 2e-5f * scale, c.name() + ": nothing skipped, the staged path vs uncached: max |Δ| " + vsPlain);
            }
        }
    }

    /** Cache nodes at threshold 0 change nothing: the uncached path, bit for bit (whatever their model_type). */
    @Test void cacheNodesAtThresholdZeroAreUncachedBitForBit() throws Exception {
        long seed = 7;
        DiffusionModel m = engine.loadDiffusionModel(models.resolve("diffusion_models/" + UNET), "default");
        TextEncoder te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/" + CLIP)), "wan", "default");
        try (m; te) {
            float[] plain = serverLatent(m, te, seed, ModelRef.CacheSetting.NONE);
            assertArrayEquals(plain, serverLatent(m, te, seed, teaCache(0, "wan2.1_t2v_1.3B")), 0f, "TeaCache at 0");
            assertArrayEquals(plain, serverLatent(m, te, seed, teaCache(0, "flux")), 0f, "TeaCache at 0 with another model_type");
            assertArrayEquals(plain, serverLatent(m, te, seed, magCache(0, 0.2, 4)), 0f, "MagCache at 0");
        }
    }

    /** A cache node naming another model is refused with the model types to use. */
    @Test void cacheNodesForOtherModelsAreRefused() throws Exception {
        DiffusionModel m = engine.loadDiffusionModel(models.resolve("diffusion_models/" + UNET), "default");
        TextEncoder te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/" + CLIP)), "wan", "default");
        try (m; te) {
            for (ModelRef.CacheSetting c : List.of(teaCache(0.4, "flux"), teaCache(0.4, "cogvideox"),
                    new ModelRef.CacheSetting(magCache(0.1, 0.2, 4).spec(), 0, 1, "flux_kontext", "cuda"))) {
                IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                        () -> serverLatent(m, te, 1, c));
                assertTrue(e.getMessage().contains("'" + c.modelType() + "'") && e.getMessage().contains("wan2.1_t2v_1.3B"), e.getMessage());
            }
        }
    }

    @Test void comfyScheduleIsTheExactOneTheComparisonUses() {
        float[] s = Schedulers.ksampler(ModelSampling.flow(1.0, 1000), "simple", "euler", 4, 1.0);
        assertArrayEquals(EULER_SIGMAS, s, 0f);
        for (int i = 0; i < 4; i++) assertEquals((float) EULER_TIMESTEPS[i], ModelSampling.flow(1.0, 1000).timestep(s[i]), 0f);
    }

    @Test void engineLatentEqualsWanPipeline() throws Exception {
        long seed = 42;
        DiffusionModel m = engine.loadDiffusionModel(models.resolve("diffusion_models/" + UNET), "default");
        TextEncoder te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/" + CLIP)), "wan", "default");
        try (m; te) {
            assertEquals("wan2.1-t2v-dim128x2", m.family());
            assertEquals(ModelSampling.flow(8.0, 1000), m.defaultSampling(), "WAN21_T2V's default: discrete flow, shift 8");
            ModelRef ref = ModelRef.of(m, ModelRef.ParallelSetting.SINGLE).withSampling(ModelSampling.flow(1.0, 1000));
            SampleJob job = new SampleJob(ref, Conditioning.of(te.encode(POSITIVE)), Conditioning.of(te.encode(NEGATIVE)), 6.0, "euler",
                    EULER_SIGMAS, seed, true, Latent.zeros(1, 16, 3, 4, 6));
            SampleResult r = engine.sample(job, StepObserver.NONE);
            WanPipeline.Result ref2 = pipelineReference(seed);
            float[] z = ref2.latents();                                         // the pipeline's latent, model space
            float[] raw = r.output().samples();                                 // the server's LATENT, VAE space
            int plane = 3 * 4 * 6;
            float max = 0, maxAbs = 0;
            for (int i = 0; i < z.length; i++) {
                int c = i / plane;
                float mine = (raw[i] - WanVaeConfig.WAN21_LATENTS_MEAN[c]) / WanVaeConfig.WAN21_LATENTS_STD[c];
                max = Math.max(max, Math.abs(mine - z[i]));
                maxAbs = Math.max(maxAbs, Math.abs(z[i]));
            }
            assertTrue(maxAbs > 0.1f, "a latent that is not ~0");
            assertTrue(max <= 2e-5f * Math.max(1f, maxAbs), "server vs WanPipeline latent: max |Δ| " + max + " (max |z| " + maxAbs + ")");
        }
    }

    @Test void templateWithEulerMatchesWanPipelineFrames() throws Exception {
        long seed = 42;
        JsonNode hist = h.awaitHistory(h.queue(template(seed, 4, 6.0, "euler", 1.0, 9), "wan-euler", 200).get("prompt_id").asText(), 120_000);
        List<BufferedImage> frames = frames(h, hist);
        WanPipeline.Result ref = pipelineReference(seed);
        List<RgbImage> expected = ref.videos().getFirst();
        assertEquals(9, frames.size(), "1 + 4·(3 − 1) frames from 3 latent frames");
        assertEquals(expected.size(), frames.size());
        java.util.Set<Integer> values = new java.util.HashSet<>();
        for (int y = 0; y < 32; y++) for (int x = 0; x < 48; x++) values.add(frames.get(4).getRGB(x, y));
        assertTrue(values.size() > 50, "a frame that is not flat: " + values.size() + " colours");
        int worst = 0;
        for (int i = 0; i < frames.size(); i++) worst = Math.max(worst, maxDiff(frames.get(i), expected.get(i)));
        assertTrue(worst <= 1, "server frames vs WanPipeline frames: max |Δ| " + worst + " levels (allowed 1: truncation vs rounding)");
    }

    @Test void comfyTemplateRunsUnchangedWithPreviews() throws Exception {
        try (Harness.WsClient ws = h.ws("wan-template")) {
            JsonNode q = h.queue(template(7, 30, 6.0, "uni_pc", 8.0, 9), "wan-template", 200);
            String pid = q.get("prompt_id").asText();
            JsonNode hist = h.awaitHistory(pid, 120_000);
            List<BufferedImage> frames = frames(h, hist);
            assertEquals(9, frames.size());
            for (BufferedImage f : frames) {
                assertEquals(48, f.getWidth());
                assertEquals(32, f.getHeight());
            }
            JsonNode webp = hist.path("outputs").path("28");
            assertEquals(Json.parse("[true]"), webp.path("animated"));
            JsonNode img = webp.path("images").get(0);
            byte[] bytes = h.getBytes("/view?filename=" + img.path("filename").asText() + "&subfolder=&type=output").body();
            assertEquals("WEBP", new String(bytes, 8, 4, java.nio.charset.StandardCharsets.US_ASCII));
            assertEquals(9, countChunks(bytes, "ANMF"), "one animation frame per video frame");

            ws.await(Harness.WsClient.type("execution_success", pid), 10_000);
            List<JsonNode> msgs = ws.snapshot();
            long progress = msgs.stream().filter(Harness.WsClient.type("progress", pid)::test).count();
            assertEquals(30, progress, "30 KSampler steps");
            List<byte[]> previews = ws.binaries();
            assertEquals(30, previews.size(), "one preview per sampler step");
            int firstProgress = -1, firstBinary = -1;
            for (int i = 0; i < msgs.size(); i++) {
                if (firstProgress < 0 && Harness.WsClient.type("progress", pid).test(msgs.get(i))) firstProgress = i;
                if (firstBinary < 0 && msgs.get(i).path("type").asText().equals("__binary__")) firstBinary = i;
            }
            assertTrue(firstProgress >= 0 && firstBinary > firstProgress, "a step's preview follows its progress event");
            for (byte[] p : previews) {
                ByteBuffer bb = ByteBuffer.wrap(p);
                assertEquals(1, bb.getInt(0), "event type PREVIEW_IMAGE");
                assertEquals(1, bb.getInt(4), "image type JPEG");
                assertEquals((byte) 0xFF, p[8]);
                assertEquals((byte) 0xD8, p[9]);
                BufferedImage jpeg = ImageIO.read(new ByteArrayInputStream(p, 8, p.length - 8));
                assertEquals(512, jpeg.getWidth(), "a 6×4 latent fitted into 512²");
                assertEquals(341, jpeg.getHeight(), "round(4/6·512)");
            }
        }
        // the same prompt with another seed gives other frames; the same seed the same frames (cached loaders reused)
        JsonNode again = h.awaitHistory(h.queue(template(8, 30, 6.0, "uni_pc", 8.0, 9), null, 200).get("prompt_id").asText(), 120_000);
        assertTrue(maxDiffImages(frames(h, again).get(4), frames(h, h.awaitHistory(h.queue(template(7, 30, 6.0, "uni_pc", 8.0, 9), null, 200)
                .get("prompt_id").asText(), 120_000)).get(4)) > 0, "another seed, another video");
    }

    static int maxDiffImages(BufferedImage a, BufferedImage b) {
        int m = 0;
        for (int y = 0; y < a.getHeight(); y++)
            for (int x = 0; x < a.getWidth(); x++)
                for (int k = 0; k < 3; k++) m = Math.max(m, Math.abs(((a.getRGB(x, y) >>> (8 * k)) & 0xff) - ((b.getRGB(x, y) >>> (8 * k)) & 0xff)));
        return m;
    }

    static int countChunks(byte[] webp, String fourcc) {
        ByteBuffer bb = ByteBuffer.wrap(webp).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int pos = 12, n = 0;
        while (pos + 8 <= webp.length) {
            int size = bb.getInt(pos + 4);
            if (new String(webp, pos, 4, java.nio.charset.StandardCharsets.US_ASCII).equals(fourcc)) n++;
            pos += 8 + size + (size & 1);
        }
        return n;
    }

    @Test void previewNoneSendsNoBinaryFrames() throws Exception {
        try (Harness quiet = new Harness(base.resolve("quiet"), engine, engine,
                c -> c.withModelsDir(models).withPreview(LatentPreview.Method.NONE, 512));
             Harness.WsClient ws = quiet.ws("wan-quiet")) {
            String pid = quiet.queue(template(3, 3, 6.0, "euler", 8.0, 5), "wan-quiet", 200).get("prompt_id").asText();
            JsonNode hist = quiet.awaitHistory(pid, 120_000);
            assertEquals(5, frames(quiet, hist).size(), "length 5: 2 latent frames, 5 video frames");
            ws.await(Harness.WsClient.type("execution_success", pid), 10_000);
            assertEquals(3, ws.snapshot().stream().filter(Harness.WsClient.type("progress", pid)::test).count());
            assertEquals(0, ws.binaries().size(), "--preview-method none");
        }
    }

    @Test void objectInfoListsTheWanFiles() throws Exception {
        JsonNode unet = h.getJson("/object_info/UNETLoader").path("UNETLoader").path("input").path("required").path("unet_name").get(0);
        assertTrue(unet.toString().contains(UNET), unet.toString());
        JsonNode clip = h.getJson("/object_info/CLIPLoader").path("CLIPLoader").path("input").path("required");
        assertTrue(clip.path("clip_name").get(0).toString().contains(CLIP), clip.toString());
        assertTrue(clip.path("type").get(0).toString().contains("\"wan\""), clip.toString());
        JsonNode vae = h.getJson("/object_info/VAELoader").path("VAELoader").path("input").path("required").path("vae_name").get(0);
        assertTrue(vae.toString().contains(VAE), vae.toString());
        JsonNode video = h.getJson("/object_info/EmptyHunyuanLatentVideo").path("EmptyHunyuanLatentVideo").path("input").path("required");
        assertEquals(25, video.path("length").get(1).path("default").asInt());
    }

    @Test void validationAndExecutionErrorsNameTheProblem() throws Exception {
        ObjectNode bad = template(1, 4, 6.0, "euler", 8.0, 9);
        ((ObjectNode) bad.get("38").get("inputs")).put("clip_name", "umt5_missing.safetensors");
        JsonNode err = h.queue(bad, null, 400);
        JsonNode e = err.path("node_errors").path("38").path("errors").get(0);
        assertEquals("value_not_in_list", e.path("type").asText(), err.toString());
        assertTrue(e.path("details").asText().contains("umt5_missing.safetensors"), err.toString());

        ObjectNode image = template(1, 2, 6.0, "euler", 8.0, 9);                // an image latent into the Wan sampler
        image.set("40", Json.parse("{\"class_type\":\"EmptySD3LatentImage\",\"inputs\":{\"width\":48,\"height\":32,\"batch_size\":1}}"));
        JsonNode hist = h.awaitHistory(h.queue(image, null, 200).get("prompt_id").asText(), 60_000);
        assertEquals("error", hist.path("status").path("status_str").asText());
        String messages = hist.path("status").path("messages").toString();
        assertTrue(messages.contains("execution_error") && messages.contains("EmptyHunyuanLatentVideo"), messages);
    }
}
