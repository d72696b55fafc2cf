package org.dit4j.cli;

import java.io.PrintStream;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.engine.Backends;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.video.VideoWriter;
import org.dit4j.engine.wan.WanModelFiles;
import org.dit4j.engine.wan.ParallelWanPipeline;
import org.dit4j.engine.wan.WanModelResolver;
import org.dit4j.engine.wan.WanPipeline;
import org.dit4j.engine.wan.WanRequest;

/** {@code dit4j generate} for Wan2.1 text-to-video: the options of {@link GenerateCommand}, a video out. */
final class WanGenerate {
    private final GenerateCommand c;

    WanGenerate(GenerateCommand c) { this.c = c; }

    void run() {
        if (c.runs < 1) throw new IllegalArgumentException("--runs must be at least 1, got " + c.runs);
        if (c.image != null) throw new IllegalArgumentException("--image (Kontext editing) is for Flux; Wan image-to-video is not supported");
        if (c.trueCfg != 1f) throw new IllegalArgumentException("--true-cfg is for Flux; Wan's classifier-free guidance scale is --guidance (default 5)");
        if (!c.lora.isEmpty()) throw new IllegalArgumentException("--lora is implemented for Flux only, not for Wan2.1 yet");
        PrintStream err = System.err;
        long started = System.nanoTime();
        // the Flux default output is out.png: a Wan run writes out.mp4 unless told otherwise
        Path out = c.out.equals(Path.of("out.png")) ? Path.of("out.mp4") : c.out;
        VideoWriter.formatOf(out);   // refuse an unsupported extension before any work
        long seedValue = c.seed != null ? c.seed : new SecureRandom().nextLong() & 0x7FFFFFFFFFFFL;
        WanModelResolver resolver = new WanModelResolver(HfHub.fromEnvironment(), c.modelsDir, new GenerateCommand.DownloadBar(err));
        WanModelFiles files = resolver.resolve(c.model);
        err.println("model:   " + files.description());
        try (Ops ops = Backends.open(c.backend)) {
            WanPipeline.Settings s = WanPipeline.Settings.defaults(ops).withKeepLoaded(c.runs > 1)
                    .withCudaGraphs(!c.noCompile && !ops.device().isCpu()).withCacheOnHost(c.cacheOnHost);
            switch (c.dtype.toLowerCase(Locale.ROOT)) {
                case "auto" -> { }
                case "bf16" -> s = s.withDtype(DType.BF16);
                case "f32", "fp32" -> s = s.withDtype(DType.F32);
                default -> throw new IllegalArgumentException("--dtype must be auto, bf16 or f32, got " + c.dtype);
            }
            if (c.fp8) s = s.withWeightDtype(DType.F8_E4M3);
            err.println("backend: " + ops.name() + ", " + s.weightDtype() + " weights, " + s.activation() + " activations");
            try (WanPipeline pipe = new WanPipeline(ops, files, s)) {
                CacheOption caching = CacheOption.parse(c.cache, c.magRatios, pipe.cacheModel());
                ParallelConfig mesh = GenerateCommand.parallelConfig(c.gpus, c.ulysses, c.ring, c.cfgParallel, c.dp,
                        pipe.transformerConfig().numHeads(), "the Wan2.1 " + pipe.kind() + " transformer");
                if (c.verifyParallel && mesh == null)
                    throw new IllegalArgumentException("--verify-parallel compares one device with a mesh: give the mesh with --gpus N "
                            + "(and --ulysses/--ring/--cfg-parallel/--dp)");
                if (mesh != null && caching.calibrate())
                    throw new IllegalArgumentException("--cache magcache-calibrate runs on one device; leave out "
                            + "--gpus/--ulysses/--ring/--cfg-parallel/--dp");
                boolean cached = !(caching.policy() instanceof NoCache);
                if (mesh != null && cached && (mesh.cfg() > 1 || mesh.dp() > 1))
                    throw new IllegalArgumentException("--cache on several GPUs needs sequence parallelism only (--ulysses/--ring), got "
                            + mesh + "; use --cfg-parallel 1 --dp 1 with --cache, or leave --cache out");
                WanRequest req = new WanRequest(c.prompt, c.negativePrompt, c.width, c.height, c.frames, c.steps, c.guidance, c.shift,
                        c.sampler, seedValue, c.batch);
                WanRequest full = pipe.withDefaults(req);
                err.printf(Locale.ROOT, "wan2.1 %s: %d×%d, %d frames, %d steps, %s sampler, shift %s, guidance %s, seed %d%s%n", pipe.kind(),
                        full.width(), full.height(), full.frames(), full.steps(), full.sampler(), full.shift(), full.guidance(), seedValue,
                        c.batch > 1 ? ", batch " + c.batch : "");
                MagCacheCalibration calibration = caching.calibrate() ? pipe.magCacheCalibration(req) : null;
                if (calibration != null) err.println("cache:   recording a MagCache γ table (" + calibration.id() + ", every step computed)");
                else if (!(caching.policy() instanceof NoCache)) err.println("cache:   " + caching.policy().describe());
                ParallelWanPipeline par = null;
                if (mesh != null) {
                    ParallelWanPipeline.check(pipe, mesh, req);
                    par = ops.device().isCpu() ? ParallelWanPipeline.local(pipe, mesh) : ParallelWanPipeline.cuda(pipe, mesh);
                    err.println("mesh:    " + mesh + " (" + mesh.worldSize() + (ops.device().isCpu() ? " CPU ranks" : " GPUs")
                            + "; umT5 and VAE on rank 0)");
                    if (!ops.device().isCpu() && !"0".equals(System.getenv("NCCL_NVLS_ENABLE")))
                        err.println("note: NCCL_NVLS_ENABLE is not 0; dit4j never uses NVLink multicast, set NCCL_NVLS_ENABLE=0 "
                                + "on shared machines");
                }
                if (c.verifyParallel) {
                    try (ParallelWanPipeline p = par) {
                        ParallelVerification.Verification v = p.verify(req, new GenerateCommand.Bar(err));
                        System.out.print(v.summary());
                        double tol = p.tolerance();
                        boolean ok = v.within(tol);
                        System.out.printf(Locale.ROOT, "verify-parallel: %s (tolerance rel-L2 %.0e for %s)%n", ok ? "OK" : "FAILED", tol,
                                s.activation());
                        if (!ok) c.exitCode = 1;
                    }
                    return;
                }
                WanPipeline.Result result = null;
                try (ParallelWanPipeline p = par) {
                    for (int run = 1; run <= c.runs; run++) {
                        long r0 = System.nanoTime();
                        result = p != null ? (cached ? p.generate(req, new GenerateCommand.Bar(err),
                                        () -> CacheOption.parse(c.cache, c.magRatios, pipe.cacheModel()).policy())
                                        : p.generate(req, new GenerateCommand.Bar(err)))
                                : pipe.generate(req, new GenerateCommand.Bar(err), caching.policy(), run == 1 ? calibration : null);
                        if (c.runs > 1) {
                            err.printf(Locale.ROOT, "run %d of %d:%n", run, c.runs);
                            summary(err, result, 0, (System.nanoTime() - r0) / 1e9);
                        }
                    }
                }
                Map<String, String> text = new LinkedHashMap<>();
                text.put("prompt", full.prompt());
                text.put("negative_prompt", full.negativePrompt());
                text.put("parameters", String.format(Locale.ROOT, "model %s, %dx%d, %d frames, %d steps, %s, shift %s, guidance %s, seed %d",
                        files.description(), full.width(), full.height(), full.frames(), full.steps(), full.sampler(), full.shift(),
                        full.guidance(), seedValue));
                long w0 = System.nanoTime();
                List<List<RgbImage>> videos = result.videos();
                for (int i = 0; i < videos.size(); i++) {
                    Path p = videos.size() == 1 ? out : numbered(out, i + 1);
                    VideoWriter.write(p, videos.get(i), c.fps);
                    System.out.println(p);
                    if (c.framesDir != null) {
                        Path d = videos.size() == 1 ? c.framesDir : c.framesDir.resolve("video-" + (i + 1));
                        VideoWriter.writeFrames(d, videos.get(i), text);
                        System.out.println(d);
                    }
                }
                summary(err, result, (System.nanoTime() - w0) / 1e9, (System.nanoTime() - started) / 1e9);
                if (result.cache() != null) err.println(result.cache().summary());
                if (calibration != null) {
                    Path f = caching.calibrationFile(out, calibration.id());
                    calibration.writeJson(f);
                    err.println("MagCache γ table (" + calibration.id() + ") written to " + f + "; use it with --cache magcache --mag-ratios " + f);
                }
            }
        }
    }

