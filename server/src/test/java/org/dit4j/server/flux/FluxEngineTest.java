package org.dit4j.server.flux;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.flux.FluxModelFiles;
import org.dit4j.engine.flux.FluxModelResolver;
import org.dit4j.engine.flux.FluxPipeline;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.flux.FluxRequest;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.InterruptedRun;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Flux engine of the server against {@link FluxPipeline} on tiny random models (CPU, float32): where ComfyUI's
 * semantics and the pipeline's coincide (same sigmas up to float32 rounding, T5 padded to 256, guidance embedded,
 * noise from the same seed), the latents must agree to float32 rounding. Differences that remain by design: ComfyUI's
 * σ table vs diffusers' linspace (last-bit), timestep σ vs fl(fl(σ·1000)/1000), Euler through the denoised
 * prediction vs x + dt·v, CFG on denoised vs on velocity. The schedules coincide only when the step count divides
 * ComfyUI's table length (ModelSamplingFlux: 10000; with 3 steps ComfyUI picks t = 0.6667 where diffusers takes 2/3,
 * a genuine difference of 3e-5 in σ), so the tests use 4 steps.
 */
class FluxEngineTest {

    @TempDir static Path tmp;
    static Ops ops;
    static FluxEngine engine;
    static Path dev, schnell;

