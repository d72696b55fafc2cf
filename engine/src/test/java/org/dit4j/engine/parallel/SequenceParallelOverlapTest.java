package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;

import static org.dit4j.engine.parallel.FluxParallelTest.relL2;
import static org.dit4j.engine.parallel.SequenceParallelAttentionTest.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The overlapped forms of sequence-parallel attention (ring K/V prefetch, Ulysses in head chunks) against the serial
 * form ({@link SequenceParallelOps.Overlap#NONE}): bit for bit on the in-process communicator, through attention(...)
 * and attentionInto(...), and against single-rank attention (f32 rel-L2 ≤ 1e-5).
 */
class SequenceParallelOverlapTest {
    static final int B = 2, L = 24, D = 8;

    record Result(float[] attention, float[] into) {}

    /** Every rank's attention(...) and attentionInto(...) output, gathered over the sequence, under {@code overlap}. */
    static List<Result> run(ParallelConfig cfg, SequenceParallelOps.Overlap overlap, DType dtype, int heads, int dv) {
        int s = cfg.sequenceDegree();
        return MeshRunner.local(cfg, comms -> {
            try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
                SequenceParallelOps ops = new SequenceParallelOps(cpu, comms.ulysses(), comms.ring(), overlap);
                int idx = comms.sequence().rank();
                Tensor q = cpu.slice(randn(1, dtype, B, L, heads, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor k = cpu.slice(randn(2, dtype, B, L, heads, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor v = cpu.slice(randn(3, dtype, B, L, heads, dv), 1, idx * L / s, (idx + 1) * L / s);
                Tensor o = ops.attention(q, k, v, null, 0.35f);
                assertEquals(dtype, o.dtype());
                // attentionInto: columns [5, 5 + H·dv) of a wider tensor whose other columns must stay untouched
                long w = 5 + (long) heads * dv + 3;
                Tensor into = cpu.add(Tensor.zeros(dtype, B, L / s, w), randn(4, dtype, B, L / s, w));
                float[] before = into.toFloatArray();
                ops.attentionInto(into, 5, q, k, v, null, 0.35f);
                float[] after = into.toFloatArray();
                for (int i = 0; i < after.length; i++) {
                    long c = i % w;
                    if ((c < 5 || c >= 5 + (long) heads * dv) && Float.floatToIntBits(after[i]) != Float.floatToIntBits(before[i]))
                        throw new AssertionError("attentionInto wrote column " + c + " outside [5, " + (5 + heads * dv) + ")");
                }
                Tensor cols = cpu.slice(into, 2, 5, 5 + (long) heads * dv);
                return new Result(comms.sequence().allGather(o, 1).toFloatArray(), comms.sequence().allGather(cols, 1).toFloatArray());
            }
        });
    }

    @ParameterizedTest(name = "ring {0} × ulysses {1}, {2} chunks, {3} heads, dv {4}, {5}")
    @CsvSource({
            "2,1,1,8,8,F32", "4,1,1,8,8,F32", "3,1,1,8,8,F32", "2,1,1,8,8,BF16",
            "1,2,1,8,8,F32", "1,2,2,8,8,F32", "1,2,4,8,8,F32", "1,2,3,12,8,F32", "1,2,2,8,4,F32",
            "1,4,1,8,8,F32", "1,4,2,8,8,F32", "1,4,3,12,8,F32", "1,4,2,8,8,BF16", "1,2,4,8,8,BF16",
            "2,2,1,8,8,F32", "2,2,2,8,8,F32", "2,2,4,16,8,F32", "2,2,2,8,8,BF16"})
    void overlappedEqualsSerialBitForBit(int ring, int ulysses, int chunks, int heads, int dv, DType dtype) {
        ParallelConfig cfg = new ParallelConfig(1, 1, ring, ulysses);
        List<Result> serial = run(cfg, SequenceParallelOps.Overlap.NONE, dtype, heads, dv);
        List<Result> overlapped = run(cfg, new SequenceParallelOps.Overlap(true, chunks), dtype, heads, dv);
        float[] want;
        try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
            Tensor q = cpu.cast(randn(1, dtype, B, L, heads, D), DType.F32), k = cpu.cast(randn(2, dtype, B, L, heads, D), DType.F32);
            Tensor v = cpu.cast(randn(3, dtype, B, L, heads, dv), DType.F32);
            want = cpu.attention(q, k, v, null, 0.35f).toFloatArray();
        }
        double tol = dtype == DType.F32 ? 1e-5 : 1e-2;
        for (int r = 0; r < serial.size(); r++) {
            String at = cfg + " chunks " + chunks + " " + dtype + " rank " + r;
            assertArrayEquals(serial.get(r).attention(), overlapped.get(r).attention(), at + ": attention(...) overlapped ≠ serial");
            assertArrayEquals(serial.get(r).into(), overlapped.get(r).into(), at + ": attentionInto(...) overlapped ≠ serial");
            assertArrayEquals(serial.get(r).attention(), serial.get(r).into(), at + ": attentionInto(...) ≠ attention(...)");
            double e = relL2(overlapped.get(r).attention(), want);
            assertTrue(e <= tol, at + ": rel-L2 vs one rank " + e + " > " + tol);
        }
    }

    /**
     * prefetchAttention (what a Flux single block announces before its MLP): the next attention/attentionInto on the same
     * q, k, v uses the started exchange and equals the serial path bit for bit; work queued in between (here an
     * unrelated matrix product) does not change it; a prefetch followed by attention on other tensors is dropped.
     */
    @ParameterizedTest(name = "ring {0} × ulysses {1}, {2}")
    @CsvSource({"1,2,F32", "1,4,F32", "2,2,F32", "1,2,BF16", "2,1,F32"})
    void prefetchedAttentionEqualsSerialBitForBit(int ring, int ulysses, DType dtype) {
        ParallelConfig cfg = new ParallelConfig(1, 1, ring, ulysses);
        int heads = 8, s = cfg.sequenceDegree();
        List<Result> serial = run(cfg, SequenceParallelOps.Overlap.NONE, dtype, heads, D);
        List<Result> pre = MeshRunner.local(cfg, comms -> {
            try (CpuBackend cpu = new CpuBackend(1); Scope sc = Scope.open()) {
                SequenceParallelOps ops = new SequenceParallelOps(cpu, comms.ulysses(), comms.ring(), new SequenceParallelOps.Overlap(true, 2));
                assertTrue(ops.overlap().ulyssesPrefetch(), "chunks > 1 turn the prefetch on");
                int idx = comms.sequence().rank();
                Tensor q = cpu.slice(randn(1, dtype, B, L, heads, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor k = cpu.slice(randn(2, dtype, B, L, heads, D), 1, idx * L / s, (idx + 1) * L / s);
                Tensor v = cpu.slice(randn(3, dtype, B, L, heads, D), 1, idx * L / s, (idx + 1) * L / s);
                // a stale prefetch of other tensors is awaited and dropped by the next prefetch
                ops.prefetchAttention(cpu.copy(q), cpu.copy(k), cpu.copy(v));
                ops.prefetchAttention(q, k, v);
                Tensor busy = cpu.matmul(randn(5, DType.F32, 16, 16), randn(6, DType.F32, 16, 16));   // independent work
                Tensor o = ops.attention(q, k, v, null, 0.35f);
                long w = 5 + (long) heads * D + 3;
                Tensor into = cpu.add(Tensor.zeros(dtype, B, L / s, w), randn(4, dtype, B, L / s, w));
                ops.prefetchAttention(q, k, v);
                ops.attentionInto(into, 5, q, k, v, null, 0.35f);
                // a prefetch not followed by attention on the same tensors: attention on others still right
                ops.prefetchAttention(q, k, v);
                Tensor o2 = ops.attention(cpu.copy(q), cpu.copy(k), cpu.copy(v), null, 0.35f);
                assertArrayEquals(o.toFloatArray(), o2.toFloatArray(), "attention after a dropped prefetch");
                busy.close();
                Tensor cols = cpu.slice(into, 2, 5, 5 + (long) heads * D);
                return new Result(comms.sequence().allGather(o, 1).toFloatArray(), comms.sequence().allGather(cols, 1).toFloatArray());
            }
        });
        for (int r = 0; r < serial.size(); r++) {
            String at = cfg + " " + dtype + " rank " + r;
            assertArrayEquals(serial.get(r).attention(), pre.get(r).attention(), at + ": prefetched attention(...) ≠ serial");
            assertArrayEquals(serial.get(r).into(), pre.get(r).into(), at + ": prefetched attentionInto(...) ≠ serial");
        }
    }

    @Test void chunksAreLoweredToADivisorOfTheHeadsPerRank() {
        List<int[]> got = MeshRunner.local(ParallelConfig.ulysses(2), comms -> {
            try (CpuBackend cpu = new CpuBackend(1)) {
                SequenceParallelOps three = new SequenceParallelOps(cpu, comms.ulysses(), comms.ring(), new SequenceParallelOps.Overlap(true, 3));
                SequenceParallelOps many = new SequenceParallelOps(cpu, comms.ulysses(), comms.ring(), new SequenceParallelOps.Overlap(true, 64));
                return new int[] {three.chunksFor(8), three.chunksFor(12), three.chunksFor(2), many.chunksFor(24)};
            }
        });
        // 8 heads / 2 ranks = 4 per rank: 3 → 2; 12 → 6 per rank: 3; 2 → 1 per rank: 1; 24 → 12 per rank, 64 → 12
        for (int[] g : got) assertArrayEquals(new int[] {2, 3, 1, 12}, g);
    }

    @Test void overlapSettingsFromSystemProperties() {
        String c = System.getProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY), r = System.getProperty(SequenceParallelOps.Overlap.RING_PROPERTY);
        try {
            System.clearProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY);
            System.clearProperty(SequenceParallelOps.Overlap.RING_PROPERTY);
            assertEquals(new SequenceParallelOps.Overlap(true, 2), SequenceParallelOps.Overlap.fromSystemProperties());
            System.setProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY, "4");
            System.setProperty(SequenceParallelOps.Overlap.RING_PROPERTY, "false");
            assertEquals(new SequenceParallelOps.Overlap(false, 4), SequenceParallelOps.Overlap.fromSystemProperties());
            System.setProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY, "0");
            var e = assertThrows(IllegalArgumentException.class, SequenceParallelOps.Overlap::fromSystemProperties);
            assertTrue(e.getMessage().contains(">= 1"), e.getMessage());
            System.setProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY, "two");
            e = assertThrows(IllegalArgumentException.class, SequenceParallelOps.Overlap::fromSystemProperties);
            assertTrue(e.getMessage().contains(SequenceParallelOps.Overlap.CHUNKS_PROPERTY) && e.getMessage().contains("'two'"), e.getMessage());
        } finally {
            if (c == null) System.clearProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY); else System.setProperty(SequenceParallelOps.Overlap.CHUNKS_PROPERTY, c);
            if (r == null) System.clearProperty(SequenceParallelOps.Overlap.RING_PROPERTY); else System.setProperty(SequenceParallelOps.Overlap.RING_PROPERTY, r);
        }
    }
}
