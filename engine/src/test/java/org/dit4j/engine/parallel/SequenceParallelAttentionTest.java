package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;
import java.util.Random;

import static org.dit4j.engine.parallel.FluxParallelTest.relL2;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Sequence-parallel attention on shards equals attention over the whole sequence on one rank. */
class SequenceParallelAttentionTest {
    static final int B = 2, L = 24, H = 8, D = 8;

    static Tensor randn(long seed, DType t, long... dims) {
        Random rnd = new Random(seed);
        Tensor x = Tensor.zeros(t, dims);
        float[] v = new float[(int) x.numel()];
        for (int i = 0; i < v.length; i++) v[i] = (float) rnd.nextGaussian();
        x.setFloats(v);
        return x;
    }

    @ParameterizedTest(name = "ring {0} × ulysses {1}, {2}")
    @CsvSource({"1,2,F32", "1,4,F32", "2,1,F32", "4,1,F32", "3,1,F32", "2,2,F32", "1,8,F32", "8,1,F32", "2,4,F32", "3,2,F32",
                "2,2,BF16", "4,1,BF16"})
    void equalsSingleRankAttention(int ring, int ulysses, DType dtype) {
        ParallelConfig cfg = new ParallelConfig(1, 1, ring, ulysses);
        int s = cfg.sequenceDegree();
        float[] want;
        try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
            // f32 reference on the values the ranks get (rounded to dtype)
            Tensor q = cpu.cast(randn(1, dtype, B, L, H, D), DType.F32), k = cpu.cast(randn(2, dtype, B, L, H, D), DType.F32);
            Tensor v = cpu.cast(randn(3, dtype, B, L, H, D), DType.F32);
            want = cpu.attention(q, k, v, null, 0.35f).toFloatArray();
        }
        List<float[]> got = MeshRunner.local(cfg, comms -> {
            try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
                Ops ops = SequenceParallelOps.of(cpu, comms);
                int idx = comms.sequence().rank();
                Tensor q = cpu.slice(randn(1, dtype, B, L, H, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor k = cpu.slice(randn(2, dtype, B, L, H, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor v = cpu.slice(randn(3, dtype, B, L, H, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor o = ops.attention(q, k, v, null, 0.35f);
                if (o.dtype() != dtype) throw new AssertionError("output dtype " + o.dtype() + ", expected " + dtype);
                return comms.sequence().allGather(o, 1).toFloatArray();
            }
        });
        double tol = dtype == DType.F32 ? 1e-5 : 1e-2;
        for (int r = 0; r < got.size(); r++) {
            double e = relL2(got.get(r), want);
            assertTrue(e <= tol, cfg + " " + dtype + " rank " + r + ": rel-L2 " + e + " > " + tol);
        }
    }

    @Test void biasAndIndivisibleHeadsAreRejected() {
        var bias = assertThrows(IllegalStateException.class, () -> MeshRunner.local(ParallelConfig.ring(2), comms -> {
            try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
                Tensor q = randn(1, DType.F32, 1, 4, 2, 4);
                return SequenceParallelOps.of(cpu, comms).attention(q, q, q, Tensor.zeros(DType.F32, 4, 4), 1f);
            }
        }));
        assertTrue(bias.getMessage().contains("no bias"), bias.getMessage());
        var heads = assertThrows(IllegalArgumentException.class, () -> MeshRunner.local(ParallelConfig.ulysses(4), comms -> {
            try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
                Tensor q = randn(1, DType.F32, 1, 4, 6, 4);
                return SequenceParallelOps.of(cpu, comms).attention(q, q, q, null, 1f);
            }
        }));
        assertTrue(heads.getMessage().contains("6 heads do not split over Ulysses degree 4"), heads.getMessage());
    }
}
