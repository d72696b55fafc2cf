package org.dit4j.server.wan;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.wan.TinyWanAccess;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.InterruptedRun;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.flux.FluxEngine;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * ParallelUNETLoader's num_gpus &gt; 1 for Wan2.1 on the CPU: the mesh runs as in-process ranks (a CpuBackend each over
 * LocalCommunicator) and every layout must give the one-device latent within float32 reordering (1e-5 relative to the
 * largest value, the engine's parallel-verification tolerance for F32). One engine serves all layouts in a row: the
 * mesh is rebuilt when the layout changes, with no restart. The tiny Wan transformer with 4 heads (diffusers file with
 * its config.json, so Ulysses 2 divides the heads) and the ComfyUI-style tiny set (1 head: the heads refusal).
 */
class WanMeshTest {

    @TempDir static Path tmp;
    static Ops ops;
    static FluxEngine engine;
    static DiffusionModel model4, model1;
    static TextEncoder te, fluxClip;
    static DiffusionModel flux;

    @BeforeAll static void setUp() throws Exception {
        Path models = TinyWanAccess.writeFiles(tmp.resolve("models"), 21);
        TinyFluxAccess.writeFiles(models, true, 13);                // a Flux model set beside (the shared ranks)
        Path four = TinyWanAccess.writeDiffusers4Heads(tmp.resolve("wan-4heads"), 21);
        ops = new CpuBackend();
        engine = new FluxEngine(ops, models, new HfHub(tmp.resolve("empty-hub"), null, true, null));
        model4 = engine.loadDiffusionModel(four.resolve("transformer/diffusion_pytorch_model.safetensors"), "default");
        model1 = engine.loadDiffusionModel(models.resolve("diffusion_models/wan-tiny.safetensors"), "default");
        te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/umt5-tiny.safetensors")), "wan", "default");
        flux = engine.loadDiffusionModel(models.resolve("diffusion_models/flux-tiny.safetensors"), "default");
        fluxClip = engine.loadTextEncoder(List.of(models.resolve("text_encoders/t5xxl_tiny.safetensors"),
                models.resolve("text_encoders/clip_l.safetensors")), "flux", "default");
    }

    @AfterAll static void tearDown() {
        te.close();
        fluxClip.close();
        flux.close();
        model1.close();
        model4.close();
        engine.close();
        ops.close();
    }

    static ModelRef.ParallelSetting gpus(int n, int ulysses, int ring, int cfg) { return new ModelRef.ParallelSetting(n, ulysses, ring, cfg, 1); }

    static SampleJob job(DiffusionModel m, ModelRef.ParallelSetting p, String sampler, int batch, double cfg, boolean negative) {
        ModelSampling ms = ModelSampling.flow(8.0, 1000);
        ModelRef ref = ModelRef.of(m, p).withSampling(ms);
        Conditioning pos = Conditioning.of(te.encode("a red fox running through fresh snow"));
        Conditioning neg = negative ? Conditioning.of(te.encode("blurry, static")) : null;
        float[] sigmas = Schedulers.ksampler(ms, "simple", sampler, 3, 1.0);
        return new SampleJob(ref, pos, neg, cfg, sampler, sigmas, 7, true, Latent.zeros(batch, 16, 3, 4, 6));
    }

    static SampleResult run(ModelRef.ParallelSetting p, String sampler, int batch, double cfg, StepObserver obs) {
        return engine.sample(job(model4, p, sampler, batch, cfg, true), obs);
    }

    /** max |a − b| / max(1, max |b|). */
    static double relDiff(float[] a, float[] b) {
        assertEquals(b.length, a.length);
        double m = 0, ref = 1;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
            ref = Math.max(ref, Math.abs(b[i]));
        }
        return m / ref;
    }

    @Test void everyLayoutGivesTheOneDeviceLatentAndLayoutsChangeWithoutRestart() {
        record Case(ModelRef.ParallelSetting p, String sampler, int batch, double cfg, ParallelConfig mesh) {}
        List<Case> cases = List.of(
                new Case(gpus(2, 2, 1, 1), "uni_pc", 1, 1.0, new ParallelConfig(1, 1, 1, 2)),
                new Case(gpus(2, 1, 2, 1), "euler", 1, 5.0, new ParallelConfig(1, 1, 2, 1)),
                new Case(gpus(2, 1, 1, 2), "euler", 1, 5.0, new ParallelConfig(1, 2, 1, 1)),
                new Case(gpus(2, 1, 1, 1), "uni_pc", 2, 1.0, new ParallelConfig(2, 1, 1, 1)),
                new Case(gpus(4, 2, 1, 2), "uni_pc_bh2", 1, 4.0, new ParallelConfig(1, 2, 1, 2)),
                new Case(gpus(2, 2, 1, 1), "euler", 1, 5.0, new ParallelConfig(1, 1, 1, 2)));
        for (Case c : cases) {
            SampleResult one = run(ModelRef.ParallelSetting.SINGLE, c.sampler, c.batch, c.cfg, StepObserver.NONE);
            List<Integer> progress = new ArrayList<>();
            SampleResult mesh = run(c.p, c.sampler, c.batch, c.cfg, (i, n) -> progress.add(i));
            assertEquals(c.mesh, engine.meshWorld().config(), "mesh layout for " + c.p);
            assertEquals(List.of(0, 1, 2), progress, c.p + ": progress once per step from rank 0");
            double d = relDiff(mesh.output().samples(), one.output().samples());
            assertTrue(d < 1e-5, c.p + " " + c.sampler + " batch " + c.batch + " cfg " + c.cfg + ": latent vs one device rel. diff " + d);
            double dd = relDiff(mesh.denoised().samples(), one.denoised().samples());
            assertTrue(dd < 1e-5, c.p + ": denoised vs one device rel. diff " + dd);
        }
        // the comparison can fail: another seed's latent is far from this one
        SampleResult a = run(gpus(2, 2, 1, 1), "euler", 1, 5.0, StepObserver.NONE);
        SampleJob other = job(model4, gpus(2, 2, 1, 1), "euler", 1, 5.0, true);
        other = new SampleJob(other.model(), other.positive(), other.negative(), other.cfg(), other.sampler(), other.sigmas(), 8, true,
                other.latent());
        assertTrue(relDiff(engine.sample(other, StepObserver.NONE).output().samples(), a.output().samples()) > 1e-2, "another seed");
    }

    @Test void unsupportedSettingsAreRefusedWithTheInputToChange() {
        var e1 = assertThrows(UnsupportedOperationException.class,
                () -> run(new ModelRef.ParallelSetting(2, 1, 1, 1, 2), "euler", 1, 5.0, StepObserver.NONE));
        assertTrue(e1.getMessage().contains("pipefusion_degree 2") && e1.getMessage().contains("Wan2.1"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> run(gpus(2, 1, 1, 2), "euler", 1, 1.0, StepObserver.NONE));
        assertTrue(e2.getMessage().contains("cfg_degree 2") && e2.getMessage().contains("negative"), e2.getMessage());
        var e2b = assertThrows(IllegalArgumentException.class,
                () -> engine.sample(job(model4, gpus(2, 1, 1, 2), "euler", 1, 5.0, false), StepObserver.NONE));
        assertTrue(e2b.getMessage().contains("cfg_degree 2"), e2b.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class,
                () -> engine.sample(job(model1, gpus(2, 2, 1, 1), "euler", 1, 5.0, true), StepObserver.NONE));
        assertTrue(e3.getMessage().contains("1 attention heads") && e3.getMessage().contains("ulysses_degree 1, ring_degree 2"), e3.getMessage());
        var e4 = assertThrows(IllegalArgumentException.class, () -> run(gpus(4, 1, 4, 1), "euler", 1, 5.0, StepObserver.NONE));
        assertTrue(e4.getMessage().contains("18 tokens") && e4.getMessage().contains("width, height or length"), e4.getMessage());
        var e5 = assertThrows(IllegalArgumentException.class, () -> run(gpus(2, 1, 1, 1), "euler", 3, 5.0, StepObserver.NONE));
        assertTrue(e5.getMessage().contains("batch_size 3"), e5.getMessage());
        for (ModelRef.ParallelSetting p : List.of(gpus(2, 1, 1, 2), gpus(2, 1, 1, 1))) {   // cfg_degree 2; data parallel
            SampleJob cached = cachedJob(p, "euler", 5.0, new ModelRef.CacheSetting(CacheSpec.parse("teacache:0.2"), 0, 1, "wan2.1_t2v_1.3B", "cuda"));
            var e6 = assertThrows(UnsupportedOperationException.class, () -> engine.sample(cached, StepObserver.NONE));
            assertTrue(e6.getMessage().contains("num_gpus 2") && e6.getMessage().contains("cfg_degree 1")
                    && e6.getMessage().contains("ulysses/ring"), e6.getMessage());
        }
        SampleJob other = cachedJob(gpus(2, 2, 1, 1), "euler", 5.0, new ModelRef.CacheSetting(CacheSpec.parse("teacache:0.2"), 0, 1, "wan2.1", "cuda"));
        var e7 = assertThrows(IllegalArgumentException.class, () -> engine.sample(other, StepObserver.NONE));
        assertTrue(e7.getMessage().contains("'wan2.1'") && e7.getMessage().contains("wan2.1_t2v_14B"), e7.getMessage());
    }

    /** {@link #job} on the 4-head model with a cache node's setting. */
    static SampleJob cachedJob(ModelRef.ParallelSetting p, String sampler, double cfg, ModelRef.CacheSetting cache) {
        SampleJob base = job(model4, p, sampler, 1, cfg, true);
        return new SampleJob(base.model().withCache(cache), base.positive(), base.negative(), base.cfg(), base.sampler(), base.sigmas(),
                7, true, base.latent());
    }

    /**
     * TeaCache and MagCache nodes on Ulysses 2 and ring 2: every rank runs the policy over its token rows and the latent
     * equals one device's with the same cache within 1e-5 (relative), with the same computed steps; the cached run
     * skips steps and so differs from the uncached one. 3 steps: the ret-mode TeaCache at 0.01 skips every call in its
     * window [0, 0.5] after a branch's first on the tiny model (step 2 computed again); MagCache 0.05 (retention 0.2,
     * K 4) skips at least one.
     */
    @Test void cacheNodesOnSequenceParallelMeshesGiveTheOneDeviceLatent() {
        ModelRef.CacheSetting tea = new ModelRef.CacheSetting(CacheSpec.parse("teacache-ret:0.01"), 0, 0.5, "wan2.1_t2v_1.3B_ret_mode", "cuda");
        ModelRef.CacheSetting mag = new ModelRef.CacheSetting(new CacheSpec(CacheSpec.Kind.MAGCACHE, java.util.OptionalDouble.of(0.05),
                java.util.OptionalInt.of(4), java.util.OptionalDouble.of(0.2)), 0, 1, "wan2.1_t2v_1.3B", "cuda");
        record Case(ModelRef.ParallelSetting p, String sampler, double cfg, ModelRef.CacheSetting cache) {}
        List<Case> cases = List.of(
                new Case(gpus(2, 2, 1, 1), "euler", 5.0, tea),
                new Case(gpus(2, 1, 2, 1), "uni_pc", 5.0, tea),
                new Case(gpus(2, 2, 1, 1), "uni_pc", 1.0, mag),
                new Case(gpus(2, 1, 2, 1), "euler", 5.0, mag));
        for (Case c : cases) {
            SampleResult plain = engine.sample(cachedJob(ModelRef.ParallelSetting.SINGLE, c.sampler, c.cfg, ModelRef.CacheSetting.NONE),
                    StepObserver.NONE);
            WanSampler.lastCacheSummary = null;
            SampleResult one = engine.sample(cachedJob(ModelRef.ParallelSetting.SINGLE, c.sampler, c.cfg, c.cache), StepObserver.NONE);
            var oneSummary = WanSampler.lastCacheSummary;
            WanSampler.lastCacheSummary = null;
            SampleResult mesh = engine.sample(cachedJob(c.p, c.sampler, c.cfg, c.cache), StepObserver.NONE);
            var meshSummary = WanSampler.lastCacheSummary;
            String what = c.p + " " + c.sampler + " cfg " + c.cfg + " " + c.cache.spec().kind().word();
            assertTrue(oneSummary != null && meshSummary != null, what + ": both runs cached");
            var cond = org.dit4j.engine.cache.Branch.COND;
            assertTrue(oneSummary.computed(cond) < 3, what + ": steps skipped on one device: " + java.util.Arrays.toString(oneSummary.computedSteps(cond)));
            assertEquals(java.util.Arrays.toString(oneSummary.computedSteps(cond)), java.util.Arrays.toString(meshSummary.computedSteps(cond)),
                    what + ": the mesh computes the same steps");
            double d = relDiff(mesh.output().samples(), one.output().samples());
            assertTrue(d < 1e-5, what + ": cached latent on the mesh vs one device rel. diff " + d);
            double vsPlain = relDiff(one.output().samples(), plain.output().samples());
            assertTrue(vsPlain > 1e-4, what + ": skipping changes the latent (rel. diff vs uncached " + vsPlain + ")");
        }
    }

    static SampleResult runFlux(ModelRef.ParallelSetting p, double cfg) {
        ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, 32, 32));
        Conditioning pos = Conditioning.of(fluxClip.encode("a red fox in snow")).withGuidance(3.5);
        Conditioning neg = Conditioning.of(fluxClip.encode("blurry")).withGuidance(3.5);
        return engine.sample(new SampleJob(ModelRef.of(flux, p).withSampling(ms), pos, neg, cfg, "euler", Schedulers.basic(ms, "simple", 3, 1.0),
                5, true, Latent.zeros(1, 16, 4, 4)), StepObserver.NONE);
    }

    /**
     * Flux and Wan prompts on one engine use one set of ranks: a prompt of the other kind with the same layout reuses it,
     * another layout rebuilds it (releasing both kinds' rank weights first), and every run still equals one device.
     */
    @Test void fluxAndWanMeshesShareTheRanks() {
        SampleResult wanOne = run(ModelRef.ParallelSetting.SINGLE, "euler", 1, 5.0, StepObserver.NONE);
        SampleResult fluxOne = runFlux(ModelRef.ParallelSetting.SINGLE, 3.0);
        for (ModelRef.ParallelSetting p : List.of(gpus(2, 2, 1, 1), gpus(2, 1, 1, 2), gpus(2, 2, 1, 1))) {
            double w = relDiff(run(p, "euler", 1, 5.0, StepObserver.NONE).output().samples(), wanOne.output().samples());
            ParallelConfig built = engine.meshWorld().config();
            int builds = engine.meshWorld().builds();
            double f = relDiff(runFlux(p, 3.0).output().samples(), fluxOne.output().samples());
            assertEquals(built, engine.meshWorld().config(), p + ": the Flux prompt used the ranks the Wan prompt built");
            assertEquals(builds, engine.meshWorld().builds(), p + ": the Flux prompt built no ranks of its own");
            assertTrue(w < 1e-5 && f < 1e-5, p + ": Wan rel. diff " + w + ", Flux rel. diff " + f);
        }
    }

    @Test void interruptOnAMeshStopsAllRanksAndTheNextPromptRuns() {
        List<Integer> seen = new ArrayList<>();
        assertThrows(InterruptedRun.class, () -> run(gpus(2, 1, 1, 2), "euler", 1, 5.0, (i, n) -> {
            seen.add(i);
            if (i == 1) throw new InterruptedRun();
        }));
        assertEquals(List.of(0, 1), seen);
        assertEquals(null, engine.meshWorld().config(), "an interrupted run drops the mesh (its communicators were aborted)");
        SampleResult one = run(ModelRef.ParallelSetting.SINGLE, "euler", 1, 5.0, StepObserver.NONE);
        SampleResult mesh = run(gpus(2, 1, 1, 2), "euler", 1, 5.0, StepObserver.NONE);
        assertTrue(relDiff(mesh.output().samples(), one.output().samples()) < 1e-5);
    }
}
