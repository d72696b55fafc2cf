package org.dit4j.server.wan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.util.List;

import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.wan.TinyWanAccess;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.DiffusionModel;
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
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * ParallelUNETLoader num_gpus 2 for Wan2.1 on two GPUs (tiny random Wan with 4 heads, bf16): the mesh's CUDA-graph
 * sampling replays what its eager sampling computes (a compile setting without CUDA graphs; rel. diff ≤ 1e-6) and stays
 * within bf16 noise of one GPU (≤ 2e-2), for Ulysses 2, Ring 2 and CFG 2. Skipped without two GPUs.
 */
class WanMeshGpuTest {
    @TempDir static Path tmp;
    static CudaBackend gpu;
    static FluxEngine engine;
    static DiffusionModel model;
    static TextEncoder te;

    @BeforeAll static void setUp() throws Exception {
        assumeTrue(Cuda.deviceCount() >= 2, "needs two GPUs, found " + Cuda.deviceCount());
        gpu = new CudaBackend(0);
        Path models = TinyWanAccess.writeFiles(tmp.resolve("models"), 21);
        Path four = TinyWanAccess.writeDiffusers4Heads(tmp.resolve("wan-4heads"), 21);
        engine = new FluxEngine(gpu, models, new HfHub(tmp.resolve("empty-hub"), null, true, null));
        model = engine.loadDiffusionModel(four.resolve("transformer/diffusion_pytorch_model.safetensors"), "default");
        te = engine.loadTextEncoder(List.of(models.resolve("text_encoders/umt5-tiny.safetensors")), "wan", "default");
    }

    @AfterAll static void tearDown() {
        if (te != null) te.close();
        if (model != null) model.close();
        if (engine != null) engine.close();
        if (gpu != null) gpu.close();
    }

    static SampleResult run(ModelRef.ParallelSetting p, boolean graphs, double cfg) {
        ModelSampling ms = ModelSampling.flow(8.0, 1000);
        ModelRef ref = ModelRef.of(model, p).withSampling(ms);
        if (!graphs) ref = ref.withCompile(new ModelRef.CompileSetting("default", false, false, false));
        Conditioning pos = Conditioning.of(te.encode("a red fox running through fresh snow"));
        Conditioning neg = Conditioning.of(te.encode("blurry, static"));
        float[] sigmas = Schedulers.ksampler(ms, "simple", "uni_pc", 4, 1.0);
        return engine.sample(new SampleJob(ref, pos, neg, cfg, "uni_pc", sigmas, 7, true, Latent.zeros(1, 16, 3, 4, 6)), StepObserver.NONE);
    }

    @ParameterizedTest(name = "ulysses {0}, ring {1}, cfg {2}")
    @CsvSource({"2,1,1,1.0", "1,2,1,5.0", "1,1,2,5.0"})
    void graphMeshEqualsEagerMeshAndOneGpu(int ulysses, int ring, int cfgDegree, double cfg) {
        ModelRef.ParallelSetting p = new ModelRef.ParallelSetting(2, ulysses, ring, cfgDegree, 1);
        SampleResult one = run(ModelRef.ParallelSetting.SINGLE, true, cfg);
        SampleResult eager = run(p, false, cfg);
        SampleResult graph = run(p, true, cfg);
        assertEquals(new ParallelConfig(1, cfgDegree, ring, ulysses), engine.meshWorld().config());
        double g = WanMeshTest.relDiff(graph.output().samples(), eager.output().samples());
        double o = WanMeshTest.relDiff(graph.output().samples(), one.output().samples());
        System.out.printf("[dit4j-server] wan mesh %s: graph vs eager rel. diff %.2e, vs one GPU %.2e%n", p, g, o);
        assertTrue(g <= 1e-6, p + ": graph mesh vs eager mesh " + g);
        assertTrue(o <= 2e-2, p + ": graph mesh vs one GPU " + o);
    }
}
