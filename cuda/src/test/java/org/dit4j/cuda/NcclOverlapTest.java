package org.dit4j.cuda;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.Ranks;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.dit4j.cuda.NcclCommunicatorTest.input;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Started (overlapped) NCCL exchanges on every GPU present, one rank per GPU: the same bits as the synchronous
 * exchanges, eagerly with several pending at once, inside CUDA graphs captured on all ranks concurrently (also after
 * the inputs change), and the join: the compute stream reads a large result right after await and gets the data.
 */
class NcclOverlapTest {
    static List<CudaBackend> backends = new ArrayList<>();
    static List<Communicator> world;

    @BeforeAll static void start() {
        CudaTestSupport.requireCuda();
        for (int i = 0; i < Cuda.deviceCount(); i++) backends.add(new CudaBackend(i));
        world = NcclCommunicator.initAll(backends);
        System.out.println("[dit4j-cuda] NCCL overlap test on " + world.size() + " GPU(s)");
    }

    @AfterAll static void stop() {
        if (world != null) world.forEach(Communicator::close);
        backends.forEach(CudaBackend::close);
    }

    static CudaBackend gpu(Communicator c) { return ((NcclCommunicator) c).backend(); }

    /** Inputs of rank r in the layouts SequenceParallelOps exchanges (n = group size). */
    static Tensor[] inputs(CudaBackend b, int r, int n, int salt) {
        return new Tensor[] {
                b.upload(input(r + salt, DType.BF16, 1, 48, 4L * n, 16)),        // [B, L/S, H, d]: split heads, concat sequence
                b.upload(input(r + salt + 1, DType.BF16, 2, 24, 4L * n, 8)),     // B = 2: strided landing
                b.upload(input(r + salt + 2, DType.BF16, n, 1, 40, 3, 16)),      // Ulysses chunk [u, B, L/S, hc, d]: split 0, concat 2
                b.upload(input(r + salt + 3, DType.F32, 1, 24L * n, 3, 8)),      // output way back: split sequence, concat heads
        };
    }

    /** The exchanges of one program, synchronous or started (all started before the first await). */
    static List<Tensor> program(Communicator c, Tensor[] x, boolean started) {
        List<Tensor> out = new ArrayList<>();
        if (!started) {
            for (Tensor y : c.allToAll(new Tensor[] {x[0], x[1]}, 2, 1)) out.add(y);
            out.add(c.allToAll(new Tensor[] {x[2]}, 0, 2)[0]);
            out.add(c.allToAll(new Tensor[] {x[3]}, 1, 2)[0]);
            for (Tensor y : c.ringPass(new Tensor[] {x[0], x[3]})) out.add(y);
            return out;
        }
        Communicator.Pending a = c.startAllToAll(new Tensor[] {x[0], x[1]}, 2, 1);
        Communicator.Pending b = c.startAllToAll(new Tensor[] {x[2]}, 0, 2);
        Communicator.Pending d = c.startAllToAll(new Tensor[] {x[3]}, 1, 2);
        Communicator.Pending p = c.startRingPass(new Tensor[] {x[0], x[3]});
        for (Communicator.Pending e : new Communicator.Pending[] {a, b, d, p}) for (Tensor y : e.await()) out.add(y);
        return out;
    }

    static List<float[]> host(CudaBackend b, List<Tensor> ts) {
        List<float[]> out = new ArrayList<>();
        for (Tensor t : ts) out.add(b.toHost(t).toFloatArray());
        return out;
    }

    static void assertSame(List<float[]> want, List<float[]> got, String what) {
        assertEquals(want.size(), got.size(), what + ": number of results");
        for (int i = 0; i < want.size(); i++) assertArrayEquals(want.get(i), got.get(i), what + " #" + i);
    }

    @Test void startedEqualsSynchronousEagerly() {
        int n = world.size();
        Ranks.run(world, c -> {
            CudaBackend b = gpu(c);
            try (Scope s = Scope.open()) {
                Tensor[] x = inputs(b, c.rank(), n, 0);
                List<float[]> want = host(b, program(c, x, false));
                for (int rep = 0; rep < 3; rep++)   // recycled events and scratch blocks
                    assertSame(want, host(b, program(c, x, true)), "started exchange, rank " + c.rank() + " rep " + rep);
            }
            return null;
        });
    }

