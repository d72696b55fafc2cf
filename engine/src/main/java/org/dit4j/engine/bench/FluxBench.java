package org.dit4j.engine.bench;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.cuda.CudaProfiler;
import org.dit4j.engine.Backends;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;

import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Times one Flux transformer forward (batch 1) at given resolutions: eager, and replayed from a CUDA graph on GPUs.
 * Weights are random (full-size architecture, no checkpoint needed) unless a checkpoint is given.
 */
public final class FluxBench {

    /** What to run. {@code weights} null = random weights of {@code model}'s architecture. */
    public record Options(String model, List<Integer> resolutions, String backend, int warmup, int iters, boolean compile,
                          int textTokens, Path weights, long seed) {}

    /** One measured configuration. Times in milliseconds (median over the timed iterations). */
    public record Result(String model, int resolution, long imageTokens, long textTokens, double eagerMs, double graphMs,
                         double tflop, double firstForwardS, double captureS, double peakGb) {
        public double bestMs() { return Double.isNaN(graphMs) ? eagerMs : graphMs; }

        public double tflops() { return tflop / bestMs() * 1e3; }
    }

    private final PrintStream out;
    private boolean profile;

    public FluxBench(PrintStream out) { this.out = out; }

    /**
     * With {@code on}, each GPU resolution also runs one eager forward with every launch timed by device events and
     * prints where the time goes (GEMM / attention / other, and per kernel or GEMM shape).
     */
    public FluxBench profile(boolean on) {
        this.profile = on;
        return this;
    }

    /** The reduced configuration run without a GPU: the Flux block structure at a size two CPU cores finish quickly. */
    public static FluxConfig reducedConfig(boolean guidance) {
        FluxConfig dev = FluxConfig.dev();
        return new FluxConfig(256, 4, 2, 4, dev.inChannels(), dev.outChannels(), 256, 64, 1024,
                FluxConfig.defaultAxesDim(64), dev.theta(), guidance);
    }

    public List<Result> run(Options o) {
        boolean guidance = switch (o.model()) {
            case "flux-dev", "flux-kontext" -> true;
            case "flux-schnell" -> false;
            default -> throw new IllegalArgumentException("unknown model '" + o.model() + "': use flux-dev, flux-schnell or flux-kontext");
        };
        List<Result> results = new ArrayList<>();
        try (Ops ops = Backends.open(o.backend())) {
            boolean gpu = ops instanceof CudaBackend;
            List<Integer> resolutions = o.resolutions();
            int textTokens = o.textTokens();
            FluxConfig cfg;
            WeightSource src;
            String label = o.model();
            DType dtype = gpu ? DType.BF16 : DType.F32;
            if (o.weights() != null) {
                src = WeightSource.open(o.weights());
                cfg = FluxConfig.detect(src);
                label = o.model() + " (" + o.weights().getFileName() + ")";
            } else if (gpu) {
                cfg = guidance ? FluxConfig.dev() : FluxConfig.schnell();
                src = new RandomWeightSource(FluxWeights.expectedShapes(cfg), DType.BF16, o.seed());
            } else {
                cfg = reducedConfig(guidance);
                src = new RandomWeightSource(FluxWeights.expectedShapes(cfg), DType.F32, o.seed());
                label = o.model() + "-reduced";
                if (resolutions.stream().anyMatch(r -> r > 512)) resolutions = List.of(256);
                textTokens = Math.min(textTokens, 64);
                out.println("No GPU: " + Backends.unavailableReason().lines().findFirst().orElse("") + " (dit4j bench --backend cuda prints the full search).");
                out.println("Running a reduced Flux configuration on the CPU backend instead: " + describe(cfg)
                        + ", " + textTokens + " text tokens, resolution " + resolutions + ".");
            }
            out.println("backend: " + ops.name());
            long t0 = System.nanoTime();
            FluxWeights weights;
            try (WeightSource s = src) {
                weights = FluxWeights.load(ops, s, cfg, dtype);
            }
            ops.synchronize();
            double loadS = (System.nanoTime() - t0) / 1e9;
            out.printf(Locale.ROOT, "model: %s, %s weights ready in %.1f s (%s)%n", label, dtype, loadS,
                    o.weights() == null ? "random, generated on the host and uploaded" : "loaded from " + o.weights());
            try (weights) {
                FluxTransformer model = new FluxTransformer(ops, weights);
                for (int res : resolutions) {
                    results.add(runOne(ops, model, label, res, textTokens, dtype, o, gpu && o.compile()));
                }
            }
        }
        printTable(results);
        return results;
    }

