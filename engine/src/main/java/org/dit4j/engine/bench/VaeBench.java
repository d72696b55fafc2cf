package org.dit4j.engine.bench;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaProfiler;
import org.dit4j.engine.Backends;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;
import org.dit4j.models.vae.wan.WanVae;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.vae.wan.WanVaeWeights;

import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * Times the full-size Flux VAE (random bf16 weights) on a GPU: decode of a [1, 16, r/8, r/8] latent and encode of a
 * [1, 3, r, r] image, median wall time over {@code iters} runs after warm-up, peak device memory, and (with
 * {@code --profile}) where the device time goes per launch. With {@code --compare} every measurement also runs
 * with the backend's VAE fast paths off ({@link CudaBackend#setVaeFastPaths}), and the decoded images of both are
 * compared (rel-L2, max |Δ|).
 *
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.VaeBench [--resolution 1024] [--iters 10] [--profile] [--compare]
 *     [--no-encode] [--json FILE] [--wan HxWxF]</pre>
 * {@code --wan 480x832x3} also times the Wan2.1 VAE decode (random bf16 weights) of a [1, 16, F, H/8, W/8] latent,
 * one latent frame per chunk (the 3-D convolutions), with the same comparison.
 */
public final class VaeBench {

    /** One measured configuration; times in ms (median), memory in GB. */
    public record Result(String what, String paths, int resolution, double ms, double peakGb, double firstMs) {}

    private final PrintStream out;

    public VaeBench(PrintStream out) { this.out = out; }

