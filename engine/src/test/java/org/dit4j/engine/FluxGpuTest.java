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
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Whole Flux forward on the GPU (bf16) against the CPU reference backend (f32) on the same random weights, and CUDA-graph
 * replay against eager. Skips itself without a GPU.
 */
class FluxGpuTest {
    /** A small Flux with head dim 128 (the fused attention's shape) and the real block structure. */
    static final FluxConfig CFG = new FluxConfig(256, 2, 2, 2, 64, 64, 128, 64, 1024, new int[]{16, 56, 56}, 10000, true);

    @BeforeAll static void gpu() {
        String why = Cuda.unavailableReason();
        if (why != null) System.out.println("[dit4j-engine] skipping Flux GPU tests: " + why.lines().findFirst().orElse(why));
        assumeTrue(why == null, "no usable CUDA GPU");
    }

    record Inputs(Tensor img, Tensor txt, Tensor y, Tensor imgIds, Tensor txtIds) {}

    static Inputs inputs(long lat, int nTxt) {
        TorchGenerator g = new TorchGenerator(7);
        return new Inputs(g.randn(1, (lat / 2) * (lat / 2), 64), g.randn(1, nTxt, CFG.contextDim()), g.randn(1, CFG.vecDim()),
                FluxPacking.imageIds(lat, lat), FluxPacking.textIds(nTxt));
    }

    static float[] forward(Ops ops, DType dtype, Inputs in) {
        try (Scope s = Scope.open(); RandomWeightSource src = new RandomWeightSource(FluxWeights.expectedShapes(CFG), DType.F32, 3);
             FluxWeights w = FluxWeights.load(ops, src, CFG, dtype)) {
            FluxTransformer m = new FluxTransformer(ops, w);
            FluxTransformer.Conditioning c = m.prepare(new float[]{0.6f}, new float[]{3.5f}, in.imgIds(), in.txtIds(), dtype);
            Tensor out = m.forward(dev(ops, in.img(), dtype), dev(ops, in.txt(), dtype), dev(ops, in.y(), dtype), c);
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

    @Test void gpuBf16MatchesCpuF32() {
        Inputs in = inputs(32, 24);
        float[] ref;
        try (CpuBackend cpu = new CpuBackend()) {
            ref = forward(cpu, DType.F32, in);
        }
        try (CudaBackend gpu = new CudaBackend()) {
            float[] got = forward(gpu, DType.BF16, in);
            double e = relL2(got, ref);
            System.out.println("[dit4j-engine] tiny Flux forward, GPU bf16 vs CPU f32: rel-L2 " + e);
            assertTrue(e <= 1e-2, "GPU bf16 vs CPU f32 rel-L2 " + e + " > 1e-2");
            // the same forward through Ops' default compositions instead of the fused "Into" kernels
            gpu.setFusedLayouts(false);
            float[] unfused = forward(gpu, DType.BF16, in);
            gpu.setFusedLayouts(true);
            double eu = relL2(unfused, ref);
            System.out.println("[dit4j-engine] tiny Flux forward, GPU bf16 without fused layouts vs CPU f32: rel-L2 " + eu);
            assertTrue(eu <= 1e-2, "GPU bf16 (unfused) vs CPU f32 rel-L2 " + eu + " > 1e-2");
            float[] gotF32 = forward(gpu, DType.F32, in);
            double e32 = relL2(gotF32, ref);
            System.out.println("[dit4j-engine] tiny Flux forward, GPU f32 vs CPU f32: rel-L2 " + e32);
            assertTrue(e32 <= 1e-3, "GPU f32 vs CPU f32 rel-L2 " + e32 + " > 1e-3");
        }
    }

    @Test void graphReplayEqualsEagerAndFollowsNewInputs() {
        try (CudaBackend gpu = new CudaBackend(); Scope s = Scope.open();
             RandomWeightSource src = new RandomWeightSource(FluxWeights.expectedShapes(CFG), DType.BF16, 5);
             FluxWeights w = FluxWeights.load(gpu, src, CFG, DType.BF16)) {
            FluxTransformer m = new FluxTransformer(gpu, w);
            Inputs a = inputs(32, 16), b = inputs(32, 16);
            TorchGenerator g2 = new TorchGenerator(99);
            Tensor imgB = g2.randn(1, 256, 64);
            Tensor img = dev(gpu, a.img(), DType.BF16), txt = dev(gpu, a.txt(), DType.BF16), y = dev(gpu, a.y(), DType.BF16);
            FluxTransformer.Conditioning c = m.prepare(new float[]{0.3f}, new float[]{3.5f}, a.imgIds(), a.txtIds(), DType.BF16);
            float[] eager = gpu.toHost(m.forward(img, txt, y, c)).toFloatArray();
            Tensor[] out = new Tensor[1];
            try (CudaGraph graph = CudaGraph.capture(gpu, () -> out[0] = m.forward(img, txt, y, c))) {
                graph.replay();
                assertArrayEquals(eager, gpu.toHost(out[0]).toFloatArray(), "graph replay must equal eager bit for bit");
                gpu.copyInto(img, dev(gpu, imgB, DType.BF16));
                float[] eagerB = gpu.toHost(m.forward(img, txt, y, c)).toFloatArray();
                graph.replay();
                assertArrayEquals(eagerB, gpu.toHost(out[0]).toFloatArray(), "replay after new inputs must equal eager on them");
            }
        }
    }
}
