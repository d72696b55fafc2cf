package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The patch-parallel VAE decode on 2, 3 and 4 in-process ranks equals the one-rank decode (f32, rel-L2 ≤ 1e-5 on every
 * rank), for heights divisible by the rank count and not, and uses about 1/N of the one-rank activation memory per rank.
 * VAEs with random weights: a tiny Flux-like decoder (levels [8, 16, 16], 16 latents, 4 groups, mid attention) and a
 * tiny SD-like one (post-quant 1×1 conv, no mid attention).
 */
class PatchParallelVaeDecoderTest {
    static final VaeConfig FLUX_TINY = new VaeConfig(3, 3, new int[] {8, 16, 16}, 2, 16, 4, VaeConfig.FLUX_SCALING,
            VaeConfig.FLUX_SHIFT, false, false, true, false, true);
    static final VaeConfig SD_TINY = new VaeConfig(3, 3, new int[] {8, 16}, 1, 4, 4, VaeConfig.SD_SCALING, 0f, false, true,
            false, false, true);
    static final double TOLERANCE = 1e-5;

    static CpuBackend cpu;
    static AutoencoderKL flux, sd;

    @BeforeAll static void load() {
        cpu = new CpuBackend(1);
        flux = randomVae(FLUX_TINY, 21);
        sd = randomVae(SD_TINY, 22);
    }

    @AfterAll static void close() {
        flux.close();
        sd.close();
        cpu.close();
    }

    static AutoencoderKL randomVae(VaeConfig cfg, long seed) {
        try (RandomWeightSource src = new RandomWeightSource(VaeWeights.expectedShapes(cfg), DType.F32, seed)) {
            return AutoencoderKL.load(cpu, src, cfg, DType.F32);
        }
    }

    static Tensor latent(VaeConfig cfg, int n, int h, int w) {
        return new TorchGenerator(h * 100 + w).randn(n, cfg.latentChannels(), h, w);
    }

    /** Each rank's decoded image (whole, gathered) as floats. */
    static List<float[]> parallel(AutoencoderKL vae, Tensor z, int ranks, boolean raw) {
        return MeshRunner.local(ParallelConfig.ring(ranks), comms -> {
            try (CpuBackend ops = new CpuBackend(1); Scope s = Scope.open()) {
                PatchParallelVaeDecoder d = new PatchParallelVaeDecoder(ops, vae, comms.world());
                return (raw ? d.decodeRaw(z) : d.decode(z)).toFloatArray();
            }
        });
    }

    static float[] single(AutoencoderKL vae, Tensor z, boolean raw) {
        try (Scope s = Scope.open()) {
            return (raw ? vae.decodeRaw(z) : vae.decode(z)).toFloatArray();
        }
    }

    static void assertEquivalent(String what, AutoencoderKL vae, Tensor z, int ranks, boolean raw) {
        ParallelVerification.Verification v = ParallelVerification.verify(what, () -> single(vae, z, raw),
                () -> parallel(vae, z, ranks, raw));
        assertEquals(ranks, v.perRank().size());
        System.out.print(v.summary());
        v.check(TOLERANCE);
    }

    @ParameterizedTest(name = "flux-tiny {0} ranks, latent {1}×{2}×{3}")
    @CsvSource({"2, 1, 8, 6", "2, 1, 7, 5", "4, 1, 8, 6", "4, 2, 10, 4", "4, 1, 5, 6", "3, 1, 7, 3"})
    void fluxDecodeEqualsOneRank(int ranks, int n, int h, int w) {
        try (Scope s = Scope.open()) {
            assertEquivalent("flux-tiny decode " + ranks + " ranks " + n + "x" + h + "x" + w, flux, latent(FLUX_TINY, n, h, w), ranks,
                    false);
        }
    }

    @ParameterizedTest(name = "sd-tiny raw {0} ranks, latent {1}×{2}")
    @CsvSource({"2, 6, 5", "4, 9, 4"})
    void rawDecodeWithPostQuantConvEqualsOneRank(int ranks, int h, int w) {
        try (Scope s = Scope.open()) {
            assertEquivalent("sd-tiny decodeRaw " + ranks + " ranks " + h + "x" + w, sd, latent(SD_TINY, 1, h, w), ranks, true);
        }
    }

    /** Each rank's slab is its rows of the one-rank image: rows [start·4, end·4) of the 4× upsampled image. */
    @Test void shardsAreTheRanksRowsOfTheImage() {
        try (Scope s = Scope.open()) {
            Tensor z = latent(FLUX_TINY, 1, 10, 4);
            Tensor whole = flux.decode(z);
            RowSplit split = RowSplit.even(10, 4);
            List<float[]> slabs = MeshRunner.local(ParallelConfig.ring(4), comms -> {
                try (CpuBackend ops = new CpuBackend(1); Scope rs = Scope.open()) {
                    Tensor slab = new PatchParallelVaeDecoder(ops, flux, comms.world()).decodeShard(z);
                    assertEquals(split.rows(comms.rank()) * 4, slab.dim(2), "slab rows of rank " + comms.rank());
                    return slab.toFloatArray();
                }
            });
            for (int r = 0; r < 4; r++) {
                float[] want = cpu.slice(whole, 2, split.start(r) * 4, split.end(r) * 4).toFloatArray();
                var rep = ParallelVerification.compare("rank " + r + " slab", want, slabs.get(r));
                assertTrue(rep.within(TOLERANCE), rep.summary());
            }
        }
    }

