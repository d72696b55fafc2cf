package org.dit4j.cuda;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.parallel.Ranks;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The NCCL communicator on every GPU present (one rank per GPU, one thread per rank) against the in-process
 * communicator on the same inputs: every collective bit for bit (sums over ≤ 2 ranks are exact in any order; with more
 * ranks all-reduce is compared within 1e-6), in bf16 and f32, on the layouts Ulysses uses.
 */
class NcclCommunicatorTest {
    static List<CudaBackend> backends = new ArrayList<>();
    static List<Communicator> world;

    @BeforeAll static void start() {
        CudaTestSupport.requireCuda();
        for (int i = 0; i < Cuda.deviceCount(); i++) backends.add(new CudaBackend(i));
        world = NcclCommunicator.initAll(backends);
        System.out.println("[dit4j-cuda] NCCL communicator on " + world.size() + " GPU(s), NCCL " + Nccl.get().version());
    }

    @AfterAll static void stop() {
        if (world != null) world.forEach(Communicator::close);
        backends.forEach(CudaBackend::close);
    }

    static Tensor input(int r, DType t, long... dims) {
        Random rnd = new Random(40 + r);
        Tensor x = Tensor.zeros(t, dims);
        float[] v = new float[(int) x.numel()];
        for (int i = 0; i < v.length; i++) v[i] = (float) rnd.nextGaussian();
        x.setFloats(v);
        return x;
    }

    /** The same program on both communicators: host results per rank. */
    interface Program { List<float[]> run(Communicator c, java.util.function.Function<Tensor, Tensor> up, java.util.function.Function<Tensor, float[]> down); }

    static void sameOnBoth(String what, Program p) { sameOnBoth(world, what, p); }

    /** {@link #sameOnBoth(String, Program)} on the given NCCL world (a test class with its own communicators). */
    static void sameOnBoth(List<Communicator> world, String what, Program p) {
        int n = world.size();
        List<List<float[]>> gpu = Ranks.run(world, c -> {
            CudaBackend b = ((NcclCommunicator) c).backend();
            return p.run(c, b::upload, t -> b.toHost(t).toFloatArray());
        });
        List<List<float[]>> cpu = Ranks.run(LocalCommunicator.group(n), c -> p.run(c, t -> t, Tensor::toFloatArray));
        for (int r = 0; r < n; r++)
            for (int i = 0; i < cpu.get(r).size(); i++) {
                float[] want = cpu.get(r).get(i), got = gpu.get(r).get(i);
                if (n <= 2 || !what.startsWith("allReduce")) assertArrayEquals(want, got, what + " #" + i + " on rank " + r);
                else assertArrayEquals(want, got, 1e-6f * 8, what + " #" + i + " on rank " + r);
            }
    }

    @Test void allReduceSums() {
        for (DType t : new DType[] {DType.F32, DType.BF16})
            sameOnBoth("allReduce " + t, (c, up, down) -> List.of(down.apply(c.allReduce(up.apply(input(c.rank(), t, 3, 257))))));
    }

    @Test void allGatherAlongEveryDim() {
        sameOnBoth("allGather", (c, up, down) -> {
            List<float[]> out = new ArrayList<>();
            for (int d = 0; d < 3; d++) out.add(down.apply(c.allGather(up.apply(input(c.rank(), DType.BF16, 2, 6, 5)), d)));
            return out;
        });
    }

    @Test void allToAllInUlyssesLayoutsAndBack() {
        int n = world.size();
        sameOnBoth("allToAll", (c, up, down) -> {
            List<float[]> out = new ArrayList<>();
            for (long b : new long[] {1, 2}) {
                Tensor x = up.apply(input(c.rank(), DType.BF16, b, 3, 4L * n, 8));    // [B, L/n, H, d]
                Tensor y = c.allToAll(x, 2, 1);                                        // [B, L, H/n, d]
                assertEquals(3L * n, y.dim(1));
                out.add(down.apply(y));
                out.add(down.apply(c.allToAll(y, 1, 2)));
                out.add(down.apply(c.allToAll(x, 2, 2)));     // exchange of head blocks, shape kept
            }
            return out;
        });
    }

    /** Several tensors (mixed dtypes and head dims) in one exchange equal per-tensor all-to-alls, on every split/concat pair used. */
    @Test void allToAllOfSeveralTensorsInOneExchange() {
        int n = world.size();
        sameOnBoth("allToAll[]", (c, up, down) -> {
            List<float[]> out = new ArrayList<>();
            for (long b : new long[] {1, 2}) {
                Tensor q = up.apply(input(c.rank(), DType.BF16, b, 3, 2L * n, 8));
                Tensor k = up.apply(input(c.rank() + 10, DType.F32, b, 3, 2L * n, 8));
                Tensor v = up.apply(input(c.rank() + 20, DType.BF16, b, 3, 2L * n, 4));
                for (int[] sc : new int[][] {{2, 1}, {1, 2}, {2, 2}, {0, 1}, {3, 0}}) {
                    Tensor[] xs = {q, k, v};
                    if (java.util.Arrays.stream(xs).anyMatch(x -> x.dim(sc[0]) % n != 0)) continue;
                    Tensor[] ys = c.allToAll(xs, sc[0], sc[1]);
                    assertEquals(3, ys.length);
                    for (int i = 0; i < 3; i++) {
                        assertEquals(xs[i].dtype(), ys[i].dtype());
                        out.add(down.apply(ys[i]));
                    }
                }
            }
            return out;
        });
    }

    @Test void sendRecvBroadcastAndSplit() {
        sameOnBoth("p2p", (c, up, down) -> {
            List<float[]> out = new ArrayList<>();
            out.add(down.apply(c.ringPass(up.apply(input(c.rank(), DType.F32, 7, 3)))));
            Tensor[] kv = c.ringPass(new Tensor[] {up.apply(input(c.rank(), DType.BF16, 5, 4)), up.apply(input(c.rank() + 7, DType.F32, 3))});
            out.add(down.apply(kv[0]));
            out.add(down.apply(kv[1]));
            out.add(down.apply(c.broadcast(up.apply(input(c.rank(), DType.BF16, 9)), c.size() - 1)));
            Communicator sub = c.split(c.rank() % 2, -c.rank());
            out.add(new float[] {sub.rank(), sub.size()});
            out.add(down.apply(sub.allGather(up.apply(input(c.rank(), DType.F32, 1, 4)), 1)));
            c.barrier();
            sub.close();
            return out;
        });
    }
}