    /** Relative tolerance for latents computed along the two formulations (float32 rounding only). */
    static final double LATENT_TOL = 2e-5;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        dev = TinyFluxAccess.writeFiles(tmp.resolve("dev/models"), true, 11);
        schnell = TinyFluxAccess.writeFiles(tmp.resolve("schnell/models"), false, 11);
        engine = new FluxEngine(ops, dev, hub());
    }

    @AfterAll static void tearDown() { ops.close(); }

    static HfHub hub() { return new HfHub(tmp.resolve("empty-hub"), null, true, null); }

    static FluxModelFiles files(Path models) {
        return new FluxModelResolver(hub(), models, null).fromFiles(List.of(models.resolve("diffusion_models/flux-tiny.safetensors"),
                models.resolve("vae/ae.safetensors"), models.resolve("text_encoders/clip_l.safetensors"),
                models.resolve("text_encoders/t5xxl_tiny.safetensors")));
    }

    record Loaded(DiffusionModel model, TextEncoder clip, Vae vae) implements AutoCloseable {
        @Override public void close() {
            model.close();
            clip.close();
            vae.close();
        }
    }

    static Loaded load(FluxEngine e, Path models) throws Exception {
        return new Loaded(e.loadDiffusionModel(models.resolve("diffusion_models/flux-tiny.safetensors"), "default"),
                // ComfyUI's example order (t5 first): roles are read from the tensors
                e.loadTextEncoder(List.of(models.resolve("text_encoders/t5xxl_tiny.safetensors"), models.resolve("text_encoders/clip_l.safetensors")),
                        "flux", "default"),
                e.loadVae(models.resolve("vae/ae.safetensors")));
    }

    static double relDiff(float[] a, float[] b) {
        assertEquals(a.length, b.length, "lengths");
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num = Math.max(num, Math.abs(a[i] - b[i]));
            den = Math.max(den, Math.abs(b[i]));
        }
        return num / den;
    }

    /** The pipeline's final packed latent [1, N, 64] (model space) as the server's raw LATENT [1, 16, h, w]. */
    static float[] pipelineLatentRaw(FluxPipeline.Result r, int h, int w) { return pipelineLatentRaw(r.latents(), h, w); }

    static float[] pipelineLatentRaw(float[] packed, int h, int w) {
        float[] unpacked = FluxSampler.unpack(packed, new FluxSampler.Geometry(1, 16, h, w));
        return FluxSampler.processOut(unpacked);
    }

    // ------------------------------------------------------------------------------------------------ vs FluxPipeline

    @Test void devTextToImageMatchesFluxPipeline() throws Exception {
        int size = 64, steps = 4;
        long seed = 42;
        try (Loaded l = load(engine, dev)) {
            ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, size, size));   // ModelSamplingFlux node
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE).withSampling(ms);
            Conditioning pos = Conditioning.of(l.clip().encode("a red fox in snow")).withGuidance(3.5);
            float[] sigmas = Schedulers.basic(ms, "simple", steps, 1.0);
            List<Integer> seen = new ArrayList<>();
            SampleResult r = engine.sample(new SampleJob(model, pos, pos.zeroed(), 1.0, "euler", sigmas, seed, true,
                    Latent.zeros(1, 16, size / 8, size / 8)), (i, n) -> seen.add(i * 100 + n));
            assertEquals(List.of(4, 104, 204, 304), seen, "one progress call per step, (i, total)");

            try (FluxPipeline p = new FluxPipeline(ops, files(dev), FluxPipeline.Settings.defaults(ops))) {
                FluxPipeline.Result ref = p.generate(FluxRequest.of("a red fox in snow", seed).withSize(size, size).withSteps(steps)
                        .withGuidance(3.5f).withT5Length(FluxEngine.COMFY_T5_MIN_LENGTH), FluxProgress.NONE);
                assertArrayEquals(ref.schedule().sigmas(), sigmas, 2e-7f, "ComfyUI's simple schedule for ModelSamplingFlux(64×64) vs diffusers'");
                double d = relDiff(r.output().samples(), pipelineLatentRaw(ref, size / 8, size / 8));
                assertTrue(d < LATENT_TOL, "latent vs FluxPipeline: rel. diff " + d);

                // decoded: ComfyUI's float image vs the pipeline's 8-bit RGB (rounded): within one level
                ImageBatch img = l.vae().decode(r.output());
                assertEquals(size, img.height());
                assertEquals(size, img.width());
                assertTrue(maxLevelDiff(img, ref.images().getFirst()) <= 1.0 + 1e-3, "pixels within one 8-bit level, got "
                        + maxLevelDiff(img, ref.images().getFirst()));
            }
        }
    }

    static double maxLevelDiff(ImageBatch img, RgbImage rgb) {
        double m = 0;
        for (int i = 0; i < rgb.rgb().length; i++) m = Math.max(m, Math.abs(img.pixels()[i] * 255.0 - (rgb.rgb()[i] & 0xff)));
        return m;
    }

    @Test void schnellAndTrueCfgMatchFluxPipeline() throws Exception {
        FluxEngine e = new FluxEngine(ops, schnell, hub());
        int w = 48, h = 32, steps = 4;
        try (Loaded l = load(e, schnell)) {
            assertEquals("flux-schnell", l.model().family());
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE);          // checkpoint default: flow(1, 1)
            float[] sigmas = Schedulers.basic(model.sampling(), "simple", steps, 1.0);
            assertArrayEquals(new float[] {1f, 0.75f, 0.5f, 0.25f, 0f}, sigmas, 0f);
            Conditioning pos = Conditioning.of(l.clip().encode("a photo of a cat"));
            Conditioning neg = Conditioning.of(l.clip().encode("blue"));
            SampleResult r = e.sample(new SampleJob(model, pos, neg, 4.0, "euler", sigmas, 7, true, Latent.zeros(2, 16, h / 8, w / 8)),
                    StepObserver.NONE);
            try (FluxPipeline p = new FluxPipeline(ops, files(schnell), FluxPipeline.Settings.defaults(ops))) {
                FluxPipeline.Result ref = p.generate(FluxRequest.of("a photo of a cat", 7).withSize(w, h).withSteps(steps).withBatch(2)
                        .withNegative("blue", 4f), FluxProgress.NONE);
                float[] refRaw = new float[r.output().samples().length];
                int per = refRaw.length / 2;
                for (int b = 0; b < 2; b++) {
                    float[] one = java.util.Arrays.copyOfRange(ref.latents(), b * per, (b + 1) * per);
                    System.arraycopy(pipelineLatentRaw(one, h / 8, w / 8), 0, refRaw, b * per, per);
                }
                double d = relDiff(r.output().samples(), refRaw);
                assertTrue(d < LATENT_TOL, "schnell, batch 2, true CFG 4: latent vs FluxPipeline rel. diff " + d);
            }
        }
    }

    @Test void kontextReferenceLatentMatchesFluxPipeline() throws Exception {
        int size = 32, steps = 4;
        RgbImage refImg = pattern(48, 32);
        try (Loaded l = load(engine, dev)) {
            ImageBatch pixels = new ImageBatch(1, refImg.height(), refImg.width(), 3, unit(refImg));
            Latent refLatent = l.vae().encode(pixels);                                           // VAEEncode: raw
            assertArrayEquals(new long[] {1, 16, 4, 6}, refLatent.shape());
            ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, size, size));
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE).withSampling(ms);
            Conditioning pos = Conditioning.of(l.clip().encode("make it winter")).withReference(refLatent).withGuidance(2.5);
            float[] sigmas = Schedulers.basic(ms, "simple", steps, 1.0);
            SampleResult r = engine.sample(new SampleJob(model, pos, null, 1.0, "euler", sigmas, 5, true,
                    Latent.zeros(1, 16, size / 8, size / 8)), StepObserver.NONE);
            FluxPipeline.Settings s = FluxPipeline.Settings.defaults(ops).withKontextResize(false);
            try (FluxPipeline p = new FluxPipeline(ops, files(dev), s)) {
                FluxPipeline.Result ref = p.generate(FluxRequest.of("make it winter", 5).withSize(size, size).withSteps(steps)
                        .withGuidance(2.5f).withReference(refImg).withT5Length(FluxEngine.COMFY_T5_MIN_LENGTH), FluxProgress.NONE);
                double d = relDiff(r.output().samples(), pipelineLatentRaw(ref, size / 8, size / 8));
                assertTrue(d < LATENT_TOL, "Kontext latent vs FluxPipeline: rel. diff " + d);
            }
        }
    }

    static RgbImage pattern(int w, int h) {
        byte[] rgb = new byte[3 * w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int o = 3 * (y * w + x);
                rgb[o] = (byte) (x * 255 / (w - 1));
                rgb[o + 1] = (byte) (y * 255 / (h - 1));
                rgb[o + 2] = (byte) (((x / 8 + y / 8) % 2) * 200);
            }
        return new RgbImage(w, h, rgb);
    }

    /** 8-bit RGB → ComfyUI's IMAGE values p/255 (LoadImage). */
    static float[] unit(RgbImage img) {
        float[] px = new float[img.rgb().length];
        for (int i = 0; i < px.length; i++) px[i] = (img.rgb()[i] & 0xff) / 255f;
        return px;
    }

    // ------------------------------------------------------------------------------------------------ sampler semantics

    @Test void denoiseBelowOneMixesNoiseIntoTheLatentAndNoNoiseKeepsIt() throws Exception {
        try (Loaded l = load(engine, dev)) {
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE);
            Conditioning pos = Conditioning.of(l.clip().encode("a cat"));
            float[] in = new float[16 * 4 * 4];
            for (int i = 0; i < in.length; i++) in[i] = (float) Math.sin(i * 0.37);
            Latent latent = new Latent(new long[] {1, 16, 4, 4}, in);
            // an empty schedule returns the input
            SampleResult none = engine.sample(new SampleJob(model, pos, null, 1, "euler", new float[] {0f}, 1, true, latent), StepObserver.NONE);
            assertArrayEquals(in, none.output().samples(), 0f);
            // σ = [0.5, 0]: x = 0.5·noise + 0.5·process_in(latent), one Euler step to σ = 0; with add_noise off the
            // noise is zero, and the run is deterministic in the latent only
            float[] sig = {0.5f, 0f};
            SampleResult a = engine.sample(new SampleJob(model, pos, null, 1, "euler", sig, 1, false, latent), StepObserver.NONE);
            SampleResult b = engine.sample(new SampleJob(model, pos, null, 1, "euler", sig, 2, false, latent), StepObserver.NONE);
            assertTrue(relDiff(a.output().samples(), b.output().samples()) < 1e-5, "without noise the seed does not matter");
            SampleResult c = engine.sample(new SampleJob(model, pos, null, 1, "euler", sig, 2, true, latent), StepObserver.NONE);
            assertTrue(relDiff(a.output().samples(), c.output().samples()) > 1e-3, "with noise it does");
            // with σ_last = 0 the output of a one-step Euler run is the denoised prediction (x + (0 − σ)(x − d)/σ = d up to rounding)
            assertTrue(relDiff(a.output().samples(), a.denoised().samples()) < 1e-5, "output vs denoised after the last step");
        }
    }

    @Test void interruptStopsBetweenStepsAndReleasesTheRun() throws Exception {
        try (Loaded l = load(engine, dev)) {
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE);
            Conditioning pos = Conditioning.of(l.clip().encode("a cat"));
            float[] sigmas = Schedulers.basic(model.sampling(), "simple", 6, 1.0);
            List<Integer> steps = new ArrayList<>();
            assertThrows(InterruptedRun.class, () -> engine.sample(new SampleJob(model, pos, null, 1, "euler", sigmas, 1, true,
                    Latent.zeros(1, 16, 4, 4)), (i, n) -> {
                        steps.add(i);
                        if (i == 1) throw new InterruptedRun();
                    }));
            assertEquals(List.of(0, 1), steps);
            // the engine is still usable
            SampleResult r = engine.sample(new SampleJob(model, pos, null, 1, "euler", sigmas, 1, true, Latent.zeros(1, 16, 4, 4)), StepObserver.NONE);
            assertEquals(256, r.output().samples().length);
        }
    }

    static ModelRef.CacheSetting tea(double threshold) {
        return new ModelRef.CacheSetting(new org.dit4j.engine.cache.CacheSpec(org.dit4j.engine.cache.CacheSpec.Kind.TEACACHE,
                java.util.OptionalDouble.of(threshold), java.util.OptionalInt.empty(), java.util.OptionalDouble.empty()), 0, 1, "flux", "cuda");
    }

    @Test void stepCachesFollowTheNodesSettings() throws Exception {
        try (Loaded l = load(engine, dev)) {
            ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, 32, 32));
            ModelRef model = ModelRef.of(l.model(), ModelRef.ParallelSetting.SINGLE).withSampling(ms);
            Conditioning pos = Conditioning.of(l.clip().encode("a red fox")).withGuidance(3.5);
            float[] sigmas = Schedulers.basic(ms, "simple", 8, 1.0);
            Latent empty = Latent.zeros(1, 16, 4, 4);
            SampleResult plain = engine.sample(new SampleJob(model, pos, null, 1, "euler", sigmas, 3, true, empty), StepObserver.NONE);
            // threshold 0: no policy at all (ComfyUI's nodes change nothing); a threshold nothing stays under: every step
            // computed through the staged transformer, the same latent
            assertEquals(null, FluxSampler.stepCache(tea(0)));
            SampleResult all = engine.sample(new SampleJob(model.withCache(tea(1e-9)), pos, null, 1, "euler", sigmas, 3, true, empty),
                    StepObserver.NONE);
            assertTrue(relDiff(all.output().samples(), plain.output().samples()) < 1e-5, "TeaCache computing every step vs no cache");
            // a huge threshold skips steps: another latent, still finite
            SampleResult skip = engine.sample(new SampleJob(model.withCache(tea(100)), pos, null, 1, "euler", sigmas, 3, true, empty),
                    StepObserver.NONE);
            double d = relDiff(skip.output().samples(), plain.output().samples());
            assertTrue(d > 1e-4 && Double.isFinite(d), "skipped steps change the latent: " + d);
            // CFG under a cache: a ConditioningZeroOut negative shares the inputs; a negative with another guidance does not
            SampleResult cfg = engine.sample(new SampleJob(model.withCache(tea(0.4)), pos, pos.zeroed(), 2.0, "euler", sigmas, 3, true, empty),
                    StepObserver.NONE);
            assertEquals(256, cfg.output().samples().length);
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> engine.sample(new SampleJob(
                    model.withCache(tea(0.4)), pos, pos.zeroed().withGuidance(1.0), 2.0, "euler", sigmas, 3, true, empty), StepObserver.NONE));
            assertTrue(e.getMessage().contains("guidance"), e.getMessage());
            IllegalArgumentException wan = assertThrows(IllegalArgumentException.class, () -> FluxSampler.stepCache(
                    new ModelRef.CacheSetting(tea(0.2).spec(), 0, 1, "wan2.1_t2v_1.3B", "cuda")));
            assertTrue(wan.getMessage().contains("model_type flux"), wan.getMessage());
        }
    }

    @Test void loraSetsReloadTheWeightsOnlyWhenTheyChange() throws Exception {
        Path lora = tmp.resolve("lora.safetensors");
        org.dit4j.models.flux.FluxConfig fc;
        try (org.dit4j.core.io.WeightSource w = org.dit4j.core.io.WeightSource.open(dev.resolve("diffusion_models/flux-tiny.safetensors"))) {
            fc = org.dit4j.models.flux.FluxConfig.detect(w);
        }
        int d = fc.hiddenSize();
        float[] a = new float[2 * d], b = new float[3 * d * 2];
        for (int i = 0; i < a.length; i++) a[i] = (float) Math.sin(i);
        for (int i = 0; i < b.length; i++) b[i] = (float) Math.cos(i);
        org.dit4j.core.io.SafeTensorsWriter.write(lora, java.util.Map.of(
                "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", org.dit4j.core.tensor.Tensor.of(a, 2, d),
                "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", org.dit4j.core.tensor.Tensor.of(b, 3L * d, 2)), java.util.Map.of());
        try (FluxModel m = (FluxModel) engine.loadDiffusionModel(dev.resolve("diffusion_models/flux-tiny.safetensors"), "default")) {
            var base = m.transformer();
            assertTrue(base == m.transformer(List.of()), "same set: no reload");
            var specs = List.of(new org.dit4j.models.flux.lora.LoraSpec(lora, 0.5f));
            var patched = m.transformer(specs);
            assertTrue(patched != base, "another set: reloaded with the LoRA merged");
            assertTrue(patched == m.transformer(List.of(new org.dit4j.models.flux.lora.LoraSpec(lora, 0.5f))), "equal set: no reload");
            assertTrue(m.transformer(List.of(new org.dit4j.models.flux.lora.LoraSpec(lora, 0.6f))) != patched, "another strength: reloaded");
            assertTrue(engine.loadLora(lora) instanceof FluxLora);
            IllegalStateException released = assertThrows(IllegalStateException.class, () -> {
                m.close();
                m.transformer();
            });
            assertTrue(released.getMessage().contains("released"), released.getMessage());
        }
    }

    @Test void oddLatentSidesArePaddedByWrappingAndCropped() {
        FluxSampler.Geometry g = new FluxSampler.Geometry(1, 1, 3, 3);
        float[] x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        float[] p = FluxSampler.pack(x, g);
        // tokens of the 4×4 grid padded circularly: rows 1,2,3,1 / cols 1,2,3,1; token (0,0) = [1,2,4,5], (0,1) = [3,1,6,4],
        // (1,0) = [7,8,1,2], (1,1) = [9,7,3,1]
        assertArrayEquals(new float[] {1, 2, 4, 5, 3, 1, 6, 4, 7, 8, 1, 2, 9, 7, 3, 1}, p, 0f);
        assertArrayEquals(x, FluxSampler.unpack(p, g), 0f);
    }

    @Test void latentFormatIsComfyUisFluxFormat() {
        float[] raw = {0.1159f, 1.1159f};
        float[] in = FluxSampler.processIn(raw);
        assertEquals(0f, in[0], 0f);
        assertEquals(0.3611f, in[1], 1e-7f);
        assertArrayEquals(raw, FluxSampler.processOut(in), 1e-7f);
        assertTrue(FluxSampler.isClose(1.0, 1.0 + 1e-10));
        assertTrue(!FluxSampler.isClose(1.0, 1.0 + 1e-8));
    }

    @Test void guidanceIsRoundedAsComfyUiPassesItToABf16Model() {
        // FloatTensor([3.7]) cast to bf16 = 3.703125; 1000·3.703125 = 3703.125 rounded to bf16 = 3696
        float g = FluxSampler.round(org.dit4j.core.tensor.DType.BF16, 3.7f);
        assertEquals(3.703125f, g, 0f);
        assertEquals(3696f, FluxSampler.round(org.dit4j.core.tensor.DType.BF16, 1000f * g), 0f);
        assertEquals(3.7f, FluxSampler.round(org.dit4j.core.tensor.DType.F32, 3.7f), 0f);
    }

    // ------------------------------------------------------------------------------------------------ VAE

    @Test void tiledDecodeFollowsComfyUisTiling() throws Exception {
        // tile positions: tiled_scale_multidim's list (start every tile − overlap, one more flush with the end)
        assertArrayEquals(new int[] {0}, FluxVae.positions(8, 8, 2));
        assertArrayEquals(new int[] {0, 6, 12}, FluxVae.positions(16, 8, 2));
        assertArrayEquals(new int[] {0, 3, 6}, FluxVae.positions(9, 4, 1));
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6}, FluxVae.positions(10, 4, 4));     // step clamped to 1: one flush tile added
        // feather: (t+1)/feather on the first and last `feather` lines of each axis, rows then columns
        float[] m = FluxVae.mask(4, 3, 2);
        float[] expect = {0.25f, 0.5f, 0.25f, 0.5f, 1f, 0.5f, 0.5f, 1f, 0.5f, 0.25f, 0.5f, 0.25f};
        assertArrayEquals(expect, m, 0f);
        try (Vae vae = engine.loadVae(dev.resolve("vae/ae.safetensors"))) {
            float[] z = new float[16 * 6 * 6];
            for (int i = 0; i < z.length; i++) z[i] = (float) Math.cos(i * 0.11) * 2;
            Latent small = new Latent(new long[] {1, 16, 6, 6}, z);
            ImageBatch whole = vae.decode(small);
            // a latent that fits every tile shape (tile 64 px = 8 cells, halves 4 < 6): not all three passes are single
            // tiles, so compare a latent that fits the smallest tile shape: 1 × 16 × 2 × 2 with tile 32 px (4 cells; halves 2)
            Latent tiny = new Latent(new long[] {1, 16, 2, 2}, java.util.Arrays.copyOf(z, 64));
            assertArrayEquals(vae.decode(tiny).pixels(), vae.decodeTiled(tiny, 32, 8).pixels(), 1e-5f,
                    "a latent inside every tile decodes as a whole");
            ImageBatch tiled = vae.decodeTiled(small, 32, 8);
            assertEquals(whole.height(), tiled.height());
            double maxDiff = 0;
            for (int i = 0; i < whole.pixels().length; i++) {
                float v = tiled.pixels()[i];
                assertTrue(v >= 0f && v <= 1f, "tiled pixels are clamped to [0, 1]");
                maxDiff = Math.max(maxDiff, Math.abs(v - whole.pixels()[i]));
            }
            assertTrue(maxDiff > 0, "tiles see less context than the whole decode");
        }
    }

    @Test void vaeEncodeDecodeShapes() throws Exception {
        try (Vae vae = engine.loadVae(dev.resolve("vae/ae.safetensors"))) {
            assertEquals(16, vae.latentChannels());
            assertEquals(8, vae.downscale());
            ImageBatch px = new ImageBatch(2, 16, 24, 3, new float[2 * 16 * 24 * 3]);
            Latent z = vae.encode(px);
            assertArrayEquals(new long[] {2, 16, 2, 3}, z.shape());
            ImageBatch back = vae.decode(z);
            assertEquals(2, back.batch());
            assertEquals(16, back.height());
            assertEquals(24, back.width());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> vae.decode(Latent.zeros(1, 4, 2, 2)));
            assertTrue(e.getMessage().contains("EmptySD3LatentImage"), e.getMessage());
        }
    }
}
