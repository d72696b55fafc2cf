package org.dit4j.cuda;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.dit4j.cuda.CudaTestSupport.*;
import static org.dit4j.cuda.HostRef.randn;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The CUDA backend's own {@code attentionWithLse} (cuDNN softmax stats, flash and reference kernels) and
 * {@code mergeAttention} (kernel attention_merge) against the CPU backend on the same inputs (skipped without a GPU).
 * Reference: the CPU backend in F32 on the bf16-rounded values. Tolerances: out rel-L2 ≤ 1e-2 for bf16 (its rounding
 * and the kernels' bf16 probabilities), ≤ 1e-5 for F32; lse max |Δ| ≤ 1e-3 (f32 logits and sums on both sides); the merge
 * itself (same inputs, weights in double on both sides) rel-L2 ≤ 1e-6 and lse max |Δ| ≤ 1e-5.
 */
class CudaAttentionLseTest {
    static CudaBackend gpu;
    static CpuBackend cpu;
    Scope scope;

    @BeforeAll static void open() {
        requireCuda();
        gpu = new CudaBackend();
        cpu = new CpuBackend();
    }

    @AfterAll static void close() {
        if (gpu != null) gpu.close();
        if (cpu != null) cpu.close();
    }

    @BeforeEach void scope() { scope = Scope.open(); }

    @AfterEach void release() {
        gpu.setAttentionKernel(null);
        gpu.synchronize();
        scope.close();
    }

    private static double maxAbs(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) {
            if (a[i] == b[i]) continue;   // equal infinities too
            m = Math.max(m, Math.abs((double) a[i] - b[i]));
        }
        return m;
    }

    /** Every kernel that supports bf16 d = 64/128, lengths not multiples of the tiles, B = 2: out and lse vs the CPU. */
    @Test void everyKernelWritesTheRowLogSumExp() {
        for (int d : new int[] {64, 128}) {
            int b = 2, lq = 200, lk = 136, h = 3;
            DType t = DType.BF16;
            float[] q = rounded(t, randn(51 + d, b * lq * h * d)), k = rounded(t, randn(52 + d, b * lk * h * d)),
                    v = rounded(t, randn(53 + d, b * lk * h * d));
            for (int i = 0; i < q.length; i++) q[i] *= 2;   // sharper softmax: lse well away from log(Lk)
            float scale = (float) (1 / Math.sqrt(d));
            PartialAttention ref = cpu.attentionWithLse(Tensor.of(q, b, lq, h, d), Tensor.of(k, b, lk, h, d), Tensor.of(v, b, lk, h, d), null, scale);
            float[] refOut = ref.out().toFloatArray(), refLse = ref.lse().toFloatArray();
            Tensor dq = dev(gpu, t, q, b, lq, h, d), dk = dev(gpu, t, k, b, lk, h, d), dv = dev(gpu, t, v, b, lk, h, d);
            int tried = 0;
            for (AttentionKernel kernel : new AttentionKernel[] {AttentionKernel.CUDNN_SDPA, AttentionKernel.FLASH_MMA, AttentionKernel.REFERENCE}) {
                String why = kernel.check(dq, dk, dv, null);
                if (why != null) {
                    System.out.println("[dit4j-cuda] attentionWithLse: " + kernel + " skipped: " + why);
                    continue;
                }
                tried++;
                gpu.setAttentionKernel(kernel);
                PartialAttention p = gpu.attentionWithLse(dq, dk, dv, null, scale);
                assertEquals(DType.F32, p.lse().dtype());
                assertEquals(org.dit4j.core.tensor.Shape.of(b, h, lq), p.lse().shape());
                assertClose(host(gpu, p.out()), refOut, 1e-2, kernel + " attentionWithLse out d=" + d);
                double e = maxAbs(host(gpu, p.lse()), refLse);
                assertTrue(e <= 1e-3, kernel + " attentionWithLse lse d=" + d + ": max |Δ| " + e + " > 1e-3");
                // the out equals the kernel's plain attention
                assertClose(host(gpu, p.out()), host(gpu, gpu.attention(dq, dk, dv, null, scale)), 1e-6, kernel + " out = attention()");
            }
            assertTrue(tried >= 2, "at least the flash and reference kernels run bf16 d=" + d);
        }
    }

    /** Bias with a fully masked row: out 0 and lse −∞ on that row, the rest as the CPU. F32 (reference) and bf16 (flash). */
    @Test void biasAndFullyMaskedRows() {
        for (DType t : new DType[] {DType.F32, DType.BF16}) {
            int b = 1, lq = 70, lk = 90, h = 2, d = 64;
            float[] q = rounded(t, randn(60, b * lq * h * d)), k = rounded(t, randn(61, b * lk * h * d)), v = rounded(t, randn(62, b * lk * h * d));
            float[] bias = randn(63, lq * lk);
            for (int j = 0; j < lk; j++) bias[3 * lk + j] = Float.NEGATIVE_INFINITY;
            PartialAttention ref = cpu.attentionWithLse(Tensor.of(q, b, lq, h, d), Tensor.of(k, b, lk, h, d), Tensor.of(v, b, lk, h, d),
                    Tensor.of(bias, 1, 1, lq, lk), 0.125f);
            PartialAttention p = gpu.attentionWithLse(dev(gpu, t, q, b, lq, h, d), dev(gpu, t, k, b, lk, h, d), dev(gpu, t, v, b, lk, h, d),
                    dev(gpu, DType.F32, bias, 1, 1, lq, lk), 0.125f);
            float[] out = host(gpu, p.out()), lse = host(gpu, p.lse());
            assertClose(out, ref.out().toFloatArray(), t == DType.F32 ? 1e-5 : 1e-2, "attentionWithLse with bias " + t);
            double e = maxAbs(lse, ref.lse().toFloatArray());
            assertTrue(e <= 1e-3, "lse with bias " + t + ": max |Δ| " + e);
            for (int hi = 0; hi < h; hi++) {
                assertEquals(Float.NEGATIVE_INFINITY, lse[hi * lq + 3], "fully masked row: lse −∞ (" + t + ")");
                for (int j = 0; j < d; j++) assertEquals(0f, out[(3 * h + hi) * d + j], "fully masked row: out 0 (" + t + ")");
            }
        }
    }

    /** The merge kernel vs the CPU merge on the same partials: F32 accumulator ⊕ BF16 part, a row −∞ on one side, a row on both. */
    @Test void mergeEqualsTheCpuMerge() {
        int b = 2, lq = 37, h = 3, dv = 128;
        int n = b * lq * h * dv, rows = b * h * lq;
        float[] oa = randn(70, n), ob = rounded(DType.BF16, randn(71, n)), la = randn(72, rows), lb = randn(73, rows);
        for (int i = 0; i < rows; i++) { la[i] = 3 + 2 * la[i]; lb[i] = 3 + 2 * lb[i]; }
        la[5] = Float.NEGATIVE_INFINITY;                                   // only b contributes
        lb[9] = Float.NEGATIVE_INFINITY;                                   // only a contributes
        la[11] = lb[11] = Float.NEGATIVE_INFINITY;                         // neither: 0, −∞
        PartialAttention ca = new PartialAttention(Tensor.of(oa, b, lq, h, dv), Tensor.of(la, b, h, lq));
        PartialAttention cb = new PartialAttention(Tensor.of(DType.BF16, ob, b, lq, h, dv), Tensor.of(lb, b, h, lq));
        PartialAttention ref = cpu.mergeAttention(ca, cb);
        PartialAttention ga = new PartialAttention(dev(gpu, DType.F32, oa, b, lq, h, dv), dev(gpu, DType.F32, la, b, h, lq));
        PartialAttention gb = new PartialAttention(dev(gpu, DType.BF16, ob, b, lq, h, dv), dev(gpu, DType.F32, lb, b, h, lq));
        PartialAttention m = gpu.mergeAttention(ga, gb);
        assertEquals(DType.F32, m.out().dtype(), "output dtype is a.out's");
        float[] out = host(gpu, m.out()), lse = host(gpu, m.lse()), refLse = ref.lse().toFloatArray();
        assertClose(out, ref.out().toFloatArray(), 1e-6, "merge out");
        double e = maxAbs(lse, refLse);
        assertTrue(e <= 1e-5, "merge lse max |Δ| " + e);
        assertEquals(Float.NEGATIVE_INFINITY, lse[11], "both −∞: lse −∞");
        // row 11 of lse is (b=0, h=0, i=11): out row (0·lq + 11)·h + 0
        for (int c = 0; c < dv; c++) assertEquals(0f, out[(11 * h) * dv + c], "both −∞: out 0");
        // BF16 output when a is BF16
        PartialAttention mb = gpu.mergeAttention(gb, ga);
        assertEquals(DType.BF16, mb.out().dtype());
        assertClose(host(gpu, mb.out()), ref.out().toFloatArray(), 1e-2, "merge into bf16");
    }

    /**
     * Ring attention's arithmetic on the GPU: attention over three key blocks merged in an F32 accumulator (as
     * SequenceParallelOps does) equals attention over all keys, bf16 rel-L2 ≤ 1e-2 vs the CPU in F32, lse max |Δ| ≤ 1e-3,
     * for the automatic kernel choice (cuDNN where available) and the flash kernel.
     */
    @Test void mergedKeyBlocksEqualAttentionOverAllKeys() {
        int b = 1, lq = 192, h = 4, d = 128;
        int[] blocks = {128, 64, 200};
        int lk = 0;
        for (int x : blocks) lk += x;
        DType t = DType.BF16;
        float[] q = rounded(t, randn(80, b * lq * h * d)), k = rounded(t, randn(81, b * lk * h * d)), v = rounded(t, randn(82, b * lk * h * d));
        float scale = (float) (1 / Math.sqrt(d));
        PartialAttention ref = cpu.attentionWithLse(Tensor.of(q, b, lq, h, d), Tensor.of(k, b, lk, h, d), Tensor.of(v, b, lk, h, d), null, scale);
        Tensor dq = dev(gpu, t, q, b, lq, h, d), dk = dev(gpu, t, k, b, lk, h, d), dv = dev(gpu, t, v, b, lk, h, d);
        for (AttentionKernel kernel : new AttentionKernel[] {null, AttentionKernel.FLASH_MMA}) {
            gpu.setAttentionKernel(kernel);
            PartialAttention acc = null;
            for (int i = 0, from = 0; i < blocks.length; from += blocks[i], i++) {
                PartialAttention part = gpu.attentionWithLse(dq, gpu.slice(dk, 1, from, from + blocks[i]), gpu.slice(dv, 1, from, from + blocks[i]), null, scale);
                if (acc == null) acc = new PartialAttention(gpu.cast(part.out(), DType.F32), part.lse());
                else acc = gpu.mergeAttention(acc, part);
            }
            String what = kernel == null ? "automatic (" + gpu.attentionKernelFor(dq, dk, dv, null) + ")" : kernel.toString();
            assertClose(host(gpu, gpu.cast(acc.out(), t)), ref.out().toFloatArray(), 1e-2, "merged blocks " + what);
            double e = maxAbs(host(gpu, acc.lse()), ref.lse().toFloatArray());
            assertTrue(e <= 1e-3, "merged lse " + what + ": max |Δ| " + e);
        }
    }

    /** attentionWithLse and mergeAttention inside a CUDA graph: the replay equals the eager result bit for bit. */
    @Test void lseAndMergeInsideACudaGraph() {
        int b = 1, lq = 128, lk = 128, h = 2, d = 128;
        DType t = DType.BF16;
        Tensor dq = dev(gpu, t, rounded(t, randn(90, b * lq * h * d)), b, lq, h, d);
        Tensor dk = dev(gpu, t, rounded(t, randn(91, b * lk * h * d)), b, lk, h, d);
        Tensor dv = dev(gpu, t, rounded(t, randn(92, b * lk * h * d)), b, lk, h, d);
        java.util.function.Supplier<Tensor> step = () -> {
            PartialAttention a = gpu.attentionWithLse(dq, dk, dv, null, 0.1f);
            PartialAttention c = gpu.attentionWithLse(dq, dv, dk, null, 0.1f);
            PartialAttention m = gpu.mergeAttention(new PartialAttention(gpu.cast(a.out(), DType.F32), a.lse()), c);
            return m.out();
        };
        float[] eager = host(gpu, step.get());
        Tensor[] out = new Tensor[1];
        try (CudaGraph g = CudaGraph.capture(gpu, () -> out[0] = step.get())) {
            g.replay();
            assertArrayEquals(eager, host(gpu, out[0]), "graph replay of attentionWithLse + merge");
        }
    }
}
