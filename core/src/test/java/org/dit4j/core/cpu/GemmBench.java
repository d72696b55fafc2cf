package org.dit4j.core.cpu;

import java.util.Random;

/**
 * Throughput of the packed f32 GEMM (not a test). Run from the repository root after {@code ./mvnw -o -q -pl core
 * test-compile}:
 * <pre>
 * java --add-modules jdk.incubator.vector -cp core/target/classes:core/target/test-classes \
 *      org.dit4j.core.cpu.GemmBench [M N K [threads...]]
 * </pre>
 * Prints GFLOP/s (2·M·N·K per product) for each thread count: best of several timed runs after warm-up, by wall
 * clock and per CPU-second the process used (the second is the per-core rate when other processes share the cores).
 */
public final class GemmBench {
    private static final com.sun.management.OperatingSystemMXBean OS =
            (com.sun.management.OperatingSystemMXBean) java.lang.management.ManagementFactory.getOperatingSystemMXBean();

    public static void main(String[] args) {
        int m = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int n = args.length > 1 ? Integer.parseInt(args[1]) : 1024;
        int k = args.length > 2 ? Integer.parseInt(args[2]) : 1024;
        int[] threads = args.length > 3 ? java.util.Arrays.stream(args, 3, args.length).mapToInt(Integer::parseInt).toArray()
                : new int[] {1, Runtime.getRuntime().availableProcessors()};
        Random rnd = new Random(1);
        float[] a = new float[m * k], b = new float[n * k], c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) rnd.nextGaussian();
        System.out.printf("GEMM C[%d,%d] = A[%d,%d]·B[%d,%d]ᵀ, Vector API %d-bit, micro-kernel %dx%d%n",
                m, n, m, k, n, k, Gemm.SPECIES.vectorBitSize(), Gemm.MR, Gemm.NR);
        for (int t : threads) {
            try (Parallel par = new Parallel(t)) {
                double flops = 2.0 * m * n * k;
                long deadline = System.nanoTime() + 3_000_000_000L;   // warm-up
                while (System.nanoTime() < deadline)
                    Gemm.gemm(m, n, k, a, 0, k, Gemm.transposed(b, 0, k), c, 0, n, false, par);
                double best = Double.MAX_VALUE, bestCpu = Double.MAX_VALUE;
                for (int r = 0; r < 15; r++) {
                    long c0 = OS.getProcessCpuTime(), t0 = System.nanoTime();
                    Gemm.gemm(m, n, k, a, 0, k, Gemm.transposed(b, 0, k), c, 0, n, false, par);
                    best = Math.min(best, (System.nanoTime() - t0) / 1e9);
                    bestCpu = Math.min(bestCpu, (OS.getProcessCpuTime() - c0) / 1e9);
                }
                System.out.printf("%d thread%s: %.1f GFLOP/s wall (%.2f ms), %.1f GFLOP/s per CPU-second used%n",
                        t, t == 1 ? " " : "s", flops / best / 1e9, best * 1e3, flops / bestCpu / 1e9);
            }
        }
    }
}
