package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The tiny random Wan2.1 pipeline (4 heads, 64×64×9 frames → a 3×4×4 patch grid of 48 tokens, 3 UniPC steps with CFG)
 * generated on an in-process mesh of CpuBackends ({@link ParallelWanPipeline#local}) equals the one-device
 * {@link WanPipeline#generate}: final latent rel-L2 ≤ 1e-5 in f32 for Ulysses 2, Ring 2, USP 2×2, CFG parallel 2,
 * cfg 2 × ulysses 2, data parallel 2 (batch 2), and the 8-rank layouts ring 2 × ulysses 4 and cfg 2 × ulysses 4.
 */
class ParallelWanPipelineTest {
    @TempDir static Path tmp;
    static Ops ops;
    static WanPipeline pipe;
    static Path dir;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        dir = TinyWan.writeDiffusers(tmp.resolve("tiny-wan-4h"), 31, TinyWan.TRANSFORMER_4_HEADS);
        pipe = new WanPipeline(ops, WanModelResolver.fromDiffusersFolder(dir), WanPipeline.Settings.defaults(ops));
    }

    @AfterAll static void tearDown() {
        pipe.close();
        ops.close();
    }

    static WanRequest request(ParallelConfig c) {
        WanRequest r = WanRequest.of("a red fox in the snow", 5).withSize(64, 64).withFrames(9).withSteps(3);
        return c.dp() > 1 ? r.withBatch(c.dp()) : r;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "ring=2,ulysses=2", "cfg=2", "cfg=2,ulysses=2", "dp=2", "ring=2,ulysses=4",
            "cfg=2,ulysses=4"})
    void meshGenerateEqualsOneDevice(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        WanRequest r = request(c);
        float[] want = pipe.generate(r, FluxProgress.NONE).latents();
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            WanPipeline.Result got = par.generate(r, FluxProgress.NONE);
            assertEquals(want.length, got.latents().length);
            assertEquals(r.batch(), got.videos().size());
            assertEquals(9, got.videos().getFirst().size(), "frames decoded from the mesh's latent");
            double e = ParallelVerification.compare(spec, want, got.latents()).relL2();
            assertTrue(e <= 1e-5, spec + ": latent rel-L2 " + e + " vs one device > 1e-5");
            for (float[] rank : par.lastRankLatents()) {
                double er = ParallelVerification.compare(spec, want, rank).relL2();
                assertTrue(er <= 1e-5, spec + ": a rank's latent rel-L2 " + er + " vs one device > 1e-5");
            }
        }
    }

    /** The axis groups are kept across requests: a second request on the same mesh gives the same latent. */
    @Test void aSecondRequestOnTheSameMeshAndEulerAndNoCfg() {
        ParallelConfig c = ParallelConfig.parse("ring=2,ulysses=2");
        WanRequest euler = request(c).withSampler("euler").withGuidance(1f);
        float[] want = pipe.generate(euler, FluxProgress.NONE).latents();
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            float[] a = par.generate(euler, FluxProgress.NONE).latents();
            float[] b = par.generate(euler, FluxProgress.NONE).latents();
            assertTrue(java.util.Arrays.equals(a, b), "same request, same mesh: the same latent bit for bit");
            double e = ParallelVerification.compare("euler", want, a).relL2();
            assertTrue(e <= 1e-5, "Euler without CFG: latent rel-L2 " + e + " vs one device > 1e-5");
        }
    }

    @Test void verifyReportsEveryRankWithinTheF32Tolerance() {
        ParallelConfig c = ParallelConfig.parse("cfg=2,ring=2");
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            assertEquals(1e-5, par.tolerance());
            ParallelVerification.Verification v = par.verify(request(c), FluxProgress.NONE);
            assertEquals(4, v.perRank().size());
            assertTrue(v.within(par.tolerance()), v.summary());
            assertTrue(v.summary().contains("verify-parallel wan dp1×cfg2×ring2×ulysses1: worst"), v.summary());
        }
    }

    static final int CACHE_STEPS = 10;

    static WanRequest cacheRequest() { return request(ParallelConfig.single()).withSteps(CACHE_STEPS); }

    /** Fresh policies at thresholds that skip some steps of {@link #cacheRequest} on this tiny model (both branches). */
    static List<Supplier<StepCache>> cachePolicies() {
        return List.of(
                () -> WanPipelineCacheTest.linearTea(WanPipelineCacheTest.TINY_E),
                () -> WanPipelineCacheTest.linearTea(WanPipelineCacheTest.TINY_E0),
                () -> FirstBlockCache.of(FB_MESH_THRESHOLD),
                () -> WanPipelineCacheTest.mag(MAG_MESH_THRESHOLD));
    }

    static final double FB_MESH_THRESHOLD = 0.13, MAG_MESH_THRESHOLD = 0.12;

    /**
     * TACO's ParallelTeaCache on Wan: every rank runs its policy on its token rows and decides from the same numbers
     * (time-only TeaCache signals; First-Block Cache's sums reduced over the group), so the mesh skips exactly the steps
     * one device skips and its latent is one device's within 1e-5 (f32), with the residual path exercised.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "ring=2,ulysses=2"})
    void stepCachesOnASequenceMeshDecideAndComputeAsOneDevice(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        WanRequest r = cacheRequest();
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            for (Supplier<StepCache> p : cachePolicies()) {
                WanPipeline.Result one = pipe.generate(r, FluxProgress.NONE, p.get());
                WanPipeline.Result mesh = par.generate(r, FluxProgress.NONE, p);
                String what = spec + " " + p.get().describe();
                assertNotNull(mesh.cache(), what + ": the mesh result must carry the cache report");
                assertEquals(List.of(Branch.COND, Branch.UNCOND), mesh.cache().summary().branches(), what);
                for (Branch b : one.cache().summary().branches()) {
                    assertEquals(one.cache().summary().pattern(b), mesh.cache().summary().pattern(b), what + " " + b.label());
                    assertTrue(mesh.cache().summary().skipped(b) > 0 && mesh.cache().summary().computed(b) > 1,
                            what + ": the residual path must be exercised: " + mesh.cache().summary());
                }
                assertEquals(9, mesh.videos().getFirst().size(), what + ": frames decoded from the mesh's latent");
                double e = ParallelVerification.compare(what, one.latents(), mesh.latents()).relL2();
                assertTrue(e <= 1e-5, what + ": latent rel-L2 " + e + " vs one device > 1e-5");
                for (float[] rank : par.lastRankLatents()) {
                    double er = ParallelVerification.compare(what, one.latents(), rank).relL2();
                    assertTrue(er <= 1e-5, what + ": a rank's latent rel-L2 " + er + " vs one device > 1e-5");
                }
            }
        }
    }

    /** The StepCache overload runs a copy of the policy's configuration per rank: the same as the Supplier overload. */
    @Test void aStepCacheInstanceRunsAsFreshPoliciesPerRank() {
        ParallelConfig c = ParallelConfig.parse("ulysses=2");
        FirstBlockCache fb = FirstBlockCache.of(FB_MESH_THRESHOLD);
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            WanPipeline.Result a = par.generate(cacheRequest(), FluxProgress.NONE, fb);
            WanPipeline.Result b = par.generate(cacheRequest(), FluxProgress.NONE, () -> FirstBlockCache.of(FB_MESH_THRESHOLD));
            assertArrayEquals(a.latents(), b.latents(), 0f, "same policy, same mesh: the same latent bit for bit");
            assertEquals(a.cache().summary().pattern(Branch.COND), b.cache().summary().pattern(Branch.COND));
            assertTrue(a.cache().summary().skipped(Branch.COND) > 0, a.cache().summary().toString());
            assertEquals(0, fb.openRequests(), "the given policy holds no request state");
            WanPipeline.Result none = par.generate(request(c), FluxProgress.NONE, NoCache.INSTANCE);
            assertNull(none.cache(), "NoCache runs the uncached mesh loop");
        }
    }

    /** --cache-on-host on the mesh: each rank keeps its residual rows in host memory; the same latent bit for bit. */
    @Test void residualsOnHostOnTheMeshGiveTheSameLatent() throws Exception {
        ParallelConfig c = ParallelConfig.parse("ring=2");
        Supplier<StepCache> mag = () -> WanPipelineCacheTest.mag(MAG_MESH_THRESHOLD);
        WanPipeline.Result device;
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
            device = par.generate(cacheRequest(), FluxProgress.NONE, mag);
        }
        try (WanPipeline hostPipe = new WanPipeline(ops, WanModelResolver.fromDiffusersFolder(dir),
                WanPipeline.Settings.defaults(ops).withCacheOnHost(true));
             ParallelWanPipeline par = ParallelWanPipeline.local(hostPipe, c)) {
            WanPipeline.Result host = par.generate(cacheRequest(), FluxProgress.NONE, mag);
            assertTrue(host.cache().summary().skipped(Branch.COND) > 0, host.cache().summary().toString());
            assertEquals(device.cache().summary().pattern(Branch.COND), host.cache().summary().pattern(Branch.COND));
            assertArrayEquals(device.latents(), host.latents(), 0f, "residuals in host memory: the same latent bit for bit");
        }
    }

    @Test void aStepCacheOnACfgOrDataParallelMeshIsRefused() {
        for (String spec : new String[] {"cfg=2", "dp=2", "cfg=2,ulysses=2"}) {
            ParallelConfig c = ParallelConfig.parse(spec);
            try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, c)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> par.generate(request(c), FluxProgress.NONE, () -> FirstBlockCache.of(0.5)));
                assertTrue(e.getMessage().contains("--cfg-parallel 1 --dp 1") && e.getMessage().contains(spec.contains("dp") ? "dp2" : "cfg2"),
                        e.getMessage());
                IllegalArgumentException t = assertThrows(IllegalArgumentException.class,
                        () -> par.generate(request(c), FluxProgress.NONE, WanPipelineCacheTest.tea(0.1)));
                assertTrue(t.getMessage().contains("--cfg-parallel 1 --dp 1"), t.getMessage());
            }
        }
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, ParallelConfig.parse("ulysses=2"))) {
            IllegalArgumentException flux = assertThrows(IllegalArgumentException.class,
                    () -> par.generate(request(ParallelConfig.single()), FluxProgress.NONE,
                            () -> new TeaCache(TeaCache.Config.reference(TeaCache.FLUX))));
            assertTrue(flux.getMessage().contains("use a Wan2.1 preset"), flux.getMessage());
        }
    }

    @Test void requestsThatDoNotSplitFailWithTheOptionToChange() {
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, ParallelConfig.parse("cfg=2"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> par.check(request(ParallelConfig.single()).withGuidance(1f)));
            assertTrue(e.getMessage().contains("--guidance > 1") && e.getMessage().contains("--cfg-parallel 1"), e.getMessage());
        }
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, ParallelConfig.parse("dp=2"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> par.check(request(ParallelConfig.single())));
            assertTrue(e.getMessage().contains("--batch 2"), e.getMessage());
        }
        try (ParallelWanPipeline par = ParallelWanPipeline.local(pipe, ParallelConfig.parse("ring=4"))) {
            // 48×64, 9 frames → 3 × 4 × 2 = 24 tokens: splits in 4; 48×48 → 3 × 3 × 3 = 27 tokens does not
            par.check(request(ParallelConfig.single()).withSize(48, 64));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> par.check(request(ParallelConfig.single()).withSize(48, 48)));
            assertTrue(e.getMessage().contains("27 tokens") && e.getMessage().contains("--frames, --width or --height"), e.getMessage());
        }
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> ParallelWanPipeline.local(pipe, ParallelConfig.ulysses(8)));
        assertTrue(heads.getMessage().contains("4 attention heads") && heads.getMessage().contains("ring=2,ulysses=4"), heads.getMessage());
    }
}
