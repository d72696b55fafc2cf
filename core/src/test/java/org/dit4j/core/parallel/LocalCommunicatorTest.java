package org.dit4j.core.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.time.Duration;
import java.util.List;
import java.util.Random;

import static org.dit4j.core.testing.TestTensors.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The in-process communicator: every collective bit-exact against slicing/concatenating the ranks' inputs directly. */
class LocalCommunicatorTest {
    static CpuBackend cpu;

    @BeforeAll static void start() { cpu = new CpuBackend(1); }

    @AfterAll static void stop() { cpu.close(); }

    /** Rank r's input: seeded by r, so every thread can rebuild every rank's input. */
    static Tensor input(int r, DType t, long... dims) { return randn(new Random(100 + r), t, dims); }

    @ParameterizedTest @ValueSource(ints = {1, 2, 3, 4})
    void allReduceSumsInRankOrder(int n) {
        List<float[]> got = Ranks.run(LocalCommunicator.group(n), c -> c.allReduce(input(c.rank(), DType.F32, 3, 5)).toFloatArray());
        float[] want = new float[15];
        for (int r = 0; r < n; r++) {
            float[] x = input(r, DType.F32, 3, 5).toFloatArray();
            for (int i = 0; i < 15; i++) want[i] += x[i];
        }
        for (float[] g : got) assertArrayEquals(want, g, "allReduce must equal the rank-order f32 sum bit for bit");
    }

    @ParameterizedTest @ValueSource(ints = {1, 2, 4})
    void allGatherConcatenatesAlongAnyDim(int n) {
        for (int dim = 0; dim < 3; dim++) {
            int d = dim;
            List<float[]> got = Ranks.run(LocalCommunicator.group(n), c -> c.allGather(input(c.rank(), DType.BF16, 2, 3, 4), d).toFloatArray());
            try (Scope s = Scope.open()) {
                Tensor[] parts = new Tensor[n];
                for (int r = 0; r < n; r++) parts[r] = input(r, DType.BF16, 2, 3, 4);
                float[] want = cpu.concat(d, parts).toFloatArray();
                for (float[] g : got) assertArrayEquals(want, g, "allGather dim " + d);
            }
        }
    }

    @ParameterizedTest @ValueSource(ints = {1, 2, 4})
    void allToAllSplitsOneDimAndConcatenatesAnother(int n) {
        // Ulysses shapes: [B, Ls, H, d], split heads (2), concat sequence (1), and back
        long b = 2, ls = 3, h = 4, d = 2;
        List<float[][]> got = Ranks.run(LocalCommunicator.group(n), c -> {
            Tensor x = input(c.rank(), DType.F32, b, ls, h, d);
            Tensor y = c.allToAll(x, 2, 1);
            Tensor back = c.allToAll(y, 1, 2);
            return new float[][] {y.toFloatArray(), back.toFloatArray(), x.toFloatArray(), {y.dim(1), y.dim(2)}};
        });
        for (int r = 0; r < n; r++) {
            try (Scope s = Scope.open()) {
                Tensor[] chunks = new Tensor[n];
                for (int src = 0; src < n; src++)
                    chunks[src] = cpu.slice(input(src, DType.F32, b, ls, h, d), 2, r * h / n, (r + 1) * h / n);
                assertArrayEquals(cpu.concat(1, chunks).toFloatArray(), got.get(r)[0], "allToAll on rank " + r);
                assertArrayEquals(new float[] {ls * n, (float) h / n}, got.get(r)[3], "allToAll output shape");
                assertArrayEquals(got.get(r)[2], got.get(r)[1], "allToAll back must restore the input on rank " + r);
            }
        }
    }

    @Test void sendRecvPassesAroundTheRingAndBroadcastCopiesTheRoot() {
        int n = 4;
        List<float[][]> got = Ranks.run(LocalCommunicator.group(n), c -> new float[][] {
                c.ringPass(input(c.rank(), DType.F16, 5)).toFloatArray(),
                c.sendRecv(input(c.rank(), DType.F16, 5), (c.rank() + 2) % n, (c.rank() + 2) % n).toFloatArray(),
                c.broadcast(input(c.rank(), DType.F16, 5), 2).toFloatArray()});
        for (int r = 0; r < n; r++) {
            assertArrayEquals(input((r + n - 1) % n, DType.F16, 5).toFloatArray(), got.get(r)[0], "ring pass to rank " + r);
            assertArrayEquals(input((r + 2) % n, DType.F16, 5).toFloatArray(), got.get(r)[1], "pairwise exchange on rank " + r);
            assertArrayEquals(input(2, DType.F16, 5).toFloatArray(), got.get(r)[2], "broadcast on rank " + r);
        }
    }

