package org.dit4j.engine.bench;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.Backends;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Times one Wan2.1 transformer forward (batch 1, no CFG) at a video size: eager, and replayed from a CUDA graph on
 * GPUs. Weights are random, made on the device (full-size architecture, no checkpoint): a pool of normal(0, 0.02)
 * values is uploaded once and every large weight is filled with device copies from it; the small ones (biases, norm
 * scales, modulation tables, the float32 time MLP) are made on the host.
 */
public final class WanBench {

    /** What to run: a video of {@code frames} frames of width×height pixels (VAE 4× temporal, 8×8 spatial). */
    public record Options(String model, int frames, int width, int height, String backend, int warmup, int iters,
                          boolean compile, int textTokens, long seed) {}

    /** One measured configuration. Times in milliseconds (median over the timed iterations). */
    public record Result(String model, int frames, int width, int height, long videoTokens, long textTokens, double eagerMs,
                         double graphMs, double tflop, double weightsS, double firstForwardS, double captureS, double peakGb) {
        public double bestMs() { return Double.isNaN(graphMs) ? eagerMs : graphMs; }

        public double tflops() { return tflop / bestMs() * 1e3; }

        /** "832x480x81": width × height × frames. */
        public String size() { return width + "x" + height + "x" + frames; }
    }

    /** Default video size of a model: Wan2.1-1.3B 832×480×81, Wan2.1-14B 640×640×65 (the benchmark shapes). */
    public static int[] defaultSize(String model) {
        return switch (model) {
            case "wan-1.3b" -> new int[] {832, 480, 81};
            case "wan-14b" -> new int[] {640, 640, 65};
            default -> throw new IllegalArgumentException("unknown Wan model '" + model + "': use wan-1.3b or wan-14b");
        };
    }

    /** The full-size configuration of a model name. */
    public static WanConfig config(String model) {
        return switch (model) {
            case "wan-1.3b" -> WanConfig.t2v1_3B();
            case "wan-14b" -> WanConfig.t2v14B();
            default -> throw new IllegalArgumentException("unknown Wan model '" + model + "': use wan-1.3b or wan-14b");
        };
    }

    /**
     * The reduced configuration run without a GPU: Wan's block structure (head dim 64, three RoPE axes, cross-attention
     * norm) at a size two CPU cores finish quickly.
     */
    public static WanConfig reducedConfig() {
        return new WanConfig(128, 2, 2, 256, 16, 16, 64, 256, new int[] {1, 2, 2}, true);
    }

    private final PrintStream out;
    private boolean profile;

    public WanBench(PrintStream out) { this.out = out; }

    /** With {@code on}, the GPU run also times every launch of one eager forward and prints the breakdown. */
    public WanBench profile(boolean on) {
        this.profile = on;
        return this;
    }

    /** Latent sizes {frames, height, width} of a video (frames = 4k + 1, sides multiples of 16). */
    public static long[] latentSize(int frames, int width, int height) {
        if (frames < 1 || (frames - 1) % 4 != 0)
            throw new IllegalArgumentException("Wan frame count must be 4k + 1 (the VAE compresses time 4×), got " + frames);
        if (width % 16 != 0 || height % 16 != 0 || width <= 0 || height <= 0)
            throw new IllegalArgumentException("Wan width and height must be positive multiples of 16 (8× VAE, 2×2 patches), got "
                    + width + "×" + height);
        return new long[] {1 + (frames - 1) / 4, height / 8, width / 8};
    }

