package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.NcclCommunicator;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The patch-parallel VAE decode on two GPUs over NCCL (bf16; the CUDA backend's composed defaults of
 * {@code Ops.groupStats}/{@code groupNormWithStats}) against the same decode on one GPU: rel-L2 ≤ 1e-2 on every rank,
 * and each rank's peak of device memory in use during the decode (above what was in use before) below the one-GPU
 * peak. A small VAE with random weights: levels [32, 64, 64], 8 groups, mid attention, latent 16 × 2·16 + 1 rows (odd,
 * so the split is uneven). Skips itself without two GPUs.
 */
class VaeMultiGpuTest {
    static final VaeConfig CFG = new VaeConfig(3, 3, new int[] {32, 64, 64}, 2, 16, 8, VaeConfig.FLUX_SCALING,
            VaeConfig.FLUX_SHIFT, false, false, true, false, true);
    static final int H = 33, W = 32;

    static final List<CudaBackend> gpus = new ArrayList<>();
    static final List<AutoencoderKL> vaes = new ArrayList<>();
    static List<Communicator> world;
    static float[] oneGpu, cpuF32;
    static long oneGpuPeak;

    static Tensor latent() { return new TorchGenerator(17).randn(1, CFG.latentChannels(), H, W); }

    static Tensor dev(Ops ops, Tensor host) { return ops.cast(ops.upload(host), DType.BF16); }

    @BeforeAll static void start() {
        int n = Cuda.deviceCount();
        assumeTrue(n >= 2, "needs two GPUs, found " + n);
        try (RandomWeightSource src = new RandomWeightSource(VaeWeights.expectedShapes(CFG), DType.F32, 31)) {
            for (int i = 0; i < 2; i++) {
                gpus.add(new CudaBackend(i));
                vaes.add(AutoencoderKL.load(gpus.get(i), src, CFG, DType.BF16));
            }
            try (CpuBackend cpu = new CpuBackend(); AutoencoderKL ref = AutoencoderKL.load(cpu, src, CFG, DType.F32);
                 Scope s = Scope.open()) {
                cpuF32 = ref.decode(latent()).toFloatArray();
            }
        }
        CudaBackend g = gpus.getFirst();
        try (Scope s = Scope.open()) {
            Tensor z = dev(g, latent());
            g.synchronize();
            long before = g.allocator().inUseBytes();
            g.allocator().resetPeak();
            oneGpu = g.toHost(vaes.getFirst().decode(z)).toFloatArray();
            oneGpuPeak = g.allocator().peakInUseBytes() - before;
        }
        world = NcclCommunicator.initAll(gpus);
    }

    @AfterAll static void stop() {
        if (world != null) world.forEach(Communicator::close);
        vaes.forEach(AutoencoderKL::close);
        gpus.forEach(CudaBackend::close);
    }

    @Test void twoGpusEqualOneGpuWithLessMemoryEach() {
        List<long[]> peaks = new ArrayList<>();
        List<float[]> got = MeshRunner.run(ParallelConfig.ring(2), world, comms -> {
            CudaBackend ops = gpus.get(comms.rank());
            try (Scope s = Scope.open()) {
                PatchParallelVaeDecoder d = new PatchParallelVaeDecoder(ops, vaes.get(comms.rank()), comms.world());
                Tensor z = dev(ops, latent());
                ops.synchronize();
                long before = ops.allocator().inUseBytes();
                ops.allocator().resetPeak();
                Tensor slab = d.decodeShard(z);
                ops.synchronize();
                long peak = ops.allocator().peakInUseBytes() - before;
                synchronized (peaks) { peaks.add(new long[] {comms.rank(), peak}); }
                return ops.toHost(d.gather(slab, d.split(H))).toFloatArray();
            }
        });
        System.out.printf("[dit4j-engine] VAE one GPU bf16 vs CPU f32 rel-L2 %.3e, decode peak %d B%n",
                ParallelVerification.compare("one GPU", cpuF32, oneGpu).relL2(), oneGpuPeak);
        for (int r = 0; r < got.size(); r++) {
            var rep = ParallelVerification.compare("2 GPUs rank " + r, oneGpu, got.get(r));
            System.out.println("[dit4j-engine] VAE patch parallel " + rep.summary() + ", vs CPU f32 rel-L2 "
                    + ParallelVerification.compare("cpu", cpuF32, got.get(r)).relL2());
            assertTrue(rep.within(ParallelVerification.tolerance(DType.BF16)), rep.summary());
        }
        for (long[] p : peaks) {
            System.out.printf("[dit4j-engine] VAE patch parallel rank %d decode peak %d B (%.2f of one GPU)%n", p[0], p[1],
                    (double) p[1] / oneGpuPeak);
            assertTrue(p[1] < oneGpuPeak, "rank " + p[0] + " peak " + p[1] + " B is not below the one-GPU peak " + oneGpuPeak + " B");
        }
    }
}
