package org.dit4j.engine;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Whole Wan2.1 transformer forward on the GPU (bf16 and f32) against the CPU reference backend (f32) on the same random
 * weights, and CUDA-graph replay against eager. The configuration has the real widths of Wan2.1-1.3B (D = 1536,
 * 12 heads of 128: the cuDNN attention, the across-heads RMS norm + RoPE kernel and the F32-modulation vector kernels
 * at their real sizes) with one block and a small FFN and text width. Skips itself without a GPU.
 */
class WanGpuTest {
    static final WanConfig CFG = new WanConfig(1536, 12, 1, 512, 16, 16, 64, 256, new int[] {1, 2, 2}, true);

    @BeforeAll static void gpu() {
        String why = Cuda.unavailableReason();
        if (why != null) System.out.println("[dit4j-engine] skipping Wan GPU tests: " + why.lines().findFirst().orElse(why));
        assumeTrue(why == null, "no usable CUDA GPU");
    }

    record Inputs(Tensor latent, Tensor context) {}

    static Inputs inputs() {
        TorchGenerator g = new TorchGenerator(11);
        return new Inputs(g.randn(1, 16, 3, 8, 12), g.randn(1, 20, CFG.textDim()));    // grid 3×4×6 = 72 tokens
    }

    static float[] forward(Ops ops, DType dtype, Inputs in) {
        try (Scope s = Scope.open(); RandomWeightSource src = new RandomWeightSource(WanWeights.expectedShapes(CFG), DType.F32, 3);
             WanWeights w = WanWeights.load(ops, src, CFG, dtype)) {
            WanTransformer m = new WanTransformer(ops, w);
            Tensor out = m.forward(dev(ops, in.latent(), dtype), Tensor.of(new float[] {700f}, 1), dev(ops, in.context(), dtype));
            return ops.toHost(out).toFloatArray();
        }
    }

    static Tensor dev(Ops ops, Tensor host, DType dtype) {
        Tensor d = ops.upload(host);
        return d.dtype() == dtype ? d : ops.cast(d, dtype);
    }

    static double relL2(float[] a, float[] b) {
        double n = 0, d = 0;
        for (int i = 0; i < a.length; i++) {
            n += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
            d += (double) b[i] * b[i];
        }
        return Math.sqrt(n / d);
    }

    @Test void gpuMatchesCpuF32() {
        Inputs in = inputs();
        float[] ref;
        try (CpuBackend cpu = new CpuBackend()) {
            ref = forward(cpu, DType.F32, in);
        }
        try (CudaBackend gpu = new CudaBackend()) {
            double e16 = relL2(forward(gpu, DType.BF16, in), ref);
            double e32 = relL2(forward(gpu, DType.F32, in), ref);
            System.out.println("[dit4j-engine] Wan forward (D 1536, 12 heads, 72 tokens), GPU vs CPU f32: bf16 rel-L2 " + e16
                    + ", f32 rel-L2 " + e32);
            assertTrue(e16 <= 1e-2, "GPU bf16 vs CPU f32 rel-L2 " + e16 + " > 1e-2");
            assertTrue(e32 <= 1e-5, "GPU f32 vs CPU f32 rel-L2 " + e32 + " > 1e-5");
        }
    }

    @Test void cudaGraphReplayEqualsEager() {
        Inputs in = inputs();
        try (CudaBackend gpu = new CudaBackend(); Scope s = Scope.open();
             RandomWeightSource src = new RandomWeightSource(WanWeights.expectedShapes(CFG), DType.F32, 3);
             WanWeights w = WanWeights.load(gpu, src, CFG, DType.BF16)) {
            WanTransformer m = new WanTransformer(gpu, w);
            Tensor latent = dev(gpu, in.latent(), DType.BF16), context = dev(gpu, in.context(), DType.BF16);
            try (WanTransformer.Conditioning c = m.prepare(new float[] {700f}, 3, 4, 6)) {
                float[] eager = gpu.toHost(m.forward(latent, context, c)).toFloatArray();
                Tensor[] out = new Tensor[1];
                try (CudaGraph g = CudaGraph.capture(gpu, () -> out[0] = m.forward(latent, context, c))) {
                    g.replay();
                    float[] first = gpu.toHost(out[0]).toFloatArray();
                    // new input values copied into the captured latent: the replay follows them
                    Tensor other = dev(gpu, new TorchGenerator(12).randn(1, 16, 3, 8, 12), DType.BF16);
                    float[] eagerOther = gpu.toHost(m.forward(other, context, c)).toFloatArray();
                    gpu.copyInto(latent, other);
                    g.replay();
                    float[] second = gpu.toHost(out[0]).toFloatArray();
                    assertArrayEquals(eager, first, 0f, "graph replay vs eager");
                    assertArrayEquals(eagerOther, second, 0f, "graph replay after copyInto vs eager on the new latent");
                }
            }
        }
    }
}
