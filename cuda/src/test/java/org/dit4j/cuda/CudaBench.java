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
        java.util.List<String> parts = args.length == 0 ? java.util.List.of("gemm", "attention", "elementwise") : java.util.List.of(args);
        try (CudaBackend ops = new CudaBackend(); Scope s = Scope.open()) {
            System.out.println("device: " + ops.name() + ", gemm autotune candidates: " + Integer.getInteger("dit4j.gemm.autotune", 1));
            if (parts.contains("gemm")) gemms(ops);
            if (parts.contains("attention")) attention(ops);
            if (parts.contains("elementwise")) elementwise(ops);
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
        System.out.println("| attention B×L×H×d | kernel | ms | TFLOP/s |");
        System.out.println("|---|---|---|---|");
        for (int l : new int[] {4608, 16896}) {
            int b = 1, h = 24, d = 128;
            try (Scope s = Scope.open()) {
                Tensor q = ops.upload(Tensor.of(DType.BF16, randn(4, b * l * h * d), b, l, h, d));
                Tensor k = ops.upload(Tensor.of(DType.BF16, randn(5, b * l * h * d), b, l, h, d));
                Tensor v = ops.upload(Tensor.of(DType.BF16, randn(6, b * l * h * d), b, l, h, d));
                float scale = (float) (1 / Math.sqrt(d));
                double flop = 4.0 * b * h * (double) l * l * d;
                float[] ref = null;
                if (l <= 8192) {
                    ops.setAttentionKernel(AttentionKernel.REFERENCE);
                    double ms = timeOnce(ops, () -> ops.attention(q, k, v, null, scale));
                    System.out.printf("| %d×%d×%d×%d | REFERENCE | %.3f | %.0f |%n", b, l, h, d, ms, flop / ms / 1e9);
                    ref = ops.toHost(ops.attention(q, k, v, null, scale)).toFloatArray();
                }
                ops.setAttentionKernel(AttentionKernel.FLASH_MMA);
                for (int warps : new int[] {4, 8}) {
                    ops.setFlashWarps(warps);
                    double ms = time(ops, () -> { try (Scope in = Scope.open()) { ops.attention(q, k, v, null, scale); } });
                    String err = "";
                    if (ref != null) err = String.format(" rel-L2 vs REFERENCE %.2e", HostRef.relL2(ops.toHost(ops.attention(q, k, v, null, scale)).toFloatArray(), ref));
                    System.out.printf("| %d×%d×%d×%d | FLASH_MMA w%d | %.3f | %.0f |%s%n", b, l, h, d, warps, ms, flop / ms / 1e9, err);
                }
                ops.setFlashWarps(4);
                if (AttentionKernel.CUDNN_SDPA.check(q, k, v, null) == null) {
                    ops.setAttentionKernel(AttentionKernel.CUDNN_SDPA);
                    double ms = time(ops, () -> { try (Scope in = Scope.open()) { ops.attention(q, k, v, null, scale); } });
                    String err = "";
                    if (ref != null) err = String.format(" rel-L2 vs REFERENCE %.2e", HostRef.relL2(ops.toHost(ops.attention(q, k, v, null, scale)).toFloatArray(), ref));
                    System.out.printf("| %d×%d×%d×%d | CUDNN_SDPA | %.3f | %.0f |%s%n", b, l, h, d, ms, flop / ms / 1e9, err);
                }
                ops.setAttentionKernel(null);
            }
        }
    }

    /** Memory-bound ops on a Flux 1024² activation [1, 4608, 3072] bf16: achieved GB/s (bytes read + written once). */
    static void elementwise(CudaBackend ops) {
        int l = 4608, dd = 3072;
        try (Scope s = Scope.open()) {
            Tensor x = ops.upload(Tensor.of(DType.BF16, randn(7, l * dd), 1, l, dd));
            Tensor y = ops.upload(Tensor.of(DType.BF16, randn(8, l * dd), 1, l, dd));
            Tensor sh = ops.upload(Tensor.of(DType.BF16, randn(9, dd), 1, dd));
            Tensor sc = ops.upload(Tensor.of(DType.BF16, randn(10, dd), 1, dd));
            double act = 2.0 * l * dd;
            System.out.println("| op on [1, 4608, 3072] bf16 | ms | GB/s |");
            System.out.println("|---|---|---|");
            Object[][] cases = {
                    {"copy", (Runnable) () -> ops.copy(x), 2 * act},
                    {"add", (Runnable) () -> ops.add(x, y), 3 * act},
                    {"gatedResidual", (Runnable) () -> ops.gatedResidual(x, sc, y), 3 * act},
                    {"layerNormModulate", (Runnable) () -> ops.layerNormModulate(x, sh, sc, 1e-6f), 2 * act},
                    {"gelu tanh", (Runnable) () -> ops.gelu(x, true), 2 * act},
                    {"rmsNormRope [1,4608,24,128]", null, 2 * act},
                    {"cast bf16->f32", (Runnable) () -> ops.cast(x, DType.F32), 3 * act},
                    {"permute [1,4608,24,128]->(0,2,1,3)", (Runnable) () -> ops.permute(ops.reshape(x, 1, l, 24, 128), 0, 2, 1, 3), 2 * act},
            };
            Tensor cos = ops.upload(Tensor.of(DType.F32, randn(11, l * 64), l, 64));
            Tensor sin = ops.upload(Tensor.of(DType.F32, randn(12, l * 64), l, 64));
            Tensor w = ops.upload(Tensor.of(DType.BF16, randn(13, 128), 128));
            cases[5][1] = (Runnable) () -> ops.rmsNormRope(ops.reshape(x, 1, l, 24, 128), w, 1e-6f, cos, sin);
            for (Object[] c : cases) {
                Runnable r = (Runnable) c[1];
                double ms = time(ops, () -> { try (Scope in = Scope.open()) { r.run(); } });
                System.out.printf("| %s | %.4f | %.0f |%n", c[0], ms, (double) c[2] / ms / 1e6);
            }
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
