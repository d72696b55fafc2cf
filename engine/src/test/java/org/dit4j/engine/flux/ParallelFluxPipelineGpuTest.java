package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;

import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The multi-GPU pipeline's CUDA-graph denoising loop (two GPUs, tiny random Flux dev, bf16): the mesh with graphs
 * replays what the eager mesh computes (final latent rel-L2 ≤ 1e-6: same kernels, same collectives) and stays within
 * the bf16 bound of one GPU (≤ 1e-2), for Ulysses 2, Ring 2 and CFG parallel 2; a TeaCache run on a Ulysses-2 mesh
 * with graphs takes the eager mesh's decisions and gives its latent. Skipped without two GPUs.
 */
class ParallelFluxPipelineGpuTest {
    @TempDir static Path tmp;
    static CudaBackend gpu;
    static FluxPipeline graphs, eager;

    @BeforeAll static void setUp() throws Exception {
        int n = Cuda.deviceCount();
        assumeTrue(n >= 2, "needs two GPUs, found " + n);
        gpu = new CudaBackend(0);
        Path dev = TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11);
        FluxPipeline.Settings s = FluxPipeline.Settings.defaults(gpu);
        assertTrue(s.cudaGraphs(), "GPU defaults use CUDA graphs");
        graphs = new FluxPipeline(gpu, FluxModelResolver.fromDiffusersFolder(dev), s);
        eager = new FluxPipeline(gpu, FluxModelResolver.fromDiffusersFolder(dev), s.withCudaGraphs(false));
    }

    @AfterAll static void tearDown() {
        if (graphs != null) graphs.close();
        if (eager != null) eager.close();
        if (gpu != null) gpu.close();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "cfg=2"})
    void graphMeshReplaysTheEagerMesh(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        FluxRequest r = ParallelFluxPipelineTest.request(c).withSteps(4);
        float[] one = graphs.generate(r, FluxProgress.NONE).latents();
        float[] meshEager, meshGraph;
        boolean used;
        try (ParallelFluxPipeline par = ParallelFluxPipeline.cuda(eager, c)) {
            meshEager = par.generate(r, FluxProgress.NONE).latents();
        }
        try (ParallelFluxPipeline par = ParallelFluxPipeline.cuda(graphs, c)) {
            FluxPipeline.Result res = par.generate(r, FluxProgress.NONE);
            meshGraph = res.latents();
            used = res.usedCudaGraph();
        }
        assertTrue(used, spec + ": the mesh must report CUDA-graph replay");
        double g = ParallelVerification.compare(spec, meshEager, meshGraph).relL2();
        double o = ParallelVerification.compare(spec, one, meshGraph).relL2();
        System.out.printf("[dit4j-engine] %s mesh graph vs eager rel-L2 %.2e, vs one GPU %.2e%n", spec, g, o);
        assertTrue(g <= 1e-6, spec + ": graph mesh vs eager mesh rel-L2 " + g + " > 1e-6");
        assertTrue(o <= 1e-2, spec + ": graph mesh vs one GPU rel-L2 " + o + " > 1e-2");
    }

    @Test void teaCacheOnAGraphMeshDecidesAsTheEagerMesh() {
        ParallelConfig c = ParallelConfig.parse("ulysses=2");
        FluxRequest r = FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(8).withT5Length(32);
        java.util.function.Supplier<org.dit4j.engine.cache.StepCache> tea =
                () -> new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.5));
        FluxPipeline.Result ref;
        try (ParallelFluxPipeline par = ParallelFluxPipeline.cuda(eager, c)) {
            ref = par.generate(r, FluxProgress.NONE, tea);
        }
        try (ParallelFluxPipeline par = ParallelFluxPipeline.cuda(graphs, c)) {
            FluxPipeline.Result mesh = par.generate(r, FluxProgress.NONE, tea);
            assertTrue(mesh.usedCudaGraph(), "the cached mesh must replay CUDA graphs");
            assertEquals(ref.cache().summary().pattern(Branch.COND), mesh.cache().summary().pattern(Branch.COND),
                    "the graph mesh must skip the steps the eager mesh skips");
            assertTrue(mesh.cache().summary().skipped(Branch.COND) > 0, "the residual path must be exercised: " + mesh.cache().summary());
            double e = ParallelVerification.compare("teacache ulysses=2", ref.latents(), mesh.latents()).relL2();
            System.out.printf("[dit4j-engine] TeaCache ulysses=2 graph vs eager mesh rel-L2 %.2e, pattern %s%n", e,
                    mesh.cache().summary().pattern(Branch.COND));
            assertTrue(e <= 1e-6, "TeaCache graph mesh vs eager mesh rel-L2 " + e + " > 1e-6");
        }
    }
}
