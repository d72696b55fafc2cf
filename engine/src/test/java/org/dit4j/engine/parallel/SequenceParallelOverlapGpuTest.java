package org.dit4j.engine.parallel;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.AttentionKernel;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.cuda.NcclCommunicator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;

import static org.dit4j.engine.parallel.FluxParallelTest.relL2;
import static org.dit4j.engine.parallel.SequenceParallelAttentionTest.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Overlapped sequence-parallel attention (ring K/V prefetch, Ulysses head chunks on the NCCL communication stream)
 * against the serial exchanges on two GPUs, bf16, head dim 128: eagerly, through attentionInto, and replayed from a
 * CUDA graph captured on both ranks. With the flash kernel pinned (per-head arithmetic independent of the head count)
 * and for ring (same shapes) the results are equal bit for bit; with cuDNN's automatic choice, Ulysses chunks change
 * the head count of each call, so they are bounded by rel-L2 1e-3 instead. Skips without two GPUs.
 */
class SequenceParallelOverlapGpuTest {
    static final int L = 2048, H = 8, D = 128;
    static final float SCALE = (float) (1 / Math.sqrt(D));
    static List<CudaBackend> gpus = new ArrayList<>();
    static List<Communicator> world;

    @BeforeAll static void start() {
        int n = Cuda.deviceCount();
        assumeTrue(n >= 2, "needs two GPUs, found " + n);
        for (int i = 0; i < 2; i++) gpus.add(new CudaBackend(i));
        world = NcclCommunicator.initAll(gpus);
    }

    @AfterAll static void stop() {
        if (world != null) world.forEach(Communicator::close);
        gpus.forEach(CudaBackend::close);
    }

    @ParameterizedTest(name = "{0}, chunks {1}, {2}")
    @CsvSource({"ulysses=2,2,AUTO", "ulysses=2,4,AUTO", "ring=2,1,AUTO", "ulysses=2,2,FLASH_MMA", "ulysses=2,4,FLASH_MMA", "ring=2,1,FLASH_MMA"})
    void overlappedEqualsSerial(String spec, int chunks, String kernel) {
        ParallelConfig config = ParallelConfig.parse(spec);
        SequenceParallelOps.Overlap ov = new SequenceParallelOps.Overlap(true, chunks);
        AttentionKernel pinned = kernel.equals("AUTO") ? null : AttentionKernel.valueOf(kernel);
        List<List<float[]>> got = MeshRunner.run(config, world, comms -> {
            CudaBackend b = gpus.get(comms.rank());
            b.setAttentionKernel(pinned);
            int s = config.sequenceDegree(), idx = comms.sequence().rank();
            try (Scope sc = Scope.open()) {
                Tensor q = shard(b, 1, s, idx), k = shard(b, 2, s, idx), v = shard(b, 3, s, idx);
                SequenceParallelOps serial = SequenceParallelOps.of(b, comms, SequenceParallelOps.Overlap.NONE);
                SequenceParallelOps overlapped = SequenceParallelOps.of(b, comms, ov);
                List<float[]> out = new ArrayList<>();
                out.add(b.toHost(serial.attention(q, k, v, null, SCALE)).toFloatArray());
                out.add(b.toHost(overlapped.attention(q, k, v, null, SCALE)).toFloatArray());
                Tensor into = b.zeros(DType.BF16, org.dit4j.core.tensor.Shape.of(1, L / s, H * D + 64));
                overlapped.attentionInto(into, 64, q, k, v, null, SCALE);
                out.add(b.toHost(b.slice(into, 2, 64, 64 + H * D)).toFloatArray());
                Tensor[] holder = new Tensor[1];
                try (CudaGraph g = CudaGraph.capture(b, () -> holder[0] = overlapped.attention(q, k, v, null, SCALE))) {
                    g.replay();
                    out.add(b.toHost(holder[0]).toFloatArray());
                    g.replay();
                    out.add(b.toHost(holder[0]).toFloatArray());
                }
                return out;
            } finally {
                b.setAttentionKernel(null);
            }
        });
        boolean exact = pinned != null || config.ulysses() == 1;
        for (int r = 0; r < got.size(); r++) {
            List<float[]> o = got.get(r);
            String at = config + " chunks " + chunks + " " + kernel + " rank " + r;
            double e = relL2(o.get(1), o.get(0));
            System.out.printf("[dit4j-engine] overlap %s: overlapped vs serial rel-L2 %.3e%n", at, e);
            if (exact) assertArrayEquals(o.get(0), o.get(1), at + ": overlapped ≠ serial");
            else assertTrue(e <= 1e-3, at + ": overlapped vs serial rel-L2 " + e + " > 1e-3");
            assertArrayEquals(o.get(1), o.get(2), at + ": attentionInto ≠ attention");
            assertArrayEquals(o.get(1), o.get(3), at + ": CUDA graph replay ≠ eager");
            assertArrayEquals(o.get(1), o.get(4), at + ": second CUDA graph replay ≠ eager");
        }
    }

    /** Rows [idx·L/s, (idx+1)·L/s) of a seeded [1, L, H, D] bf16 tensor, on the GPU. */
    static Tensor shard(CudaBackend b, long seed, int s, int idx) {
        try (Tensor full = randn(seed, DType.BF16, 1, L, H, D)) {
            Tensor d = b.upload(full);
            Tensor out = b.slice(d, 1, (long) idx * L / s, (long) (idx + 1) * L / s);
            d.close();
            return out;
        }
    }
}