    private Result runOne(Ops ops, FluxTransformer model, String label, int res, int textTokens, DType dtype, Options o,
                          boolean compile) {
        if (res % 16 != 0) throw new IllegalArgumentException("resolution must be a multiple of 16, got " + res);
        FluxConfig cfg = model.config();
        long lat = res / 8, nImg = (lat / 2) * (lat / 2);
        TorchGenerator g = new TorchGenerator(o.seed() + res);
        try (Scope scope = Scope.open()) {
            Tensor img = upload(ops, g.randn(1, nImg, cfg.inChannels()), dtype);
            Tensor txt = upload(ops, g.randn(1, textTokens, cfg.contextDim()), dtype);
            Tensor y = upload(ops, g.randn(1, cfg.vecDim()), dtype);
            FluxTransformer.Conditioning c = model.prepare(new float[]{0.75f}, cfg.guidanceEmbed() ? new float[]{3.5f} : null,
                    FluxPacking.imageIds(lat, lat), FluxPacking.textIds(textTokens), dtype);
            CudaBackend cuda = ops instanceof CudaBackend cb ? cb : null;
            if (cuda != null) cuda.allocator().resetPeak();

            long t0 = System.nanoTime();
            model.forward(img, txt, y, c).close();                 // first call: kernels compile, GEMM plans tuned
            ops.synchronize();
            double captureS = Double.NaN;
            CudaGraph graph = null;
            if (compile && cuda != null) {
                long c0 = System.nanoTime();
                Tensor[] holder = new Tensor[1];
                graph = CudaGraph.capture(cuda, () -> holder[0] = model.forward(img, txt, y, c));
                graph.replay();
                ops.synchronize();
                captureS = (System.nanoTime() - c0) / 1e9;
            }
            double firstS = (System.nanoTime() - t0) / 1e9;

            double eagerMs = time(ops, () -> model.forward(img, txt, y, c).close(), Math.min(o.warmup(), 2), o.iters());
            double graphMs = Double.NaN;
            if (graph != null) {
                CudaGraph gr = graph;
                graphMs = time(ops, gr::replay, o.warmup(), o.iters());
                graph.close();
            }
            if (profile && cuda != null) printProfile(out, cuda, res + "²", eagerMs, () -> model.forward(img, txt, y, c).close());
            double peakGb = cuda != null ? cuda.allocator().peakInUseBytes() / 1e9 : Double.NaN;
            FluxTransformer.Flops f = model.flops(nImg, textTokens);
            Result r = new Result(label, res, nImg, textTokens, eagerMs, graphMs, f.total() / 1e12, firstS, captureS, peakGb);
            out.printf(Locale.ROOT, "%s %d²: eager %.1f ms%s, %.3g TFLOP/s, first forward %.2f s%n", label, res, eagerMs,
                    Double.isNaN(graphMs) ? "" : String.format(Locale.ROOT, ", CUDA graph %.1f ms", graphMs), r.tflops(), firstS);
            c.close();
            return r;
        }
    }

