package org.dit4j.cuda;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Head dims no attention kernel takes (the VAE mid block: one 512-wide head) run as two GEMMs around a softmax. */
class AttentionGemmFallbackTest {
    @BeforeAll static void gpu() { CudaTestSupport.requireCuda(); }

    @Test void wideSingleHeadMatchesCpu() {
        TorchGenerator g = new TorchGenerator(11);
        try (Scope s = Scope.open(); CudaBackend gpu = new CudaBackend(); CpuBackend cpu = new CpuBackend()) {
            Tensor q = g.randn(1, 300, 1, 512), k = g.randn(1, 300, 1, 512), v = g.randn(1, 300, 1, 512);
            float scale = (float) (1 / Math.sqrt(512));
            float[] ref = cpu.attention(q, k, v, null, scale).toFloatArray();
            for (DType t : new DType[]{DType.F32, DType.BF16}) {
                Tensor qd = CudaTestSupport.dev(gpu, t, q.toFloatArray(), 1, 300, 1, 512);
                Tensor kd = CudaTestSupport.dev(gpu, t, k.toFloatArray(), 1, 300, 1, 512);
                Tensor vd = CudaTestSupport.dev(gpu, t, v.toFloatArray(), 1, 300, 1, 512);
                assertEquals(AttentionKernel.GEMM, gpu.attentionKernelFor(qd, kd, vd, null));
                float[] got = CudaTestSupport.host(gpu, gpu.attention(qd, kd, vd, null, scale));
                CudaTestSupport.assertClose(got, ref, CudaTestSupport.tol(t), "GEMM attention " + t);
            }
        }
    }
}