    /**
     * Per-rank peak of live activation memory (every buffer the rank's ops and communicator return, sampled after each
     * call) against the one-rank decode: about 1/N, plus halo copies and the gathered mid-block K/V.
     */
    @ParameterizedTest(name = "{0} ranks")
    @CsvSource({"2, 0.65", "4, 0.40"})
    void perRankPeakMemoryIsAboutOneNth(int ranks, double bound) {
        try (Scope s = Scope.open()) {
            Tensor z = latent(FLUX_TINY, 1, 16, 12);
            MemoryTracker one = new MemoryTracker();
            // A view of the same weights on the tracked backend; never closed (it would release the shared weights).
            AutoencoderKL tracked = new AutoencoderKL(one.wrap(cpu), flux.weights());
            try (Scope d = Scope.open()) { tracked.decode(z); }
            long single = one.peakBytes();
            List<Long> peaks = MeshRunner.local(ParallelConfig.ring(ranks), comms -> {
                MemoryTracker t = new MemoryTracker();
                try (CpuBackend ops = new CpuBackend(1); Scope rs = Scope.open()) {
                    Ops local = t.wrap(ops);
                    Communicator group = t.wrap(comms.world());
                    new PatchParallelVaeDecoder(local, flux, group).decodeShard(z);
                }
                return t.peakBytes();
            });
            for (int r = 0; r < ranks; r++) {
                double ratio = (double) peaks.get(r) / single;
                System.out.printf("[dit4j-engine] patch-parallel VAE %d ranks: rank %d peak %d B = %.3f of one rank (%d B)%n", ranks, r,
                        peaks.get(r), ratio, single);
                assertTrue(ratio <= bound, "rank " + r + " of " + ranks + ": peak " + peaks.get(r) + " B is " + ratio
                        + " of the one-rank peak " + single + " B, more than " + bound);
            }
        }
    }

    /** A dp=2 × ring=2 mesh: each request's two ranks decode their own latent together over the request group. */
    @Test void requestGroupsOfAMeshDecodeTheirOwnLatents() {
        try (Scope s = Scope.open()) {
            Tensor[] z = {latent(FLUX_TINY, 1, 6, 4), latent(FLUX_TINY, 1, 5, 4)};
            float[][] want = {single(flux, z[0], false), single(flux, z[1], false)};
            List<float[]> got = MeshRunner.local(ParallelConfig.parse("dp=2,ring=2"), comms -> {
                try (CpuBackend ops = new CpuBackend(1); Scope rs = Scope.open();
                     Communicator group = PatchParallelVaeDecoder.requestGroup(comms)) {
                    assertEquals(2, group.size());
                    return new PatchParallelVaeDecoder(ops, flux, group).decode(z[comms.coord().dp()]).toFloatArray();
                }
            });
            for (int r = 0; r < 4; r++) {
                int dp = new Mesh(ParallelConfig.parse("dp=2,ring=2")).coord(r).dp();
                var rep = ParallelVerification.compare("rank " + r + " (dp " + dp + ")", want[dp], got.get(r));
                assertTrue(rep.within(TOLERANCE), rep.summary());
            }
        }
    }

    @Test void rowSplitGivesTheFirstRanksTheExtraRows() {
        RowSplit s = RowSplit.even(10, 4);
        assertArrayEquals(new long[] {3, 3, 2, 2}, s.rows());
        assertEquals(0, s.start(0));
        assertEquals(6, s.start(2));
        assertEquals(10, s.end(3));
        assertEquals(10, s.total());
        assertEquals(8, s.scale(1, 24, "test"));
        assertEquals(12, s.scale(2, 24, "test"));
        assertThrows(IllegalArgumentException.class, () -> s.scale(1, 10, "test"));
        var e = assertThrows(IllegalArgumentException.class, () -> RowSplit.even(3, 4));
        assertTrue(e.getMessage().contains("cannot split 3 rows over 4 ranks"), e.getMessage());
    }

    @Test void tooFewLatentRowsAndUnsplittableConvolutionsFailWithTheFix() {
        try (Scope s = Scope.open()) {
            Tensor z = latent(FLUX_TINY, 1, 3, 4);
            var e = assertThrows(IllegalArgumentException.class, () -> parallel(flux, z, 4, false));
            assertTrue(e.getMessage().contains("cannot split 3 rows over 4 ranks"), e.getMessage());
            var conv = assertThrows(IllegalStateException.class, () -> MeshRunner.local(ParallelConfig.ring(2), comms -> {
                try (CpuBackend ops = new CpuBackend(1); Scope rs = Scope.open()) {
                    SpatialParallelOps sp = new SpatialParallelOps(ops, comms.world(), RowSplit.even(4, 2));
                    Tensor x = ops.zeros(DType.F32, org.dit4j.core.tensor.Shape.of(1, 2, 2, 4));
                    Tensor w = ops.zeros(DType.F32, org.dit4j.core.tensor.Shape.of(2, 2, 3, 3));
                    return sp.conv2d(x, w, null, new int[] {2, 2}, new int[] {0, 0}, 1);
                }
            }));
            assertTrue(conv.getCause() instanceof UnsupportedOperationException
                    && conv.getCause().getMessage().contains("stride-1 convolutions"), conv.getMessage());
        }
    }
}
