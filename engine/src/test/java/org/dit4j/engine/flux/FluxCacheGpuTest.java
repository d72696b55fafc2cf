package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;

import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Step caches on the GPU with CUDA graphs (one graph per branch and program: head, tail, residual apply), on the tiny
 * random dev pipeline in f32: threshold 0 equals the uncached graph run bit for bit; with thresholds, graphs equal eager
 * runs of the same programs (same decisions, same latent bit for bit — graph replay equals eager on this backend).
 * Skips itself without a GPU.
 */
class FluxCacheGpuTest {
    @TempDir static Path tmp;
    static CudaBackend gpu;
    static FluxPipeline graphs, eager, graphsHost;

    @BeforeAll static void setUp() throws Exception {
        String why = Cuda.unavailableReason();
        if (why != null) System.out.println("[dit4j-engine] skipping Flux step-cache GPU tests: " + why.lines().findFirst().orElse(why));
        assumeTrue(why == null, "no usable CUDA GPU");
        gpu = new CudaBackend();
        FluxModelFiles files = FluxModelResolver.fromDiffusersFolder(TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11));
        FluxPipeline.Settings s = FluxPipeline.Settings.defaults(gpu).withDtype(DType.F32);
        graphs = new FluxPipeline(gpu, files, s.withCudaGraphs(true));
        eager = new FluxPipeline(gpu, files, s.withCudaGraphs(false));
        graphsHost = new FluxPipeline(gpu, files, s.withCudaGraphs(true).withCacheOnHost(true));
    }

    @AfterAll static void tearDown() {
        if (graphs != null) graphs.close();
        if (eager != null) eager.close();
        if (graphsHost != null) graphsHost.close();
        if (gpu != null) gpu.close();
    }

    static FluxRequest request() {
        return FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(8).withT5Length(32);
    }

    @Test void thresholdZeroWithGraphsEqualsTheUncachedGraphRun() {
        for (FluxRequest req : new FluxRequest[] {request(), request().withNegative("blurry", 4f)}) {
            FluxPipeline.Result base = graphs.generate(req, FluxProgress.NONE);
            assertTrue(base.usedCudaGraph());
            for (StepCache p : new StepCache[] {new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0)),
                    FirstBlockCache.of(0), new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0))}) {
                FluxPipeline.Result r = graphs.generate(req, FluxProgress.NONE, p);
                assertTrue(r.usedCudaGraph(), p.describe() + ": the staged programs must run from CUDA graphs");
                assertArrayEquals(base.latents(), r.latents(), 0f, p.describe() + (req.trueCfg() ? " with true CFG" : ""));
            }
        }
    }

    @Test void graphsDecideAndComputeExactlyAsEagerRuns() {
        StepCache[] policies = {new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.5)), FirstBlockCache.of(0.5),
                new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0.1))};
        for (FluxRequest req : new FluxRequest[] {request(), request().withNegative("blurry", 4f)}) {
            for (StepCache p : policies) {
                FluxPipeline.Result e = eager.generate(req, FluxProgress.NONE, p), g = graphs.generate(req, FluxProgress.NONE, p);
                assertTrue(g.usedCudaGraph() && !e.usedCudaGraph());
                for (Branch b : e.cache().summary().branches()) {
                    assertEquals(e.cache().summary().pattern(b), g.cache().summary().pattern(b), p.describe() + " " + b.label());
                    assertTrue(g.cache().summary().skipped(b) > 0, "the residual-apply graph must be exercised: " + g.cache().summary());
                }
                assertArrayEquals(e.latents(), g.latents(), 0f, p.describe() + (req.trueCfg() ? " with true CFG" : "")
                        + ": graph replay must equal eager");
                System.out.println("[dit4j-engine] " + g.cache().summary());
            }
        }
    }

    @Test void residualsInPinnedHostMemoryEqualResidualsOnTheGpuUnderGraphs() {
        FluxRequest req = request().withNegative("blurry", 4f);            // two branches share the one device buffer
        for (StepCache[] p : new StepCache[][] {
                {new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.5)), new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.5))},
                {FirstBlockCache.of(0.5), FirstBlockCache.of(0.5)}}) {
            FluxPipeline.Result d = graphs.generate(req, FluxProgress.NONE, p[0]), h = graphsHost.generate(req, FluxProgress.NONE, p[1]);
            assertTrue(h.usedCudaGraph());
            for (Branch b : d.cache().summary().branches()) {
                assertEquals(d.cache().summary().pattern(b), h.cache().summary().pattern(b), p[0].describe() + " " + b.label());
                assertTrue(h.cache().summary().skipped(b) > 0, "the host-to-device copy must be exercised: " + h.cache().summary());
            }
            assertArrayEquals(d.latents(), h.latents(), 0f, p[0].describe() + ": residuals on the host must give the same latent");
        }
    }
}