    public static void main(String[] args) throws Exception {
        int res = 1024, iters = 10;
        boolean profile = false, compare = false, encode = true;
        Path json = null;
        String wan = null;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--resolution" -> res = Integer.parseInt(args[++i]);
                case "--iters" -> iters = Integer.parseInt(args[++i]);
                case "--profile" -> profile = true;
                case "--compare" -> compare = true;
                case "--no-encode" -> encode = false;
                case "--json" -> json = Path.of(args[++i]);
                case "--wan" -> wan = args[++i];
                default -> throw new IllegalArgumentException("unknown argument " + args[i]
                        + "; use --resolution N --iters N --profile --compare --no-encode --json FILE");
            }
        }
        VaeBench b = new VaeBench(System.out);
        List<Result> rs = new ArrayList<>(b.run(res, iters, profile, compare, encode));
        if (wan != null) {
            String[] p = wan.split("x");
            rs.addAll(b.runWan(Integer.parseInt(p[0]), Integer.parseInt(p[1]), Integer.parseInt(p[2]), Math.max(1, iters / 3), compare));
        }
        if (json != null) writeJson(json, rs);
    }

    public List<Result> run(int res, int iters, boolean profile, boolean compare, boolean encode) {
        if (res % 8 != 0) throw new IllegalArgumentException("resolution must be a multiple of 8, got " + res);
        List<Result> results = new ArrayList<>();
        try (Ops ops = Backends.open("cuda")) {
            if (!(ops instanceof CudaBackend cuda))
                throw new IllegalStateException("VaeBench needs a GPU: " + Backends.unavailableReason());
            out.println("backend: " + ops.name());
            VaeConfig cfg = VaeConfig.flux();
            long t0 = System.nanoTime();
            AutoencoderKL vae;
            try (RandomWeightSource src = new RandomWeightSource(VaeWeights.expectedShapes(cfg), DType.BF16, 7)) {
                vae = AutoencoderKL.load(ops, src, cfg, DType.BF16);
            }
            ops.synchronize();
            out.printf(Locale.ROOT, "Flux VAE (%s), random bf16 weights ready in %.1f s%n", cfg, (System.nanoTime() - t0) / 1e9);
            try (vae; Scope scope = Scope.open()) {
                TorchGenerator g = new TorchGenerator(1234);
                int lat = res / cfg.downFactor();
                Tensor z = upload(ops, g.randn(1, cfg.latentChannels(), lat, lat));
                Tensor img = upload(ops, g.rand(1, 3, res, res));
                Tensor imgPm = ops.sub(ops.scale(img, 2f), ops.upload(Tensor.of(new float[] {1f}, 1)));   // [-1, 1]
                boolean[] modes = compare ? new boolean[] {false, true} : new boolean[] {true};
                Tensor[] decoded = new Tensor[2];
                for (boolean fast : modes) {
                    cuda.setVaeFastPaths(fast);
                    String paths = fast ? "new" : "legacy";
                    Result d = measure(cuda, "decode " + lat + "x" + lat + " -> " + res + "²", paths, res, iters, profile,
                            () -> vae.decodeRaw(z));
                    results.add(d);
                    decoded[fast ? 1 : 0] = vae.decodeRaw(z);
                    if (encode) {
                        results.add(measure(cuda, "encode " + res + "² -> " + lat + "x" + lat, paths, res, iters, profile,
                                () -> vae.encodeMoments(imgPm)));
                    }
                }
                cuda.setVaeFastPaths(true);
                if (compare) {
                    float[] legacy = ops.toHost(decoded[0]).toFloatArray(), fast = ops.toHost(decoded[1]).toFloatArray();
                    compareOut("decoded image", legacy, fast);
                    // the same weights and latent in f32 (im2col + f32 GEMMs, f32 attention): which bf16 path is closer?
                    AutoencoderKL f32;
                    try (RandomWeightSource src = new RandomWeightSource(VaeWeights.expectedShapes(cfg), DType.BF16, 7)) {
                        f32 = AutoencoderKL.load(ops, src, cfg, DType.F32);
                    }
                    try (f32) {
                        float[] ref = ops.toHost(f32.decodeRaw(ops.cast(z, DType.F32))).toFloatArray();
                        out.printf(Locale.ROOT, "decoded image vs the f32 decode: legacy bf16 rel-L2 %.3e, new bf16 rel-L2 %.3e%n",
                                relL2(legacy, ref), relL2(fast, ref));
                    }
                }
            }
        }
        out.println();
        out.println("| what | paths | ms (median) | first call ms | peak GB |");
        out.println("|---|---|---|---|---|");
        for (Result r : results)
            out.printf(Locale.ROOT, "| %s | %s | %.1f | %.0f | %.2f |%n", r.what(), r.paths(), r.ms(), r.firstMs(), r.peakGb());
        return results;
    }

    /** Wan2.1 VAE decode of a random [1, 16, frames, h/8, w/8] latent (random bf16 weights), fast paths on (and off). */
    public List<Result> runWan(int h, int w, int frames, int iters, boolean compare) {
        List<Result> results = new ArrayList<>();
        try (Ops ops = Backends.open("cuda")) {
            if (!(ops instanceof CudaBackend cuda))
                throw new IllegalStateException("VaeBench needs a GPU: " + Backends.unavailableReason());
            WanVaeConfig cfg = WanVaeConfig.wan21();
            WanVae vae;
            try (RandomWeightSource src = new RandomWeightSource(WanVaeWeights.expectedShapes(cfg), DType.BF16, 9)) {
                vae = WanVae.load(ops, src, cfg, DType.BF16);
            }
            try (vae; Scope scope = Scope.open()) {
                long sf = cfg.spatialFactor();
                Tensor z = upload(ops, new TorchGenerator(99).randn(1, cfg.zDim(), frames, h / sf, w / sf));
                boolean[] modes = compare ? new boolean[] {false, true} : new boolean[] {true};
                float[][] decoded = new float[2][];
                for (boolean fast : modes) {
                    cuda.setVaeFastPaths(fast);
                    String what = "wan decode " + frames + "x" + (h / sf) + "x" + (w / sf) + " -> " + cfg.videoFrames(frames) + "x" + h + "x" + w;
                    results.add(measure(cuda, what, fast ? "new" : "legacy", h, iters, false, () -> vae.decode(z)));
                    decoded[fast ? 1 : 0] = ops.toHost(vae.decode(z)).toFloatArray();
                }
                cuda.setVaeFastPaths(true);
                if (compare) {
                    compareOut("wan decoded video", decoded[0], decoded[1]);
                    WanVae f32;
                    try (RandomWeightSource src = new RandomWeightSource(WanVaeWeights.expectedShapes(cfg), DType.BF16, 9)) {
                        f32 = WanVae.load(ops, src, cfg, DType.F32);
                    }
                    try (f32) {
                        float[] ref = ops.toHost(f32.decode(ops.cast(z, DType.F32))).toFloatArray();
                        out.printf(Locale.ROOT, "wan decoded video vs the f32 decode: legacy bf16 rel-L2 %.3e, new bf16 rel-L2 %.3e%n",
                                relL2(decoded[0], ref), relL2(decoded[1], ref));
                    }
                }
            }
        }
        return results;
    }

    private void compareOut(String what, float[] a, float[] b) {
        double e = 0, r = 0, max = 0;
        for (int i = 0; i < a.length; i++) {
            double dd = (double) b[i] - a[i];
            e += dd * dd;
            r += (double) a[i] * a[i];
            max = Math.max(max, Math.abs(dd));
        }
        out.printf(Locale.ROOT, "%s, new vs legacy paths: rel-L2 %.3e, max |Δ| %.3e (values rms %.3f)%n", what,
                Math.sqrt(e / r), max, Math.sqrt(r / a.length));
    }

    private static double relL2(float[] a, float[] ref) {
        double e = 0, r = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - ref[i];
            e += d * d;
            r += (double) ref[i] * ref[i];
        }
        return Math.sqrt(e / r);
    }

    private interface Body { Tensor run(); }

    private Result measure(CudaBackend cuda, String what, String paths, int res, int iters, boolean profile, Body body) {
        cuda.synchronize();
        cuda.allocator().resetPeak();
        long t0 = System.nanoTime();
        body.run().close();
        cuda.synchronize();
        double firstMs = (System.nanoTime() - t0) / 1e6;
        body.run().close();
        cuda.synchronize();
        double[] ms = new double[Math.max(1, iters)];
        for (int i = 0; i < ms.length; i++) {
            long t = System.nanoTime();
            body.run().close();
            cuda.synchronize();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        double peak = cuda.allocator().peakInUseBytes() / 1e9;
        Arrays.sort(ms);
        double median = ms[ms.length / 2];
        out.printf(Locale.ROOT, "%s [%s]: median %.1f ms (min %.1f, max %.1f), first call %.0f ms, peak %.2f GB%n", what, paths,
                median, ms[0], ms[ms.length - 1], firstMs, peak);
        if (profile) printProfile(cuda, what + " [" + paths + "]", body);
        return new Result(what, paths, res, median, peak, firstMs);
    }

    private void printProfile(CudaBackend cuda, String what, Body body) {
        cuda.synchronize();
        cuda.startProfile();
        List<CudaProfiler.Span> spans;
        try {
            body.run().close();
        } finally {
            spans = cuda.stopProfile();
        }
        double sum = spans.stream().mapToDouble(CudaProfiler.Span::ms).sum();
        out.printf(Locale.ROOT, "profile %s: %d launches, %.1f ms of device time%n", what, spans.size(), sum);
        var totals = CudaProfiler.totals(spans);
        for (var e : totals.entrySet())
            out.printf(Locale.ROOT, "  %s %.2f ms (%.1f %%)%n", e.getKey(), e.getValue(), 100 * e.getValue() / sum);
        List<CudaProfiler.Group> groups = new ArrayList<>(CudaProfiler.group(spans));
        groups.sort((a, b) -> Double.compare(b.ms(), a.ms()));
        out.println("| category | launch | count | total ms | mean µs | TFLOP/s |");
        out.println("|---|---|---|---|---|---|");
        for (CudaProfiler.Group gr : groups.subList(0, Math.min(40, groups.size())))
            out.printf(Locale.ROOT, "| %s | %s | %d | %.3f | %.1f | %s |%n", gr.category(), gr.label(), gr.count(), gr.ms(),
                    1e3 * gr.ms() / gr.count(), Double.isNaN(gr.tflops()) ? "-" : String.format(Locale.ROOT, "%.0f", gr.tflops()));
        out.println();
    }

    private static Tensor upload(Ops ops, Tensor host) {
        Tensor d = ops.upload(host);
        host.close();
        Tensor c = ops.cast(d, DType.BF16);
        d.close();
        return c;
    }

    static void writeJson(Path file, List<Result> rs) throws java.io.IOException {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rs.size(); i++) {
            Result r = rs.get(i);
            sb.append(String.format(Locale.ROOT, "  {\"what\": \"%s\", \"paths\": \"%s\", \"resolution\": %d, \"ms\": %.3f, "
                    + "\"first_ms\": %.1f, \"peak_gb\": %.3f}%s%n", r.what(), r.paths(), r.resolution(), r.ms(), r.firstMs(),
                    r.peakGb(), i + 1 < rs.size() ? "," : ""));
        }
        Files.writeString(file, sb.append("]\n"));
    }
}