    public Result run(Options o) {
        try (Ops ops = Backends.open(o.backend())) {
            boolean gpu = ops instanceof CudaBackend;
            WanConfig cfg;
            String label = o.model();
            int frames = o.frames(), width = o.width(), height = o.height(), textTokens = o.textTokens();
            DType dtype = gpu ? DType.BF16 : DType.F32;
            if (gpu) {
                cfg = config(o.model());
            } else {
                config(o.model());                                        // validates the name
                cfg = reducedConfig();
                label = o.model() + "-reduced";
                frames = Math.min(frames, 5);
                width = Math.min(width, 64);
                height = Math.min(height, 64);
                textTokens = Math.min(textTokens, 16);
                String why = Backends.unavailableReason();
                out.println(why == null ? "Backend " + o.backend() + " is not a GPU."
                        : "No GPU: " + why.lines().findFirst().orElse("") + " (dit4j bench --backend cuda prints the full search).");
                out.println("Running a reduced Wan configuration on the CPU backend instead: " + cfg + ", " + width + "×" + height
                        + "×" + frames + ", " + textTokens + " text tokens.");
            }
            long[] lat = latentSize(frames, width, height);
            out.println("backend: " + ops.name());
            long t0 = System.nanoTime();
            WanWeights weights = randomWeights(ops, cfg, dtype, o.seed());
            ops.synchronize();
            double weightsS = (System.nanoTime() - t0) / 1e9;
            out.printf(Locale.ROOT, "model: %s, %s weights ready in %.2f s (random, %s)%n", label, dtype, weightsS,
                    gpu ? "filled on the device" : "made on the host");
            try (weights) {
                WanTransformer model = new WanTransformer(ops, weights);
                Result r = runOne(ops, model, label, frames, width, height, lat, textTokens, dtype, o, weightsS, gpu && o.compile());
                printTable(r);
                return r;
            }
        }
    }

    private Result runOne(Ops ops, WanTransformer model, String label, int frames, int width, int height, long[] lat,
                          int textTokens, DType dtype, Options o, double weightsS, boolean compile) {
        WanConfig cfg = model.config();
        int[] p = cfg.patch();
        if (lat[1] % p[1] != 0 || lat[2] % p[2] != 0 || lat[0] % p[0] != 0)
            throw new IllegalArgumentException("latent " + lat[0] + "×" + lat[1] + "×" + lat[2] + " is not a multiple of the patch size");
        long gf = lat[0] / p[0], gh = lat[1] / p[1], gw = lat[2] / p[2], tokens = gf * gh * gw;
        TorchGenerator g = new TorchGenerator(o.seed() + 1);
        try (Scope scope = Scope.open()) {
            Tensor latent = upload(ops, g.randn(1, cfg.inChannels(), lat[0], lat[1], lat[2]), dtype);
            Tensor context = upload(ops, g.randn(1, textTokens, cfg.textDim()), dtype);
            WanTransformer.Conditioning c = model.prepare(new float[] {999f}, gf, gh, gw);
            CudaBackend cuda = ops instanceof CudaBackend cb ? cb : null;
            if (cuda != null) cuda.allocator().resetPeak();

            long t0 = System.nanoTime();
            model.forward(latent, context, c).close();              // first call: kernels compile, GEMM/SDPA plans built
            ops.synchronize();
            double firstS = (System.nanoTime() - t0) / 1e9;
            double captureS = Double.NaN;
            CudaGraph graph = null;
            if (compile && cuda != null) {
                long c0 = System.nanoTime();
                Tensor[] holder = new Tensor[1];
                graph = CudaGraph.capture(cuda, () -> holder[0] = model.forward(latent, context, c));
                graph.replay();
                ops.synchronize();
                captureS = (System.nanoTime() - c0) / 1e9;
            }
            double eagerMs = time(ops, () -> model.forward(latent, context, c).close(), Math.min(o.warmup(), 1), o.iters());
            double graphMs = Double.NaN;
            if (graph != null) {
                CudaGraph gr = graph;
                graphMs = time(ops, gr::replay, o.warmup(), o.iters());
                graph.close();
            }
            if (profile && cuda != null)
                FluxBench.printProfile(out, cuda, label + " " + width + "×" + height + "×" + frames, eagerMs,
                        () -> model.forward(latent, context, c).close());
            double peakGb = cuda != null ? cuda.allocator().peakInUseBytes() / 1e9 : Double.NaN;
            WanTransformer.Flops f = model.flops(tokens, textTokens);
            Result r = new Result(label, frames, width, height, tokens, textTokens, eagerMs, graphMs, f.total() / 1e12, weightsS,
                    firstS, captureS, peakGb);
            out.printf(Locale.ROOT, "%s %s (%d tokens, %.1f TFLOP: linear %.1f, attention %.1f): eager %.1f ms%s, %.3g TFLOP/s, "
                            + "first forward %.2f s%s%n", label, r.size(), tokens, f.total() / 1e12, f.linear() / 1e12,
                    f.attention() / 1e12, eagerMs, Double.isNaN(graphMs) ? "" : String.format(Locale.ROOT, ", CUDA graph %.1f ms", graphMs),
                    r.tflops(), firstS, Double.isNaN(captureS) ? "" : String.format(Locale.ROOT, ", capture %.2f s", captureS));
            c.close();
            return r;
        }
    }

