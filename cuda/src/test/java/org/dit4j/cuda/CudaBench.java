package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

import java.util.Arrays;
import java.util.Locale;

import static org.dit4j.cuda.HostRef.randn;

/**
 * Micro-benchmarks of the CUDA backend on the device machine (run by bench/gpu-check.sh --bench): cuBLASLt GEMMs at
 * Flux.1-dev shapes and attention at 24 heads × 4608 tokens × 128. Times with device events: median of 20 timed runs
 * after 3 warm-ups, each run queued back to back. Random (never zero) inputs.
 */
public final class CudaBench {
    private CudaBench() {}

    public static void main(String[] args) {
        Locale.setDefault(Locale.ROOT);
        String why = Cuda.unavailableReason();
        if (why != null) {
            System.out.println("no GPU: " + why);
            return;
        }
        try (CudaBackend ops = new CudaBackend(); Scope s = Scope.open()) {
            System.out.println("device: " + ops.name());
            gemms(ops);
            attention(ops);
        }
    }

    /** Median milliseconds of one call of {@code body}. */
    static double time(CudaBackend ops, Runnable body) {
        CudaDriver d = CudaDriver.get();
        long e0 = d.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = d.eventCreate(CudaDriver.EVENT_DEFAULT);
        for (int i = 0; i < 3; i++) body.run();
        double[] t = new double[20];
        for (int i = 0; i < t.length; i++) {
            d.eventRecord(e0, ops.stream());
            body.run();
            d.eventRecord(e1, ops.stream());
            d.eventSynchronize(e1);
            t[i] = d.eventElapsedMs(e0, e1);
        }
        d.eventDestroy(e0);
        d.eventDestroy(e1);
        Arrays.sort(t);
        return t[t.length / 2];
    }

    static void gemms(CudaBackend ops) {
        long[][] shapes = {{4608, 3072, 3072}, {4608, 12288, 3072}, {4608, 3072, 12288}, {4608, 9216, 3072}, {4608, 21504, 3072},
                {4608, 3072, 15360}, {8192, 8192, 8192}};
        System.out.println("| GEMM M×N×K (bf16, fp32 acc) | epilogue | ms | TFLOP/s |");
        System.out.println("|---|---|---|---|");
        for (long[] sh : shapes) {
            int m = (int) sh[0], n = (int) sh[1], k = (int) sh[2];
            try (Scope s = Scope.open()) {
                Tensor x = ops.upload(Tensor.of(DType.BF16, randn(1, m * k), m, k));
                Tensor w = ops.upload(Tensor.of(DType.BF16, scaled(randn(2, n * k), 0.02f), n, k));
                Tensor b = ops.upload(Tensor.of(DType.BF16, randn(3, n), n));
                double flop = 2.0 * m * n * k;
                String[] names = {"none", "bias", "gelu_bias"};
                for (int e = 0; e < 3; e++) {
                    final int ep = e;
                    double ms = time(ops, () -> {
                        try (Scope inner = Scope.open()) {
                            if (ep == 0) ops.linear(x, w, null);
                            else if (ep == 1) ops.linear(x, w, b);
                            else ops.linearGelu(x, w, b, true);
                        }
                    });
                    System.out.printf("| %d×%d×%d | %s | %.3f | %.0f |%n", m, n, k, names[e], ms, flop / ms / 1e9);
                }
            }
        }
    }

    static void attention(CudaBackend ops) {
        int b = 1, l = 4608, h = 24, d = 128;
        try (Scope s = Scope.open()) {
            Tensor q = ops.upload(Tensor.of(DType.BF16, randn(4, b * l * h * d), b, l, h, d));
            Tensor k = ops.upload(Tensor.of(DType.BF16, randn(5, b * l * h * d), b, l, h, d));
            Tensor v = ops.upload(Tensor.of(DType.BF16, randn(6, b * l * h * d), b, l, h, d));
            float scale = (float) (1 / Math.sqrt(d));
            double flop = 4.0 * b * h * (double) l * l * d;
            System.out.println("| attention B×L×H×d | kernel | ms | TFLOP/s |");
            System.out.println("|---|---|---|---|");
            float[] ref = null;
            for (AttentionKernel kernel : AttentionKernel.values()) {
                if (kernel.check(q, k, v, null) != null) continue;
                ops.setAttentionKernel(kernel);
                double ms = kernel == AttentionKernel.REFERENCE ? timeOnce(ops, () -> ops.attention(q, k, v, null, scale))
                        : time(ops, () -> { try (Scope in = Scope.open()) { ops.attention(q, k, v, null, scale); } });
                System.out.printf("| %d×%d×%d×%d | %s | %.3f | %.0f |%n", b, l, h, d, kernel, ms, flop / ms / 1e9);
                float[] out = ops.toHost(ops.attention(q, k, v, null, scale)).toFloatArray();
                if (ref == null) ref = out;
                else System.out.printf("rel-L2(%s vs %s) = %.2e%n", kernel, AttentionKernel.values()[0], HostRef.relL2(out, ref));
            }
            ops.setAttentionKernel(null);
        }
    }

    static double timeOnce(CudaBackend ops, Runnable body) {
        CudaDriver d = CudaDriver.get();
        long e0 = d.eventCreate(CudaDriver.EVENT_DEFAULT), e1 = d.eventCreate(CudaDriver.EVENT_DEFAULT);
        try (Scope s = Scope.open()) {
            body.run();
            d.eventRecord(e0, ops.stream());
            body.run();
            d.eventRecord(e1, ops.stream());
            d.eventSynchronize(e1);
        }
        double ms = d.eventElapsedMs(e0, e1);
        d.eventDestroy(e0);
        d.eventDestroy(e1);
        return ms;
    }

    private static float[] scaled(float[] a, float s) {
        for (int i = 0; i < a.length; i++) a[i] *= s;
        return a;
    }
}