    /** One eager forward with every launch timed (see {@link CudaProfiler}); prints the breakdown. */
    static void printProfile(PrintStream out, CudaBackend cuda, String what, double eagerMs, Runnable forward) {
        cuda.synchronize();
        cuda.startProfile();
        long t0 = System.nanoTime();
        List<CudaProfiler.Span> spans;
        try {
            forward.run();
        } finally {
            spans = cuda.stopProfile();
        }
        double wallMs = (System.nanoTime() - t0) / 1e6;
        double sum = spans.stream().mapToDouble(CudaProfiler.Span::ms).sum();
        out.printf(Locale.ROOT, "%nprofile %s: one eager forward, %d launches each timed by device events: %.1f ms of device time "
                + "in launches (forward wall time with events %.1f ms; eager median without %.1f ms)%n", what, spans.size(), sum, wallMs, eagerMs);
        out.println("| category | ms | share | TFLOP/s |");
        out.println("|---|---|---|---|");
        var totals = CudaProfiler.totals(spans);
        for (var e : totals.entrySet()) {
            double flops = spans.stream().filter(s -> s.category() == e.getKey()).mapToDouble(CudaProfiler.Span::flops).sum();
            out.printf(Locale.ROOT, "| %s | %.2f | %.1f %% | %s |%n", e.getKey(), e.getValue(), 100 * e.getValue() / sum,
                    flops > 0 ? String.format(Locale.ROOT, "%.0f", flops / e.getValue() / 1e9) : "-");
        }
        List<CudaProfiler.Group> groups = new ArrayList<>(CudaProfiler.group(spans));
        groups.sort((a, b) -> Double.compare(b.ms(), a.ms()));
        out.println("| category | launch | count | total ms | mean µs | TFLOP/s |");
        out.println("|---|---|---|---|---|---|");
        for (CudaProfiler.Group g : groups)
            out.printf(Locale.ROOT, "| %s | %s | %d | %.3f | %.1f | %s |%n", g.category(), g.label(), g.count(), g.ms(),
                    1e3 * g.ms() / g.count(), Double.isNaN(g.tflops()) ? "-" : String.format(Locale.ROOT, "%.0f", g.tflops()));
        out.println();
    }

    private static Tensor upload(Ops ops, Tensor host, DType dtype) {
        Tensor d = ops.upload(host);
        host.close();
        if (d.dtype() == dtype) return d;
        Tensor c = ops.cast(d, dtype);
        d.close();
        return c;
    }

    /** Median wall time of {@code iters} runs (each followed by a device synchronisation), in ms. */
    private static double time(Ops ops, Runnable body, int warmup, int iters) {
        for (int i = 0; i < warmup; i++) body.run();
        ops.synchronize();
        double[] ms = new double[Math.max(1, iters)];
        for (int i = 0; i < ms.length; i++) {
            long t = System.nanoTime();
            body.run();
            ops.synchronize();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return ms[ms.length / 2];
    }

    private void printTable(List<Result> rs) {
        out.println();
        out.println("| model | resolution | tokens (img+txt) | eager ms | CUDA graph ms | TFLOP | TFLOP/s | first forward s | peak GB |");
        out.println("|---|---|---|---|---|---|---|---|---|");
        for (Result r : rs) {
            out.printf(Locale.ROOT, "| %s | %d² | %d+%d | %.1f | %s | %.3g | %.3g | %.2f | %s |%n", r.model(), r.resolution(),
                    r.imageTokens(), r.textTokens(), r.eagerMs(), Double.isNaN(r.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", r.graphMs()),
                    r.tflop(), r.tflops(), r.firstForwardS(), Double.isNaN(r.peakGb()) ? "-" : String.format(Locale.ROOT, "%.1f", r.peakGb()));
        }
    }

    /** Writes results as a JSON array (one object per resolution; NaN → null). */
    public static void writeJson(Path file, List<Result> rs) {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rs.size(); i++) {
            Result r = rs.get(i);
            sb.append(String.format(Locale.ROOT, "  {\"model\": \"%s\", \"resolution\": %d, \"image_tokens\": %d, \"text_tokens\": %d, "
                            + "\"eager_ms\": %s, \"graph_ms\": %s, \"tflop\": %s, \"tflops\": %s, \"first_forward_s\": %s, \"peak_gb\": %s}%s%n",
                    r.model(), r.resolution(), r.imageTokens(), r.textTokens(), num(r.eagerMs()), num(r.graphMs()), num(r.tflop()),
                    num(r.tflops()), num(r.firstForwardS()), num(r.peakGb()), i + 1 < rs.size() ? "," : ""));
        }
        sb.append("]\n");
        try {
            java.nio.file.Files.writeString(file, sb);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    private static String num(double v) { return Double.isNaN(v) || Double.isInfinite(v) ? "null" : String.format(Locale.ROOT, "%.4f", v); }

    private static String describe(FluxConfig c) {
        return "hidden " + c.hiddenSize() + ", " + c.numHeads() + " heads, " + c.depth() + " double + " + c.depthSingle() + " single blocks";
    }
}