    @Test void splitMakesSubGroupsOrderedByKey() {
        // 6 ranks: color = rank % 2, key = −rank (reverse order inside each group)
        List<int[]> got = Ranks.run(LocalCommunicator.group(6), c -> {
            Communicator sub = c.split(c.rank() % 2, -c.rank());
            float[] g = sub.allGather(Tensor.of(new float[] {c.rank()}, 1), 0).toFloatArray();
            int[] out = new int[2 + g.length];
            out[0] = sub.rank();
            out[1] = sub.size();
            for (int i = 0; i < g.length; i++) out[2 + i] = (int) g[i];
            return out;
        });
        assertArrayEquals(new int[] {2, 3, 4, 2, 0}, got.get(0));
        assertArrayEquals(new int[] {2, 3, 5, 3, 1}, got.get(1));
        assertArrayEquals(new int[] {0, 3, 4, 2, 0}, got.get(4));
        assertArrayEquals(new int[] {1, 3, 5, 3, 1}, got.get(3));
    }

    @Test void mismatchedShapesFailOnEveryRankNamingBoth() {
        var e = assertThrows(IllegalStateException.class, () -> Ranks.run(LocalCommunicator.group(2),
                c -> c.allReduce(Tensor.zeros(DType.F32, c.rank() == 0 ? 4 : 5))));
        assertTrue(e.getMessage().contains("[4]") && e.getMessage().contains("[5]"), e.getMessage());
        var e2 = assertThrows(IllegalStateException.class, () -> Ranks.run(LocalCommunicator.group(2),
                c -> c.rank() == 0 ? c.allReduce(Tensor.zeros(DType.F32, 4)) : c.allGather(Tensor.zeros(DType.F32, 4), 0)));
        assertTrue(e2.getMessage().contains("different collectives"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class, () -> Ranks.run(LocalCommunicator.group(4),
                c -> c.allToAll(Tensor.zeros(DType.F32, 2, 6), 0, 1)));
        assertTrue(e3.getMessage().contains("divisible by the group size 4"), e3.getMessage());
    }

    @Test void aSkippedCollectiveTimesOutAndAFailedRankAbortsTheOthersIncludingSubGroups() {
        var timeout = assertThrows(CommunicatorAbortedException.class, () -> Ranks.run(LocalCommunicator.group(2, Duration.ofMillis(300)),
                c -> c.rank() == 0 ? c.allReduce(Tensor.zeros(DType.F32, 2)) : null));
        assertTrue(timeout.getMessage().contains("skipped a collective"), timeout.getMessage());

        // rank 0 fails after the split; rank 1 waits in the sub-group and must be released by the abort of the parent
        List<Communicator> world = LocalCommunicator.group(2);
        var failed = assertThrows(IllegalStateException.class, () -> Ranks.run(world, c -> {
            Communicator sub = c.split(0, c.rank());
            if (c.rank() == 0) throw new IllegalStateException("rank 0 ran out of memory");
            return sub.allGather(Tensor.zeros(DType.F32, 1), 0);
        }));
        assertEquals("rank 0 ran out of memory", failed.getMessage());
        var after = assertThrows(CommunicatorAbortedException.class, () -> world.get(1).barrier());
        assertInstanceOf(IllegalStateException.class, after.getCause());
    }

    @Test void deviceTensorsAreRejected() {
        Tensor fake = Tensor.wrap(org.dit4j.core.tensor.Shape.of(2), DType.F32, new org.dit4j.core.tensor.Buffer() {
            public org.dit4j.core.tensor.Device device() { return org.dit4j.core.tensor.Device.cuda(0); }
            public long address() { return 0; }
            public long byteSize() { return 8; }
            public java.lang.foreign.MemorySegment segment() { throw new UnsupportedOperationException(); }
            public void release() {}
            public boolean isReleased() { return false; }
        }, 0);
        Communicator c = LocalCommunicator.group(1).get(0);
        var e = assertThrows(IllegalArgumentException.class, () -> c.allReduce(fake));
        assertTrue(e.getMessage().contains("NCCL"), e.getMessage());
    }
}