    @Test void startedExchangesInsideCudaGraphsCapturedOnAllRanks() {
        int n = world.size();
        Ranks.run(world, c -> {
            CudaBackend b = gpu(c);
            try (Scope s = Scope.open()) {
                Tensor[] x = inputs(b, c.rank(), n, 0);
                List<float[]> want = host(b, program(c, x, false));
                host(b, program(c, x, true));   // eager warm-up: NCCL connections
                List<List<Tensor>> captured = new ArrayList<>();
                try (CudaGraph g = CudaGraph.capture(b, () -> captured.add(program(c, x, true)))) {
                    g.replay();
                    assertSame(want, host(b, captured.get(0)), "graph replay, rank " + c.rank());
                    // new input values, same addresses: the replay exchanges the new data
                    Tensor[] x2 = inputs(b, c.rank(), n, 50);
                    for (int i = 0; i < x.length; i++) b.copyInto(x[i], x2[i]);
                    List<float[]> want2 = host(b, program(c, x, false));
                    g.replay();
                    assertSame(want2, host(b, captured.get(0)), "graph replay after new inputs, rank " + c.rank());
                }
            }
            return null;
        });
    }

    /**
     * The compute stream reads the result of a large exchange right after await (a cast), and overwrites the input
     * right after await: the result is the exchanged data, not stale memory, and not the overwritten input.
     */
    @Test void computeStreamAfterAwaitSeesTheExchangedData() {
        int n = world.size();
        Ranks.run(world, c -> {
            CudaBackend b = gpu(c);
            long rows = 8L * 1024 * 1024 / 16 * n;   // 64 MiB of f32 per rank
            try (Scope s = Scope.open()) {
                Tensor x = b.upload(input(c.rank(), DType.F32, rows, 4));
                Tensor want = c.ringPass(x);
                float[] wantHost = b.toHost(want).toFloatArray();
                for (int rep = 0; rep < 3; rep++) {
                    // zeros (≠ the exchanged data) in the recycled blocks the copy and the result land in
                    Tensor junk1 = b.zeros(DType.F32, x.shape()), junk2 = b.zeros(DType.F32, x.shape());
                    junk1.close();
                    junk2.close();
                    Tensor xi = b.copy(x);
                    Communicator.Pending p = c.startRingPass(new Tensor[] {xi});
                    Tensor y = p.await()[0];
                    Tensor read = b.cast(y, DType.BF16);              // compute stream, right after the join
                    b.copyInto(xi, b.zeros(DType.F32, x.shape()));   // the input may be overwritten now
                    assertArrayEquals(b.toHost(b.cast(want, DType.BF16)).toFloatArray(), b.toHost(read).toFloatArray(),
                            "cast right after await, rank " + c.rank() + " rep " + rep);
                    assertArrayEquals(wantHost, b.toHost(y).toFloatArray(), "result after the input was overwritten, rank " + c.rank());
                    y.close();
                    xi.close();
                }
            }
            return null;
        });
    }

    /** The slab all-to-all (Ulysses head chunks) on NCCL equals the in-process communicator's, bit for bit. */
    @Test void slabAllToAllEqualsInProcess() {
        int n = world.size();
        NcclCommunicatorTest.sameOnBoth(world, "slab allToAll", (c, up, down) -> {
            List<float[]> out = new ArrayList<>();
            for (long b : new long[] {1, 2}) {
                Tensor q = up.apply(input(c.rank(), DType.BF16, b, 5, 4L * n, 16));
                Tensor k = up.apply(input(c.rank() + 10, DType.F32, b, 5, 4L * n, 8));
                for (int[] sc : new int[][] {{2, 1}, {2, 2}, {2, 0}}) {
                    for (long[] slab : new long[][] {{0, n}, {n, 2L * n}, {3L * n, n}, {0, 4L * n}}) {
                        List<Communicator.Pending> ps = new ArrayList<>();
                        ps.add(c.startAllToAll(new Tensor[] {q, k}, sc[0], sc[1], slab[0], slab[1]));
                        ps.add(c.startAllToAll(new Tensor[] {k}, sc[0], sc[1], slab[0], slab[1]));   // two pending at once
                        for (Communicator.Pending p : ps) for (Tensor y : p.await()) out.add(down.apply(y));
                    }
                }
            }
            return out;
        });
    }

    @Test void synchronousCollectiveWhileAnExchangeIsPendingIsRefused() {
        int n = world.size();
        Ranks.run(world, c -> {
            CudaBackend b = gpu(c);
            try (Scope s = Scope.open()) {
                Tensor x = b.upload(input(c.rank(), DType.F32, 2L * n, 3));
                Communicator.Pending p = c.startAllToAll(new Tensor[] {x}, 0, 0);
                var e = assertThrows(IllegalStateException.class, () -> c.allGather(x, 0));
                assertTrue(e.getMessage().contains("not awaited"), e.getMessage());
                Tensor y = p.await()[0];
                assertArrayEquals(b.toHost(c.allToAll(x, 0, 0)).toFloatArray(), b.toHost(y).toFloatArray());
                var twice = assertThrows(IllegalStateException.class, p::await);
                assertTrue(twice.getMessage().contains("already awaited"), twice.getMessage());
            }
            return null;
        });
    }
}
