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
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;

import static org.dit4j.engine.parallel.FluxParallelTest.relL2;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A small Flux (head dim 128, the GPU kernels' shape) on two GPUs over NCCL, one thread per GPU, against the same
 * model on one GPU: the true-CFG guided velocity of a batch of 2, bf16, rel-L2 ≤ 1e-2 on every rank. Skips itself
 * without two GPUs. Ring attention runs the CUDA backend's attentionWithLse (cuDNN softmax stats or the flash kernel's
 * row LSE) and its merge kernel.
 */
class FluxMultiGpuTest {
    static final FluxConfig CFG = new FluxConfig(256, 2, 2, 2, 64, 64, 128, 64, 1024, new int[] {16, 56, 56}, 10000, true);
    static final int LATENT = 32, TXT = 24, B = 2;
    static final float CFG_SCALE = 4f;

    static List<CudaBackend> gpus = new ArrayList<>();
    static List<FluxWeights> weights = new ArrayList<>();
    static List<Communicator> world;
    static float[] oneGpu;
    static float[] cpuF32;

    record Inputs(Tensor img, Tensor txtCond, Tensor txtUncond, Tensor yCond, Tensor yUncond, float[] t, float[] g) {}

    static Inputs inputs() {
        TorchGenerator gen = new TorchGenerator(9);
        long nImg = (LATENT / 2) * (LATENT / 2);
        return new Inputs(gen.randn(B, nImg, 64), gen.randn(B, TXT, CFG.contextDim()), gen.randn(B, TXT, CFG.contextDim()),
                gen.randn(B, CFG.vecDim()), gen.randn(B, CFG.vecDim()), new float[] {0.4f, 0.8f}, new float[] {3.5f, 3.5f});
    }

    static Tensor dev(Ops ops, Tensor host, DType t) {
        Tensor d = ops.upload(host);
        return d.dtype() == t ? d : ops.cast(d, t);
    }

    /** Guided velocity on one rank without parallelism. */
    static float[] single(Ops ops, FluxWeights w, DType t) {
        Inputs in = inputs();
        try (Scope s = Scope.open()) {
            FluxTransformer m = new FluxTransformer(ops, w);
            FluxTransformer.Conditioning c = m.prepare(in.t, in.g, FluxPacking.imageIds(LATENT, LATENT), FluxPacking.textIds(TXT), t);
            Tensor img = dev(ops, in.img, t);
            Tensor cond = m.forward(img, dev(ops, in.txtCond, t), dev(ops, in.yCond, t), c);
            Tensor uncond = m.forward(img, dev(ops, in.txtUncond, t), dev(ops, in.yUncond, t), c);
            float[] out = ops.toHost(CfgParallel.combine(ops, new CfgParallel.Pair(cond, uncond), CFG_SCALE)).toFloatArray();
            c.close();
            return out;
        }
    }

    @BeforeAll static void start() {
        int n = Cuda.deviceCount();
        assumeTrue(n >= 2, "needs two GPUs, found " + n);
        try (RandomWeightSource src = new RandomWeightSource(FluxWeights.expectedShapes(CFG), DType.F32, 21)) {
            for (int i = 0; i < 2; i++) {
                gpus.add(new CudaBackend(i));
                weights.add(FluxWeights.load(gpus.get(i), src, CFG, DType.BF16));
            }
            try (CpuBackend cpu = new CpuBackend(); FluxWeights w = FluxWeights.load(cpu, src, CFG, DType.F32)) {
                cpuF32 = single(cpu, w, DType.F32);
            }
        }
        oneGpu = single(gpus.get(0), weights.get(0), DType.BF16);
        System.out.printf("[dit4j-engine] multi-GPU: one GPU bf16 vs CPU f32 rel-L2 %.3e%n", relL2(oneGpu, cpuF32));
        world = NcclCommunicator.initAll(gpus);
    }

    @AfterAll static void stop() {
        if (world != null) world.forEach(Communicator::close);
        weights.forEach(FluxWeights::close);
        gpus.forEach(CudaBackend::close);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"ulysses=2", "ring=2", "cfg=2", "dp=2"})
    void twoGpusEqualOneGpu(String spec) {
        ParallelConfig config = ParallelConfig.parse(spec);
        Inputs in = inputs();
        List<float[]> got = MeshRunner.run(config, world, comms -> {
            CudaBackend ops = gpus.get(comms.rank());
            try (Scope s = Scope.open()) {
                FluxTransformer model = FluxSequenceParallel.model(ops, comms, weights.get(comms.rank()));
                FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
                DataParallel dp = DataParallel.of(comms);
                CfgParallel cfg = CfgParallel.of(comms);
                Tensor img = dp.shardBatch(ops, dev(ops, in.img, DType.BF16));
                float[] t = dp.shardBatch(in.t), g = dp.shardBatch(in.g);
                Tensor guided = cfg.guided(ops, CFG_SCALE, branch -> {
                    boolean cond = branch == CfgParallel.Branch.COND;
                    Tensor txt = dp.shardBatch(ops, dev(ops, cond ? in.txtCond : in.txtUncond, DType.BF16));
                    Tensor y = dp.shardBatch(ops, dev(ops, cond ? in.yCond : in.yUncond, DType.BF16));
                    return sp.forward(ops, model, img, txt, y, t, g, FluxPacking.imageIds(LATENT, LATENT), FluxPacking.textIds(TXT));
                });
                return ops.toHost(dp.gatherBatch(guided)).toFloatArray();
            }
        });
        for (int r = 0; r < got.size(); r++) {
            double e = relL2(got.get(r), oneGpu), ecpu = relL2(got.get(r), cpuF32);
            System.out.printf("[dit4j-engine] multi-GPU %-26s rank %d: rel-L2 %.3e vs one GPU bf16, %.3e vs CPU f32%n", config, r, e, ecpu);
            assertTrue(e <= 1e-2, config + " rank " + r + ": rel-L2 " + e + " vs one GPU > 1e-2");
        }
    }
}