    private static Path numbered(Path out, int i) {
        String n = out.getFileName().toString();
        int dot = n.lastIndexOf('.');
        return out.resolveSibling((dot > 0 ? n.substring(0, dot) : n) + "-" + i + (dot > 0 ? n.substring(dot) : ".mp4"));
    }

    private static void summary(PrintStream err, WanPipeline.Result r, double writeS, double totalS) {
        err.println("summary:");
        for (Map.Entry<String, Double> e : r.stageSeconds().entrySet())
            err.printf(Locale.ROOT, "  %-20s %8.2f s%n", e.getKey(), e.getValue());
        err.printf(Locale.ROOT, "  %-20s %8.2f s%n", "write video", writeS);
        err.printf(Locale.ROOT, "  %-20s %8.2f s%n", "total", totalS);
        double denoise = r.stageSeconds().getOrDefault("denoise", Double.NaN);
        err.printf(Locale.ROOT, "  %d steps, %.2f it/s, %d transformer forwards (%.3f s each)%s%n", r.request().steps(),
                r.request().steps() / denoise, r.forwards(), denoise / r.forwards(), r.usedCudaGraph() ? " (CUDA graph)" : "");
        if (r.peakDeviceBytes() >= 0) err.printf(Locale.ROOT, "  peak GPU memory      %8.2f GB%n", r.peakDeviceBytes() / 1e9);
        long rss = GenerateCommand.peakRssBytes();
        if (rss > 0) err.printf(Locale.ROOT, "  peak host memory     %8.2f GB (resident)%n", rss / 1e9);
    }
}
