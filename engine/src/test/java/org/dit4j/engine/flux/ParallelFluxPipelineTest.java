package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.function.Supplier;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.StepCache;
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
 * The tiny random Flux dev pipeline (2 heads, 96×64 → 24 image tokens, T5 length 32) generated on an in-process mesh
 * of CpuBackends ({@link ParallelFluxPipeline#local}) equals the one-device {@link FluxPipeline#generate}: final latent
 * rel-L2 ≤ 1e-5 in f32 for Ulysses 2, Ring 2, USP 2×2, CFG parallel 2 (true CFG), data parallel 2 (batch 2) and
 * cfg 2 × ulysses 2.
 */
class ParallelFluxPipelineTest {
    @TempDir static Path tmp;
    static Ops ops;
    static FluxPipeline pipe;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        Path dev = TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11);
        pipe = new FluxPipeline(ops, FluxModelResolver.fromDiffusersFolder(dev), FluxPipeline.Settings.defaults(ops));
    }

    @AfterAll static void tearDown() {
        pipe.close();
        ops.close();
    }

    static FluxRequest request(ParallelConfig c) {
        FluxRequest r = FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(3).withT5Length(32);
        if (c.cfg() == 2) r = r.withNegative("a dog", 3f);
        if (c.dp() > 1) r = r.withBatch(c.dp());
        return r;
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "cfg=2", "dp=2", "ring=2,ulysses=2", "cfg=2,ulysses=2"})
    void meshGenerateEqualsOneDevice(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        FluxRequest r = request(c);
        float[] want = pipe.generate(r, FluxProgress.NONE).latents();
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, c)) {
            FluxPipeline.Result got = par.generate(r, FluxProgress.NONE);
            assertEquals(want.length, got.latents().length);
            assertEquals(r.batch(), got.images().size());
            double e = ParallelVerification.compare(spec, want, got.latents()).relL2();
            assertTrue(e <= 1e-5, spec + ": latent rel-L2 " + e + " vs one device > 1e-5");
        }
    }

    /** Data parallelism over a batch of prompts: each group draws its own prompts' images; equal to one device. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"dp=2", "dp=2,ulysses=2"})
    void aBatchOfPromptsSpreadsOverTheDataParallelGroups(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        FluxRequest r = FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(3).withT5Length(32)
                .withPrompts(java.util.List.of("a photo of a cat", "a lighthouse at dawn", "a red fox", "a bowl of fruit"));
        float[] want = pipe.generate(r, FluxProgress.NONE).latents();
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, c)) {
            FluxPipeline.Result got = par.generate(r, FluxProgress.NONE);
            assertEquals(4, got.images().size());
            double e = ParallelVerification.compare(spec, want, got.latents()).relL2();
            assertTrue(e <= 1e-5, spec + ": latent rel-L2 " + e + " vs one device > 1e-5");
        }
    }

    /** TACO's ParallelTeaCache: every rank decides from the whole sequence's sums, so the mesh skips as one device does. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "ring=2,ulysses=2"})
    void stepCachesOnASequenceMeshDecideAndComputeAsOneDevice(String spec) {
        ParallelConfig c = ParallelConfig.parse(spec);
        FluxRequest r = FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(8).withT5Length(32).withNegative("blurry", 4f);
        List<Supplier<StepCache>> policies = List.of(
                () -> new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.5)),
                () -> FirstBlockCache.of(0.5),
                () -> new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0.1)));
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, c)) {
            for (Supplier<StepCache> p : policies) {
                FluxPipeline.Result one = pipe.generate(r, FluxProgress.NONE, p.get());
                FluxPipeline.Result mesh = par.generate(r, FluxProgress.NONE, p);
                String what = spec + " " + p.get().describe();
                assertNotNull(mesh.cache(), what + ": the mesh result must carry the cache report");
                for (Branch b : one.cache().summary().branches()) {
                    assertEquals(one.cache().summary().pattern(b), mesh.cache().summary().pattern(b), what + " " + b.label());
                    assertTrue(mesh.cache().summary().skipped(b) > 0, what + ": the residual path must be exercised: " + mesh.cache().summary());
                }
                double e = ParallelVerification.compare(what, one.latents(), mesh.latents()).relL2();
                assertTrue(e <= 1e-5, what + ": latent rel-L2 " + e + " vs one device > 1e-5");
            }
        }
    }

    @Test void aStepCacheOnACfgOrDataParallelMeshIsRefused() {
        for (String spec : new String[] {"cfg=2", "dp=2"}) {
            ParallelConfig c = ParallelConfig.parse(spec);
            try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, c)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> par.generate(request(c), FluxProgress.NONE, () -> FirstBlockCache.of(0.5)));
                assertTrue(e.getMessage().contains("--cfg-parallel 1 --dp 1"), e.getMessage());
            }
        }
    }

    @Test void verifyReportsEveryRankWithinTheF32Tolerance() {
        ParallelConfig c = ParallelConfig.parse("ring=2,ulysses=2");
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, c)) {
            assertEquals(1e-5, par.tolerance());
            ParallelVerification.Verification v = par.verify(request(c), FluxProgress.NONE);
            assertEquals(4, v.perRank().size());
            assertTrue(v.within(par.tolerance()), v.summary());
            assertTrue(v.summary().contains("verify-parallel flux dp1×cfg1×ring2×ulysses2: worst"), v.summary());
        }
    }

    @Test void requestsThatDoNotSplitFailWithTheOptionToChange() {
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, ParallelConfig.parse("cfg=2"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> par.check(request(ParallelConfig.single())));
            assertTrue(e.getMessage().contains("--negative-prompt"), e.getMessage());
        }
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, ParallelConfig.parse("dp=2"))) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> par.check(request(ParallelConfig.single())));
            assertTrue(e.getMessage().contains("--batch 2"), e.getMessage());
        }
        try (ParallelFluxPipeline par = ParallelFluxPipeline.local(pipe, ParallelConfig.parse("ring=4"))) {
            // 96×64 → 24 image tokens split in 4, but T5 length 30 does not
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> par.check(request(ParallelConfig.single()).withT5Length(30)));
            assertTrue(e.getMessage().contains("--t5-length 30"), e.getMessage());
        }
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> ParallelFluxPipeline.local(pipe, ParallelConfig.ulysses(4)));
        assertTrue(heads.getMessage().contains("2 attention heads"), heads.getMessage());
        assertEquals(new ParallelConfig(1, 1, 1, 2), ParallelFluxPipeline.forGpus(2, 2));
        assertEquals(new ParallelConfig(1, 1, 2, 2), ParallelFluxPipeline.forGpus(4, 2));
        assertEquals(new ParallelConfig(1, 1, 1, 8), ParallelFluxPipeline.forGpus(8, 24));
    }
}
