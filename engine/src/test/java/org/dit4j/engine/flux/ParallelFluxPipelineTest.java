package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
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
