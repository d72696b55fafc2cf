package org.dit4j.engine.wan;

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
import org.dit4j.engine.flux.FluxProgress;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Wan step caches on the GPU with CUDA graphs (one graph per branch and program: head, tail, residual apply), on the
 * tiny random pipeline in f32: threshold 0 equals the uncached graph run bit for bit; with thresholds, graphs equal
 * eager runs of the same programs (same decisions, same latent bit for bit), and residuals in pinned host memory equal
 * residuals on the GPU. Skips itself without a GPU.
 */
class WanCacheGpuTest {
    @TempDir static Path tmp;
    static CudaBackend gpu;
    static WanPipeline graphs, eager, graphsHost;

    @BeforeAll static void setUp() throws Exception {
        String why = Cuda.unavailableReason();
        if (why != null) System.out.println("[dit4j-engine] skipping Wan step-cache GPU tests: " + why.lines().findFirst().orElse(why));
        assumeTrue(why == null, "no usable CUDA GPU");
        gpu = new CudaBackend();
        WanModelFiles files = WanModelResolver.fromDiffusersFolder(TinyWan.writeDiffusers(tmp.resolve("tiny-wan"), 21));
        WanPipeline.Settings s = WanPipeline.Settings.defaults(gpu).withDtype(DType.F32);
        graphs = new WanPipeline(gpu, files, s.withCudaGraphs(true));
        eager = new WanPipeline(gpu, files, s.withCudaGraphs(false));
        graphsHost = new WanPipeline(gpu, files, s.withCudaGraphs(true).withCacheOnHost(true));
    }

    @AfterAll static void tearDown() {
        if (graphs != null) graphs.close();
        if (eager != null) eager.close();
        if (graphsHost != null) graphsHost.close();
        if (gpu != null) gpu.close();
    }

    static WanRequest request() {
        return WanRequest.of("a red fox in the snow", 7).withSize(48, 32).withFrames(9).withSteps(WanPipelineCacheTest.STEPS).withGuidance(5f);
    }

    static StepCache[] skipping() {
        return new StepCache[] {TeaCache.of(WanPipelineCacheTest.TINY_E), TeaCache.of(WanPipelineCacheTest.TINY_E0),
                FirstBlockCache.of(WanPipelineCacheTest.FB_THRESHOLD),
                new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withThreshold(WanPipelineCacheTest.MAG_THRESHOLD))};
    }

    @Test void thresholdZeroWithGraphsEqualsTheUncachedGraphRun() {
        for (WanRequest req : new WanRequest[] {request(), request().withGuidance(1f)}) {
            WanPipeline.Result base = graphs.generate(req, FluxProgress.NONE);
            assertTrue(base.usedCudaGraph());
            for (StepCache p : new StepCache[] {new TeaCache(TeaCache.Config.reference(TeaCache.WAN21_T2V_1_3B).withThreshold(0)),
                    new TeaCache(TeaCache.Config.reference(TeaCache.WAN21_T2V_1_3B_RET).withThreshold(0)), FirstBlockCache.of(0),
                    new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withThreshold(0))}) {
                WanPipeline.Result r = graphs.generate(req, FluxProgress.NONE, p);
                assertTrue(r.usedCudaGraph(), p.describe() + ": the staged programs must run from CUDA graphs");
                assertArrayEquals(base.latents(), r.latents(), 0f, p.describe() + (r.request().cfg() ? " with CFG" : ""));
            }
        }
    }

    @Test void graphsDecideAndComputeExactlyAsEagerRuns() {
        StepCache[] forEager = skipping(), forGraphs = skipping();
        for (int i = 0; i < forEager.length; i++) {
            WanPipeline.Result e = eager.generate(request(), FluxProgress.NONE, forEager[i]);
            WanPipeline.Result g = graphs.generate(request(), FluxProgress.NONE, forGraphs[i]);
            assertTrue(g.usedCudaGraph() && !e.usedCudaGraph());
            for (Branch b : e.cache().summary().branches()) {
                assertEquals(e.cache().summary().pattern(b), g.cache().summary().pattern(b), forEager[i].describe() + " " + b.label());
                assertTrue(g.cache().summary().skipped(b) > 0, "the residual-apply graph must be exercised: " + g.cache().summary());
            }
            assertArrayEquals(e.latents(), g.latents(), 0f, forEager[i].describe() + ": graph replay must equal eager");
            System.out.println("[dit4j-engine] " + g.cache().summary());
        }
    }

    @Test void residualsInPinnedHostMemoryEqualResidualsOnTheGpuUnderGraphs() {
        StepCache[] dev = skipping(), host = skipping();
        for (int i = 0; i < dev.length; i++) {
            WanPipeline.Result d = graphs.generate(request(), FluxProgress.NONE, dev[i]);
            WanPipeline.Result h = graphsHost.generate(request(), FluxProgress.NONE, host[i]);
            assertTrue(h.usedCudaGraph());
            for (Branch b : d.cache().summary().branches())
                assertEquals(d.cache().summary().pattern(b), h.cache().summary().pattern(b), dev[i].describe() + " " + b.label());
            assertArrayEquals(d.latents(), h.latents(), 0f, dev[i].describe() + ": residuals on the host must give the same latent");
        }
    }
}