    // ------------------------------------------------------------------------------------------------ random weights

    /** Values in the device pool random large weights are copied from. */
    static final int POOL = 1 << 24;
    /** Tensors up to this many values are made on the host. */
    static final long HOST_LIMIT = 1 << 20;

    /**
     * Random weights of {@code cfg} on {@code ops}' device: normal(0, 0.02) everywhere, except norm scales 1 + normal(0,
     * 0.02) and the modulation tables normal(0, 1/√D) (diffusers' init of scale_shift_table). {@link WanWeights#keptInF32}
     * tensors are F32, the rest {@code dtype}. Tensors above {@value #HOST_LIMIT} values are filled by device copies of
     * random windows of one uploaded pool ({@value #POOL} values), so even 14B is ready in about a second on a GPU.
     */
    public static WanWeights randomWeights(Ops ops, WanConfig cfg, DType dtype, long seed) {
        return randomWeights(ops, cfg, dtype, seed, HOST_LIMIT);
    }

    /** {@link #randomWeights} with tensors above {@code hostLimit} values filled from the device pool. */
    static WanWeights randomWeights(Ops ops, WanConfig cfg, DType dtype, long seed, long hostLimit) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        boolean ok = false;
        Map<String, Shape> shapes = WanWeights.expectedShapes(cfg);
        boolean needPool = shapes.entrySet().stream().anyMatch(e -> e.getValue().numel() > hostLimit
                && (WanWeights.keptInF32(e.getKey()) ? DType.F32 : dtype) == dtype);
        Tensor pool = null;
        try {
            if (needPool) pool = makePool(ops, dtype, rnd);
            for (Map.Entry<String, Shape> e : shapes.entrySet()) {
                String name = e.getKey();
                Shape s = e.getValue();
                DType dt = WanWeights.keptInF32(name) ? DType.F32 : dtype;
                long n = s.numel();
                try (Scope scope = Scope.open()) {
                    if (n <= hostLimit || dt != dtype) {
                        boolean norm = name.contains("norm") && name.endsWith(".weight");
                        double std = name.endsWith("modulation") ? 1 / Math.sqrt(cfg.dim()) : 0.02;
                        float[] v = new float[Math.toIntExact(n)];
                        for (int i = 0; i < v.length; i++) v[i] = (float) ((norm ? 1 : 0) + std * rnd.nextGaussian());
                        Tensor host = Tensor.of(dt, v, s.dims());
                        out.put(name, scope.keep(ops.upload(host)));
                    } else {
                        Tensor t = ops.empty(dtype, s);
                        fillFromPool(ops, t.view(n), pool, rnd);
                        out.put(name, scope.keep(t));
                    }
                }
            }
            ok = true;
            return WanWeights.of(cfg, out);
        } finally {
            if (pool != null) pool.close();
            if (!ok) for (Tensor t : out.values()) t.close();
        }
    }

    private static Tensor makePool(Ops ops, DType dtype, SplittableRandom rnd) {
        float[] v = new float[POOL];
        for (int i = 0; i < POOL; i++) v[i] = (float) (0.02 * rnd.nextGaussian());
        try (Scope s = Scope.open()) {
            return s.keep(ops.upload(Tensor.of(dtype, v, POOL)));
        }
    }

    /** flat[i..] = windows of the pool starting at random offsets (multiples of 8 values, keeping 16-byte alignment). */
    private static void fillFromPool(Ops ops, Tensor flat, Tensor pool, SplittableRandom rnd) {
        long n = flat.numel(), chunk = POOL / 2, es = pool.dtype().byteSize();
        for (long off = 0; off < n; off += chunk) {
            long len = Math.min(chunk, n - off);
            long start = rnd.nextLong((POOL - len) / 8 + 1) * 8;
            Tensor window = Tensor.wrap(Shape.of(len), pool.dtype(), pool.buffer(), pool.byteOffset() + start * es);
            ops.writeSlice(flat, 0, off, window);
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private static Tensor upload(Ops ops, Tensor host, DType dtype) {
        Tensor d = ops.upload(host);
        host.close();
        if (d.dtype() == dtype) return d;
        Tensor c = ops.cast(d, dtype);
        d.close();
        return c;
    }

    /** Median wall time of {@code iters} runs (each followed by a device synchronisation), in ms. */
    static double time(Ops ops, Runnable body, int warmup, int iters) {
        for (int i = 0; i < warmup; i++) body.run();
        ops.synchronize();
        double[] ms = new double[Math.max(1, iters)];
        for (int i = 0; i < ms.length; i++) {
            long t = System.nanoTime();
            body.run();
            ops.synchronize();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        java.util.Arrays.sort(ms);
        return ms[ms.length / 2];
    }

    private void printTable(Result r) {
        out.println();
        out.println("| model | video (w×h×frames) | tokens (video+text) | eager ms | CUDA graph ms | TFLOP | TFLOP/s | weights s | first forward s | peak GB |");
        out.println("|---|---|---|---|---|---|---|---|---|---|");
        out.printf(Locale.ROOT, "| %s | %s | %d+%d | %.1f | %s | %.1f | %.0f | %.2f | %.2f | %s |%n", r.model(), r.size(),
                r.videoTokens(), r.textTokens(), r.eagerMs(),
                Double.isNaN(r.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", r.graphMs()), r.tflop(), r.tflops(),
                r.weightsS(), r.firstForwardS(), Double.isNaN(r.peakGb()) ? "-" : String.format(Locale.ROOT, "%.1f", r.peakGb()));
    }

    /** Writes the result as a one-element JSON array (NaN → null), in FluxBench's style. */
    public static void writeJson(Path file, Result r) {
        String s = String.format(Locale.ROOT, "[\n  {\"model\": \"%s\", \"size\": \"%s\", \"frames\": %d, \"width\": %d, \"height\": %d, "
                        + "\"video_tokens\": %d, \"text_tokens\": %d, \"eager_ms\": %s, \"graph_ms\": %s, \"tflop\": %s, \"tflops\": %s, "
                        + "\"weights_s\": %s, \"first_forward_s\": %s, \"capture_s\": %s, \"peak_gb\": %s}\n]\n",
                r.model(), r.size(), r.frames(), r.width(), r.height(), r.videoTokens(), r.textTokens(), num(r.eagerMs()),
                num(r.graphMs()), num(r.tflop()), num(r.tflops()), num(r.weightsS()), num(r.firstForwardS()), num(r.captureS()),
                num(r.peakGb()));
        try {
            java.nio.file.Files.writeString(file, s);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static String num(double v) { return Double.isNaN(v) || Double.isInfinite(v) ? "null" : String.format(Locale.ROOT, "%.4f", v); }
}
