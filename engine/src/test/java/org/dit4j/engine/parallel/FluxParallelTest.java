package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A tiny Flux (the real block structure, random weights) on every mesh of 2, 4 and 8 in-process ranks equals the
 * single-rank forward: true-CFG guided velocity of a batch of dp requests, f32, rel-L2 ≤ 1e-5 on every rank.
 * Each rank runs the unchanged FluxTransformer on its sequence shard through {@link SequenceParallelOps}, the CFG
 * branches through {@link CfgParallel}, the batch through {@link DataParallel}.
 */
class FluxParallelTest {
    /** 8 heads of dim 16 (so Ulysses 8 works), one double and one single block. */
    static final FluxConfig CFG = new FluxConfig(128, 8, 1, 1, 16, 16, 32, 16, 256, new int[] {4, 6, 6}, 10000, true);
    static final int LATENT = 16, TXT = 16;               // 64 image tokens, 16 text tokens: divisible by 8
    static final float CFG_SCALE = 4f, GUIDANCE = 3.5f;
    static final double TOLERANCE = 1e-5;

    static CpuBackend cpu;
    static FluxWeights weights;

    @BeforeAll static void load() {
        cpu = new CpuBackend(1);
        try (RandomWeightSource src = new RandomWeightSource(FluxWeights.expectedShapes(CFG), DType.F32, 11)) {
            weights = FluxWeights.load(cpu, src, CFG, DType.F32);
        }
    }

    @AfterAll static void close() {
        weights.close();
        cpu.close();
    }

    /** B requests: noise, the conditional and unconditional text/pooled inputs, a time per request. */
    record Inputs(Tensor img, Tensor txtCond, Tensor txtUncond, Tensor yCond, Tensor yUncond, float[] t, float[] g,
                  Tensor imgIds, Tensor txtIds) {
        static Inputs make(int b, long nTxt) {
            TorchGenerator gen = new TorchGenerator(5);
            long nImg = (LATENT / 2) * (LATENT / 2);
            float[] t = new float[b], g = new float[b];
            for (int i = 0; i < b; i++) { t[i] = 0.3f + 0.4f * i / Math.max(1, b - 1); g[i] = GUIDANCE; }
            return new Inputs(gen.randn(b, nImg, CFG.inChannels()), gen.randn(b, nTxt, CFG.contextDim()),
                    gen.randn(b, nTxt, CFG.contextDim()), gen.randn(b, CFG.vecDim()), gen.randn(b, CFG.vecDim()), t, g,
                    FluxPacking.imageIds(LATENT, LATENT), FluxPacking.textIds(nTxt));
        }
    }

    /** One rank, no parallelism: uncond + s·(cond − uncond). */
    static float[] reference(Inputs in) {
        try (Scope s = Scope.open()) {
            FluxTransformer m = new FluxTransformer(cpu, weights);
            Tensor c = m.forward(in.img, in.txtCond, in.yCond, Tensor.of(in.t, in.t.length), Tensor.of(in.g, in.g.length), in.imgIds, in.txtIds);
            Tensor u = m.forward(in.img, in.txtUncond, in.yUncond, Tensor.of(in.t, in.t.length), Tensor.of(in.g, in.g.length), in.imgIds, in.txtIds);
            return CfgParallel.combine(cpu, new CfgParallel.Pair(c, u), CFG_SCALE).toFloatArray();
        }
    }

    /** Every rank: its dp share of the batch, its CFG branch, its sequence shard; returns the full guided batch. */
    static List<float[]> parallel(ParallelConfig config, Inputs in) {
        return MeshRunner.local(config, comms -> {
            try (CpuBackend ops = new CpuBackend(1); Scope s = Scope.open()) {
                FluxTransformer model = FluxSequenceParallel.model(ops, comms, weights);
                FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
                DataParallel dp = DataParallel.of(comms);
                CfgParallel cfg = CfgParallel.of(comms);
                Tensor img = dp.shardBatch(ops, in.img);
                float[] t = dp.shardBatch(in.t), g = dp.shardBatch(in.g);
                Tensor guided = cfg.guided(ops, CFG_SCALE, branch -> {
                    boolean cond = branch == CfgParallel.Branch.COND;
                    Tensor txt = dp.shardBatch(ops, cond ? in.txtCond : in.txtUncond);
                    Tensor y = dp.shardBatch(ops, cond ? in.yCond : in.yUncond);
                    return sp.forward(ops, model, img, txt, y, t, g, in.imgIds, in.txtIds);
                });
                return dp.gatherBatch(guided).toFloatArray();
            }
        });
    }

    static void assertEquivalent(ParallelConfig config) {
        Inputs in = Inputs.make(config.dp(), TXT);
        float[] want = reference(in);
        List<float[]> got = parallel(config, in);
        assertEquals(config.worldSize(), got.size());
        for (int r = 0; r < got.size(); r++) {
            double e = relL2(got.get(r), want);
            System.out.printf("[dit4j-engine] tiny Flux %-28s rank %d: rel-L2 %.2e%n", config, r, e);
            assertTrue(e <= TOLERANCE, config + " rank " + r + ": rel-L2 " + e + " vs the single-rank forward > " + TOLERANCE);
        }
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ulysses=4", "ring=2", "ring=4", "ring=2,ulysses=2", "cfg=2,ulysses=2", "dp=2",
                            "cfg=2", "dp=2,ring=2", "dp=2,cfg=2"})
    void meshOfTwoAndFourRanksEqualsOneRank(String spec) { assertEquivalent(ParallelConfig.parse(spec)); }

    /** The 8-rank meshes of the 8-GPU plan, run in-process (issue 8's dry run). */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=8", "ring=8", "ring=2,ulysses=4", "cfg=2,ulysses=4"})
    void eightRankMeshesEqualOneRank(String spec) { assertEquivalent(ParallelConfig.parse(spec)); }

    @Test void singleRankMeshIsTheModelItself() { assertEquivalent(ParallelConfig.single()); }

    @Test void indivisibleSequencesAndHeadsFailWithTheFix() {
        Inputs odd = Inputs.make(1, 12);     // 12 text tokens over 8 shards
        var seq = assertThrows(IllegalArgumentException.class, () -> parallel(ParallelConfig.parse("ring=8"), odd));
        assertTrue(seq.getMessage().contains("text (T5) sequence has 12 tokens") && seq.getMessage().contains("multiple of 8"),
                seq.getMessage());
        var heads = assertThrows(IllegalArgumentException.class, () -> parallel(ParallelConfig.parse("ulysses=3"), Inputs.make(1, 12)));
        assertTrue(heads.getMessage().contains("8 attention heads") && heads.getMessage().contains("ring=3,ulysses=1"), heads.getMessage());
        var batch = assertThrows(IllegalArgumentException.class, () -> parallel(ParallelConfig.parse("dp=2"), Inputs.make(3, TXT)));
        assertTrue(batch.getMessage().contains("2 data-parallel groups"), batch.getMessage());
    }

    static double relL2(float[] a, float[] b) {
        if (a.length != b.length) throw new AssertionError(a.length + " values vs " + b.length + " expected");
        double n = 0, d = 0;
        for (int i = 0; i < a.length; i++) {
            n += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
            d += (double) b[i] * b[i];
        }
        return Math.sqrt(n / d);
    }

}
