package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.FirstBlockCache;
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

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        Path dir = TinyWan.writeDiffusers(tmp.resolve("tiny-wan-4h"), 31, TinyWan.TRANSFORMER_4_HEADS);
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
            IllegalArgumentException cache = assertThrows(IllegalArgumentException.class,
                    () -> par.generate(request(ParallelConfig.single()), FluxProgress.NONE, FirstBlockCache.of(0.5)));
            assertTrue(cache.getMessage().contains("leave out --cache"), cache.getMessage());
        }
        IllegalArgumentException heads = assertThrows(IllegalArgumentException.class,
                () -> ParallelWanPipeline.local(pipe, ParallelConfig.ulysses(8)));
        assertTrue(heads.getMessage().contains("4 attention heads") && heads.getMessage().contains("ring=2,ulysses=4"), heads.getMessage());
    }
}
