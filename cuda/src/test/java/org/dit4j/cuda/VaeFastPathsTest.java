package org.dit4j.cuda;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static org.dit4j.cuda.CudaTestSupport.assertClose;
import static org.dit4j.cuda.CudaTestSupport.dev;
import static org.dit4j.cuda.CudaTestSupport.host;
import static org.dit4j.cuda.CudaTestSupport.rounded;
import static org.dit4j.cuda.CudaTestSupport.tol;
import static org.dit4j.cuda.HostRef.randn;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The VAE fast paths (cuDNN convolution, many-block group norm and its fused SiLU, chunked bf16 GEMM attention)
 * against double references on the host and against the earlier kernels ({@link CudaBackend#setVaeFastPaths} off).
 * Tolerances: rel-L2 1e-2 for bf16 results vs the reference on the same rounded inputs ({@link CudaTestSupport#tol});
 * new vs earlier kernels 4e-3 (both round to bf16 once; they differ in summation order only).
 */
class VaeFastPathsTest {
    private static CudaBackend ops;

    @BeforeAll static void gpu() {
        CudaTestSupport.requireCuda();
        ops = new CudaBackend();
    }

    @AfterAll static void close() { if (ops != null) ops.close(); }

    private static float[] run(boolean fast, java.util.function.Supplier<Tensor> f) {
        ops.setVaeFastPaths(fast);
        try (Scope s = Scope.open()) {
            return host(ops, f.get());
        } finally {
            ops.setVaeFastPaths(true);
        }
    }

    @Test void conv2dThroughCudnnMatchesReference() {
        DType t = DType.BF16;
        int n = 2, c = 32, hh = 19, ww = 23, o = 48;
        float[] x = rounded(t, randn(1, n * c * hh * ww)), w = rounded(t, randn(2, o * c * 9)), b = rounded(t, randn(3, o));
        for (float[] cfg : new float[][] {{1, 1}, {2, 0}}) {   // stride 1 pad 1 (resnet convs), stride 2 pad 0 (downsample)
            int st = (int) cfg[0], pd = (int) cfg[1];
            int plans = ops.cudnnConvPlanCount();
            float[] fast = run(true, () -> ops.conv2d(dev(ops, t, x, n, c, hh, ww), dev(ops, t, w, o, c, 3, 3), dev(ops, t, b, o),
                    new int[] {st, st}, new int[] {pd, pd}, 1));
            assertEquals(plans + 1, ops.cudnnConvPlanCount(), "the bf16 3×3 convolution must run through cuDNN");
            float[] legacy = run(false, () -> ops.conv2d(dev(ops, t, x, n, c, hh, ww), dev(ops, t, w, o, c, 3, 3), dev(ops, t, b, o),
                    new int[] {st, st}, new int[] {pd, pd}, 1));
            float[] ref = HostRef.conv2d(x, w, b, n, c, hh, ww, o, 3, 3, st, st, pd, pd, 1);
            assertClose(fast, ref, tol(t), "cuDNN conv2d stride " + st + " pad " + pd);
            assertClose(fast, legacy, 4e-3, "cuDNN conv2d vs im2col+GEMM, stride " + st);
        }
    }

    @Test void conv3dThroughCudnnMatchesReference() {
        DType t = DType.BF16;
        int n = 1, c = 16, tt = 5, hh = 9, ww = 10, o = 24;
        float[] x = rounded(t, randn(4, n * c * tt * hh * ww)), w = rounded(t, randn(5, o * c * 27)), b = rounded(t, randn(6, o));
        int plans = ops.cudnnConvPlanCount();
        float[] fast = run(true, () -> ops.conv3d(dev(ops, t, x, n, c, tt, hh, ww), dev(ops, t, w, o, c, 3, 3, 3), dev(ops, t, b, o),
                new int[] {1, 1, 1}, new int[] {0, 1, 1}));
        assertEquals(plans + 1, ops.cudnnConvPlanCount(), "the bf16 3×3×3 convolution must run through cuDNN");
        float[] ref = HostRef.conv3d(x, w, b, n, c, tt, hh, ww, o, 3, 3, 3, new int[] {1, 1, 1}, new int[] {0, 1, 1});
        assertClose(fast, ref, tol(t), "cuDNN conv3d");
    }

    @Test void groupNormManyBlocksMatchesReferenceAndLegacy() {
        for (DType t : new DType[] {DType.F32, DType.BF16}) {
            int n = 2, c = 64, s = 48 * 40;   // 2 channels per group, S whole vectors
            float[] raw = randn(7, n * c * s);
            for (int i = 0; i < raw.length; i++) raw[i] = raw[i] * 3f + 20f;   // a mean far from 0
            float[] x = rounded(t, raw), w = rounded(t, randn(8, c)), b = rounded(t, randn(9, c));
            float[] fast = run(true, () -> ops.groupNorm(dev(ops, t, x, n, c, 48, 40), 32, dev(ops, t, w, c), dev(ops, t, b, c), 1e-6f));
            float[] legacy = run(false, () -> ops.groupNorm(dev(ops, t, x, n, c, 48, 40), 32, dev(ops, t, w, c), dev(ops, t, b, c), 1e-6f));
            float[] ref = HostRef.groupNorm(x, n, c, s, 32, w, b, 1e-6);
            assertClose(fast, ref, tol(t), "many-block groupNorm " + t);
            assertClose(fast, legacy, t == DType.F32 ? 1e-6 : 4e-3, "many-block vs one-block groupNorm " + t);
        }
    }

    @Test void upsampleVectorisedEqualsLegacy() {
        DType t = DType.BF16;
        int n = 2, c = 3, hh = 5, ww = 24;
        float[] x = rounded(t, randn(16, n * c * hh * ww));
        float[] fast = run(true, () -> ops.upsampleNearest2d(dev(ops, t, x, n, c, hh, ww), 2));
        float[] legacy = run(false, () -> ops.upsampleNearest2d(dev(ops, t, x, n, c, hh, ww), 2));
        assertClose(fast, legacy, 0, "vectorised nearest ×2 upsampling (a copy)");
        assertEquals(x[1 * ww + 9], fast[(2 * 1 + 1) * (2 * ww) + 2 * 9 + 1], "out[0, 0, 3, 19] = x[0, 0, 1, 9]");
    }

    @Test void groupNormSiluEqualsTheTwoOps() {
        DType t = DType.BF16;
        int n = 1, c = 128, s = 32 * 32;
        float[] x = rounded(t, randn(10, n * c * s)), w = rounded(t, randn(11, c)), b = rounded(t, randn(12, c));
        float[] fused = run(true, () -> ops.groupNormSilu(dev(ops, t, x, n, c, 32, 32), 32, dev(ops, t, w, c), dev(ops, t, b, c), 1e-6f));
        float[] twoOps = run(true, () -> ops.silu(ops.groupNorm(dev(ops, t, x, n, c, 32, 32), 32, dev(ops, t, w, c), dev(ops, t, b, c), 1e-6f)));
        float[] legacy = run(false, () -> ops.groupNormSilu(dev(ops, t, x, n, c, 32, 32), 32, dev(ops, t, w, c), dev(ops, t, b, c), 1e-6f));
        float[] norm = HostRef.groupNorm(x, n, c, s, 32, w, b, 1e-6);
        float[] ref = new float[norm.length];
        for (int i = 0; i < ref.length; i++) ref[i] = (float) (norm[i] / (1 + Math.exp(-norm[i])));
        assertClose(fused, ref, tol(t), "groupNormSilu vs reference");
        // same arithmetic and roundings; the compiler may contract differently: a few elements one bf16 ulp apart
        assertClose(fused, twoOps, 1e-5, "fused groupNormSilu vs groupNorm then silu");
        assertClose(fused, legacy, 4e-3, "fused groupNormSilu vs the earlier kernels");
        // the CPU default composition agrees too
        try (CpuBackend cpu = new CpuBackend(); Scope sc = Scope.open()) {
            float[] onCpu = cpu.groupNormSilu(Tensor.of(t, x, n, c, 32, 32), 32, Tensor.of(t, w, c), Tensor.of(t, b, c), 1e-6f).toFloatArray();
            assertClose(fused, onCpu, 4e-3, "CUDA groupNormSilu vs CPU groupNormSilu");
        }
    }

    @Test void chunkedHalfGemmAttentionMatchesReference() {
        DType t = DType.BF16;
        int b = 2, lq = 300, lk = 260, h = 3, d = 288, dv = 264;   // beyond the 256 of the REFERENCE kernel
        float[] q = rounded(t, randn(13, b * lq * h * d)), k = rounded(t, randn(14, b * lk * h * d)), v = rounded(t, randn(15, b * lk * h * dv));
        double scale = 1 / Math.sqrt(d);
        float[] ref = HostRef.attention(q, k, v, null, b, lq, lk, h, d, dv, scale);
        try (Scope s = Scope.open()) {
            Tensor qd = dev(ops, t, q, b, lq, h, d), kd = dev(ops, t, k, b, lk, h, d), vd = dev(ops, t, v, b, lk, h, dv);
            assertEquals(AttentionKernel.GEMM, ops.attentionKernelFor(qd, kd, vd, null));
            Tensor out = ops.attention(qd, kd, vd, null, (float) scale);
            assertEquals(Shape.of(b, lq, h, dv), out.shape());
            float[] whole = host(ops, out);
            ops.setAttentionScoreBudget(64L * lk * 4);   // 64-row chunks, the last one 44 rows
            float[] chunked;
            try {
                chunked = host(ops, ops.attention(qd, kd, vd, null, (float) scale));
            } finally {
                ops.setAttentionScoreBudget(256L << 20);
            }
            assertClose(whole, ref, tol(t), "bf16 GEMM attention, d=288 dv=264, B=2 H=3");
            assertClose(chunked, ref, tol(t), "chunked bf16 GEMM attention");
            assertClose(chunked, whole, 2e-3, "chunked vs whole bf16 GEMM attention (products may pick other algorithms)");
        }
    }
}
