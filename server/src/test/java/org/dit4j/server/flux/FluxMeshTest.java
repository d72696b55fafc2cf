package org.dit4j.server.flux;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.InterruptedRun;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
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
 * ParallelUNETLoader's num_gpus &gt; 1 on the CPU: the mesh runs as in-process ranks (a CpuBackend each over
 * LocalCommunicator), and every layout must give the one-device latent within float32 reordering (the engine's
 * parallel-verification tolerance for F32, 1e-5 relative to the largest value). One engine serves all layouts in a
 * row: the mesh is rebuilt when the layout changes, with no restart.
 */
class FluxMeshTest {

    @TempDir static Path tmp;
    static Ops ops;
    static FluxEngine engine;
    static FluxEngineTest.Loaded loaded;
    static Path dev;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        dev = TinyFluxAccess.writeFiles(tmp.resolve("dev/models"), true, 13);
        engine = new FluxEngine(ops, dev, new org.dit4j.engine.hub.HfHub(tmp.resolve("empty-hub"), null, true, null));
        loaded = FluxEngineTest.load(engine, dev);
    }

    @AfterAll static void tearDown() {
        loaded.close();
        engine.close();
        ops.close();
    }

    static SampleResult run(ModelRef.ParallelSetting p, String sampler, int batch, double cfg, StepObserver obs) {
        int size = 32;
        ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, size, size));
        ModelRef model = ModelRef.of(loaded.model(), p).withSampling(ms);
        Conditioning pos = Conditioning.of(loaded.clip().encode("a red fox in snow")).withGuidance(3.5);
        Conditioning neg = Conditioning.of(loaded.clip().encode("blurry")).withGuidance(3.5);
        float[] sigmas = Schedulers.basic(ms, "simple", 4, 1.0);
        return engine.sample(new SampleJob(model, pos, neg, cfg, sampler, sigmas, 5, true, Latent.zeros(batch, 16, size / 8, size / 8)), obs);
    }

    static ModelRef.ParallelSetting gpus(int n, int ulysses, int ring, int cfg) { return new ModelRef.ParallelSetting(n, ulysses, ring, cfg, 1); }

    @Test void everyLayoutGivesTheOneDeviceLatentAndLayoutsChangeWithoutRestart() {
        record Case(ModelRef.ParallelSetting p, String sampler, int batch, double cfg, ParallelConfig mesh) {}
        List<Case> cases = List.of(
                new Case(gpus(2, 2, 1, 1), "uni_pc", 1, 1.0, new ParallelConfig(1, 1, 1, 2)),
                new Case(gpus(2, 1, 2, 1), "euler", 1, 1.0, new ParallelConfig(1, 1, 2, 1)),
                new Case(gpus(2, 1, 1, 2), "euler", 1, 3.0, new ParallelConfig(1, 2, 1, 1)),
                new Case(gpus(2, 1, 1, 1), "uni_pc", 2, 1.0, new ParallelConfig(2, 1, 1, 1)),
                new Case(gpus(4, 2, 1, 2), "uni_pc_bh2", 2, 2.0, new ParallelConfig(1, 2, 1, 2)));
        for (Case c : cases) {
            SampleResult one = run(ModelRef.ParallelSetting.SINGLE, c.sampler, c.batch, c.cfg, StepObserver.NONE);
            List<Integer> progress = new ArrayList<>();
            SampleResult mesh = run(c.p, c.sampler, c.batch, c.cfg, (i, n) -> progress.add(i));
            assertEquals(c.mesh, engine.mesh().config(), "mesh layout for " + c.p);
            assertEquals(List.of(0, 1, 2, 3), progress, c.p + ": progress once per step from rank 0");
            double d = FluxEngineTest.relDiff(mesh.output().samples(), one.output().samples());
            assertTrue(d < 1e-5, c.p + " " + c.sampler + " batch " + c.batch + " cfg " + c.cfg + ": latent vs one device rel. diff " + d);
            double dd = FluxEngineTest.relDiff(mesh.denoised().samples(), one.denoised().samples());
            assertTrue(dd < 1e-5, c.p + ": denoised vs one device rel. diff " + dd);
        }
    }

    @Test void unsupportedLayoutsAreRefusedWithTheSettingToChange() {
        var e1 = assertThrows(UnsupportedOperationException.class,
                () -> run(new ModelRef.ParallelSetting(2, 1, 1, 1, 2), "euler", 1, 1.0, StepObserver.NONE));
        assertTrue(e1.getMessage().contains("pipefusion_degree 2"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> run(gpus(2, 1, 1, 2), "euler", 1, 1.0, StepObserver.NONE));
        assertTrue(e2.getMessage().contains("cfg_degree 2"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class, () -> run(gpus(2, 1, 1, 1), "euler", 3, 1.0, StepObserver.NONE));
        assertTrue(e3.getMessage().contains("batch_size 3"), e3.getMessage());
        var e4 = assertThrows(IllegalArgumentException.class, () -> run(gpus(4, 4, 1, 1), "euler", 1, 1.0, StepObserver.NONE));
        assertTrue(e4.getMessage().contains("heads"), e4.getMessage());
    }

    @Test void interruptOnAMeshStopsAllRanksAndTheNextPromptRuns() {
        List<Integer> seen = new ArrayList<>();
        assertThrows(InterruptedRun.class, () -> run(gpus(2, 2, 1, 1), "euler", 1, 1.0, (i, n) -> {
            seen.add(i);
            if (i == 1) throw new InterruptedRun();
        }));
        assertEquals(List.of(0, 1), seen);
        SampleResult one = run(ModelRef.ParallelSetting.SINGLE, "euler", 1, 1.0, StepObserver.NONE);
        SampleResult mesh = run(gpus(2, 2, 1, 1), "euler", 1, 1.0, StepObserver.NONE);
        assertTrue(FluxEngineTest.relDiff(mesh.output().samples(), one.output().samples()) < 1e-5);
    }

    static SampleResult runCached(ModelRef.ParallelSetting p, String cacheSpec, double cfg) {
        int size = 32;
        ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, size, size));
        ModelRef model = ModelRef.of(loaded.model(), p).withSampling(ms);
        if (cacheSpec != null) model = model.withCache(new ModelRef.CacheSetting(CacheSpec.parse(cacheSpec), 0, 1, "flux", "cuda"));
        Conditioning pos = Conditioning.of(loaded.clip().encode("a red fox in snow")).withGuidance(3.5);
        Conditioning neg = Conditioning.of(loaded.clip().encode("a red fox in snow")).withGuidance(3.5);   // same T5 length
        float[] sigmas = Schedulers.basic(ms, "simple", 10, 1.0);
        return engine.sample(new SampleJob(model, pos, cfg > 1 ? neg : null, cfg, "euler", sigmas, 5, true,
                Latent.zeros(1, 16, size / 8, size / 8)), StepObserver.NONE);
    }

    /** ParallelTeaCache: on a sequence-parallel mesh every rank decides from the whole sequence, as one device does. */
    @Test void stepCachesOnASequenceMeshGiveTheOneDeviceResult() {
        boolean anySkipped = false;
        for (String spec : new String[] {"teacache:0.6", "fbcache:0.5", "magcache:0.3"}) {
            for (ModelRef.ParallelSetting p : List.of(gpus(2, 2, 1, 1), gpus(2, 1, 2, 1))) {
                SampleResult one = runCached(ModelRef.ParallelSetting.SINGLE, spec, 1.0);
                SampleResult mesh = runCached(p, spec, 1.0);
                double d = FluxEngineTest.relDiff(mesh.output().samples(), one.output().samples());
                assertTrue(d < 1e-5, spec + " " + p + ": cached mesh latent vs cached one device rel. diff " + d);
            }
            SampleResult plain = runCached(ModelRef.ParallelSetting.SINGLE, null, 1.0);
            SampleResult cached = runCached(gpus(2, 2, 1, 1), spec, 1.0);
            if (FluxEngineTest.relDiff(cached.output().samples(), plain.output().samples()) > 1e-5) anySkipped = true;
        }
        assertTrue(anySkipped, "no policy skipped a step on the mesh: the cached path was not exercised");
        SampleResult one = runCached(ModelRef.ParallelSetting.SINGLE, "teacache:0.6", 3.0);
        SampleResult mesh = runCached(gpus(2, 2, 1, 1), "teacache:0.6", 3.0);
        assertTrue(FluxEngineTest.relDiff(mesh.output().samples(), one.output().samples()) < 1e-5, "with CFG on one rank pair");
    }

    @Test void stepCachesOnCfgOrDataParallelMeshesAreRefused() {
        ModelRef model = ModelRef.of(loaded.model(), gpus(2, 1, 1, 2))
                .withCache(new ModelRef.CacheSetting(CacheSpec.parse("teacache:0.4"), 0, 1, "flux", "cuda"));
        Conditioning pos = Conditioning.of(loaded.clip().encode("a cat"));
        var e = assertThrows(UnsupportedOperationException.class, () -> engine.sample(new SampleJob(model, pos, pos, 3.0, "euler",
                new float[] {1f, 0.5f, 0f}, 1, true, Latent.zeros(1, 16, 4, 4)), StepObserver.NONE));
        assertTrue(e.getMessage().contains("num_gpus 2") && e.getMessage().contains("cfg_degree 1"), e.getMessage());
    }
}
