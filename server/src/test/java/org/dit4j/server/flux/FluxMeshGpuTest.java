package org.dit4j.server.flux;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;

import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.io.TempDir;

/**
 * ParallelUNETLoader num_gpus 2 on two GPUs (tiny random Flux dev, bf16): the mesh's CUDA-graph sampling replays what
 * its eager sampling computes (a compile setting without CUDA graphs; rel. diff ≤ 1e-6) and stays within bf16 noise of
 * one GPU (≤ 2e-2), for Ulysses 2, Ring 2 and CFG 2. Skipped without two GPUs.
 */
class FluxMeshGpuTest {
    @TempDir static Path tmp;
    static CudaBackend gpu;
    static FluxEngine engine;
    static FluxEngineTest.Loaded loaded;

    @BeforeAll static void setUp() throws Exception {
        assumeTrue(Cuda.deviceCount() >= 2, "needs two GPUs, found " + Cuda.deviceCount());
        gpu = new CudaBackend(0);
        Path dev = TinyFluxAccess.writeFiles(tmp.resolve("dev/models"), true, 13);
        engine = new FluxEngine(gpu, dev, new org.dit4j.engine.hub.HfHub(tmp.resolve("empty-hub"), null, true, null));
        loaded = FluxEngineTest.load(engine, dev);
    }

    @AfterAll static void tearDown() {
        if (loaded != null) loaded.close();
        if (engine != null) engine.close();
        if (gpu != null) gpu.close();
    }

    static SampleResult run(ModelRef.ParallelSetting p, boolean graphs, double cfg) {
        int size = 32;
        ModelSampling ms = ModelSampling.flux(ModelSampling.fluxShift(1.15, 0.5, size, size));
        ModelRef model = ModelRef.of(loaded.model(), p).withSampling(ms);
        if (!graphs) model = model.withCompile(new ModelRef.CompileSetting("default", false, false, false));
        Conditioning pos = Conditioning.of(loaded.clip().encode("a red fox in snow")).withGuidance(3.5);
        Conditioning neg = Conditioning.of(loaded.clip().encode("blurry")).withGuidance(3.5);
        float[] sigmas = Schedulers.basic(ms, "simple", 4, 1.0);
        return engine.sample(new SampleJob(model, pos, neg, cfg, "euler", sigmas, 5, true, Latent.zeros(1, 16, size / 8, size / 8)),
                StepObserver.NONE);
    }

    @ParameterizedTest(name = "ulysses {0}, ring {1}, cfg {2}")
    @CsvSource({"2,1,1,1.0", "1,2,1,1.0", "1,1,2,3.0"})
    void graphMeshEqualsEagerMeshAndOneGpu(int ulysses, int ring, int cfgDegree, double cfg) {
        ModelRef.ParallelSetting p = new ModelRef.ParallelSetting(2, ulysses, ring, cfgDegree, 1);
        SampleResult one = run(ModelRef.ParallelSetting.SINGLE, true, cfg);
        SampleResult eager = run(p, false, cfg);
        SampleResult graph = run(p, true, cfg);
        double g = FluxEngineTest.relDiff(graph.output().samples(), eager.output().samples());
        double o = FluxEngineTest.relDiff(graph.output().samples(), one.output().samples());
        System.out.printf("[dit4j-server] mesh %s: graph vs eager rel. diff %.2e, vs one GPU %.2e%n", p, g, o);
        assertTrue(g <= 1e-6, p + ": graph mesh vs eager mesh " + g);
        assertTrue(o <= 2e-2, p + ": graph mesh vs one GPU " + o);
    }
}
