package org.dit4j.engine.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.Function;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.cuda.NcclCommunicator;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.MeshComms;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.parallel.WanSequenceParallel;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

/**
 * Wan2.1 transformer forward (random bf16 weights, batch 1, 512 text rows) on all local GPUs of one JVM, one thread per
 * GPU, against one GPU: per-forward time of meshes (eager and CUDA graph), per-GPU peak memory, and the rel-L2 of the
 * mesh's velocity against the one-GPU velocity. Every GPU makes the same random weights from one seed
 * ({@link WanBench#randomWeights}: a host-made pool of normal values copied into the large tensors on the device, the
 * small ones made on the host), so no checkpoint is read and 14B is ready in seconds. CFG rows ("cfg=2" meshes, and the
 * one-GPU baseline "1 GPU, CFG (2 forwards)") time both branches plus the guidance v_u + 5·(v_c − v_u).
 * <pre>java ... org.dit4j.engine.bench.WanParallelBench [model=wan-1.3b|wan-14b] [iters=5] [configs=ulysses=2;ring=2;cfg=2]
 *     [json path] [size=WxHxF (default: 832x480x81 for 1.3B, 640x640x65 for 14B)]</pre>
 * A mesh's CUDA graph holds the rank's transformer call over its token rows with the Ulysses all-to-alls and ring
 * passes inside; the gather of the velocity over the sequence group (and the CFG gather and guidance) run eagerly after
 * the replay, as in {@link org.dit4j.engine.wan.ParallelWanPipeline}. Without a GPU it runs {@link WanBench#reducedConfig}
 * at 64×64×5 on in-process CPU ranks (LocalCommunicator, no graphs; a check of the code path, not a benchmark), with
 * as many ranks as the largest configuration needs.
 */
public final class WanParallelBench {
    private WanParallelBench() {}

    /** One row: times in ms (median), peak in GB (max over the ranks), rel-L2 of the eager and the graph output vs 1 GPU. */
    public record Timing(String config, int gpus, double eagerMs, double graphMs, double peakGb, double relL2, double relL2Graph) {}

    static final float GUIDANCE = 5f;
    static final int TEXT_ROWS = 512;

    public static void main(String[] args) throws Exception {
        String model = args.length > 0 ? args[0] : "wan-1.3b";
        int iters = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        String[] configs = (args.length > 2 ? args[2] : "ulysses=2;ring=2;cfg=2").split(";");
        Path json = args.length > 3 && !args[3].isBlank() && !args[3].equals("-") ? Path.of(args[3]) : null;
        int[] size = args.length > 4 ? parseSize(args[4]) : WanBench.defaultSize(model);
        Run r = run(model, iters, configs, size, System.out);
        if (json != null) Files.writeString(json, json(r.model(), r.size(), r.rows()));
    }

    /** What ran: the model label ("-reduced" on the CPU), the video size used, one row per configuration. */
    public record Run(String model, int[] size, List<Timing> rows) {}

    /** Runs the baseline and every configuration whose world size matches the ranks (GPUs, or CPU ranks without a GPU). */
    public static Run run(String model, int iters, String[] configs, int[] size, java.io.PrintStream out) throws Exception {
        boolean gpu = Cuda.deviceCount() > 0;
        WanConfig cfg;
        int width = size[0], height = size[1], frames = size[2], textRows = TEXT_ROWS;
        DType dtype;
        int n;
        if (gpu) {
            cfg = WanBench.config(model);
            dtype = DType.BF16;
            n = Cuda.deviceCount();
        } else {
            WanBench.config(model);                                    // validates the name
            cfg = WanBench.reducedConfig();
            dtype = DType.F32;
            width = Math.min(width, 64);
            height = Math.min(height, 64);
            frames = Math.min(frames, 5);
            textRows = 16;
            n = 1;
            for (String spec : configs) n = Math.max(n, ParallelConfig.parse(spec).worldSize());
            out.println("No GPU (" + Cuda.unavailableReason() + "): running " + cfg + " at " + width + "×" + height + "×" + frames
                    + " on " + n + " in-process CPU ranks, F32, no CUDA graphs (a check of the code path, not a benchmark)");
        }
        long[] lat = WanBench.latentSize(frames, width, height);
        int[] p = cfg.patch();
        long gf = lat[0] / p[0], gh = lat[1] / p[1], gw = lat[2] / p[2], tokens = gf * gh * gw;
        WanTransformer.Flops flops = WanTransformer.flops(cfg, tokens, textRows);
        out.printf(Locale.ROOT, "Wan2.1 %s %d×%d×%d: %d video tokens (%d×%d×%d) + %d text rows, %.1f TFLOP per forward, %s, %d rank(s)%n",
                model, width, height, frames, tokens, gf, gh, gw, textRows, flops.total() / 1e12, dtype, n);

        List<Ops> backends = new ArrayList<>();
        List<AutoCloseable> closing = new ArrayList<>();
        WanWeights[] weights = new WanWeights[n];
        try {
            for (int i = 0; i < n; i++) {
                Ops b = gpu ? new CudaBackend(i) : new CpuBackend(Math.max(1, Runtime.getRuntime().availableProcessors() / n));
                backends.add(b);
            }
            long t0 = System.nanoTime();
            Thread[] loaders = new Thread[n];
            Throwable[] failed = new Throwable[n];
            for (int i = 0; i < n; i++) {
                int r = i;
                loaders[i] = Thread.ofPlatform().start(() -> {
                    try {
                        weights[r] = WanBench.randomWeights(backends.get(r), cfg, dtype, 1);   // same seed: the same weights
                        backends.get(r).synchronize();
                    } catch (Throwable e) {
                        failed[r] = e;
                    }
                });
            }
            for (Thread t : loaders) t.join();
            for (int i = 0; i < n; i++)
                if (failed[i] != null) throw new IllegalStateException("random weights on rank " + i + " failed: " + failed[i].getMessage(), failed[i]);
            out.printf(Locale.ROOT, "weights: the same random %s weights made on %d device(s) in parallel in %.1f s%n", dtype, n,
                    (System.nanoTime() - t0) / 1e9);

            TorchGenerator g = new TorchGenerator(7);
            Tensor latent = g.randn(1, cfg.inChannels(), lat[0], lat[1], lat[2]);
            Tensor ctx = g.randn(1, textRows, cfg.textDim()), ctxU = g.randn(1, textRows, cfg.textDim());
            closing.add(latent);
            closing.add(ctx);
            closing.add(ctxU);
            float[] t = {999f};

            List<Timing> results = new ArrayList<>();
            // ---- one GPU: a forward, and CFG (two forwards + guidance)
            float[][] refs = new float[2][];
            {
                Ops b = backends.getFirst();
                CudaBackend cuda = b instanceof CudaBackend cb ? cb : null;
                try (Scope s = Scope.open()) {
                    WanTransformer m = new WanTransformer(b, weights[0]);
                    Tensor x = dev(b, latent, dtype), text = m.embedText(dev(b, ctx, dtype)), textU = m.embedText(dev(b, ctxU, dtype));
                    WanTransformer.Conditioning c = m.prepare(t, gf, gh, gw);
                    refs[0] = host(b, m.forwardEmbedded(x, text, c));
                    refs[1] = host(b, guided(b, m.forwardEmbedded(x, text, c), m.forwardEmbedded(x, textU, c)));
                    resetPeak(b);
                    double eager = time(b, scoped(() -> m.forwardEmbedded(x, text, c)), iters);
                    double eagerCfg = time(b, scoped(() -> guided(b, m.forwardEmbedded(x, text, c), m.forwardEmbedded(x, textU, c))), iters);
                    double graph = Double.NaN, graphCfg = Double.NaN, errG = Double.NaN, errGCfg = Double.NaN;
                    if (cuda != null) {
                        Tensor[] h = new Tensor[2];
                        try (CudaGraph gr = CudaGraph.capture(cuda, () -> h[0] = Scope.detach(m.forwardEmbedded(x, text, c)))) {
                            graph = time(b, gr::replay, iters);
                            errG = rel(refs[0], host(b, h[0]));
                        }
                        h[0].close();
                        try (CudaGraph gr = CudaGraph.capture(cuda, () -> {
                            h[0] = Scope.detach(m.forwardEmbedded(x, text, c));
                            h[1] = Scope.detach(m.forwardEmbedded(x, textU, c));
                        })) {
                            graphCfg = time(b, scoped(() -> { gr.replay(); return guided(b, h[0], h[1]); }), iters);
                            errGCfg = rel(refs[1], host(b, guided(b, h[0], h[1])));
                        }
                        h[0].close();
                        h[1].close();
                    }
                    double peak = peak(b);
                    results.add(new Timing("1 GPU", 1, eager, graph, peak, 0, errG));
                    results.add(new Timing("1 GPU, CFG (2 forwards)", 1, eagerCfg, graphCfg, peak, 0, errGCfg));
                    c.close();
                }
            }
            print(out, results.get(0));
            print(out, results.get(1));

            // ---- meshes
            long c0 = System.nanoTime();
            List<Communicator> world = gpu ? NcclCommunicator.initAll(castCuda(backends)) : List.copyOf(LocalCommunicator.group(n));
            closing.addAll(world);
            out.printf(Locale.ROOT, "%s world of %d ranks in %.2f s%n", gpu ? "NCCL " + org.dit4j.cuda.Nccl.get().version() : "local", n,
                    (System.nanoTime() - c0) / 1e9);
            for (String spec : configs) {
                ParallelConfig pc = ParallelConfig.parse(spec);
                if (pc.worldSize() != n) {
                    out.println("skipping " + spec + ": needs " + pc.worldSize() + " ranks, this machine has " + n);
                    continue;
                }
                if (cfg.numHeads() % pc.ulysses() != 0 || tokens % pc.sequenceDegree() != 0) {
                    out.println("skipping " + spec + ": " + cfg.numHeads() + " heads / " + tokens + " tokens do not split over it");
                    continue;
                }
                long gff = gf, ghh = gh, gww = gw;
                List<Timing> perRank = MeshRunner.run(pc, world, comms -> rank(comms, backends.get(comms.rank()), weights[comms.rank()],
                        latent, ctx, ctxU, dtype, t, gff, ghh, gww, refs, iters, spec, out));
                Timing r0 = perRank.getFirst();
                double peakMax = perRank.stream().mapToDouble(Timing::peakGb).max().orElse(Double.NaN);
                double errMax = perRank.stream().mapToDouble(Timing::relL2).max().orElse(Double.NaN);
                double errGMax = perRank.stream().mapToDouble(Timing::relL2Graph).max().orElse(Double.NaN);
                Timing row = new Timing(pc.toString(), n, r0.eagerMs(), r0.graphMs(), peakMax, errMax, errGMax);
                results.add(row);
                print(out, row);
            }
            table(out, results);
            return new Run(gpu ? model : model + "-reduced", new int[] {width, height, frames}, List.copyOf(results));
        } finally {
            for (WanWeights w : weights) if (w != null) w.close();
            for (AutoCloseable c : closing) c.close();
            for (Ops b : backends) b.close();
        }
    }

    /** One rank of a mesh: the velocity (gathered, guided for cfg 2), its error vs one GPU, eager and graph times. */
    private static Timing rank(MeshComms comms, Ops b, WanWeights w, Tensor latent, Tensor ctx, Tensor ctxU, DType dtype, float[] t,
                               long gf, long gh, long gw, float[][] refs, int iters, String spec, java.io.PrintStream out) throws Exception {
        ParallelConfig pc = comms.config();
        CudaBackend cuda = b instanceof CudaBackend cb ? cb : null;
        boolean cfgMode = pc.cfg() == 2;
        try (Scope s = Scope.open()) {
            WanTransformer m = WanSequenceParallel.model(b, comms, w);
            WanSequenceParallel sp = WanSequenceParallel.of(comms);
            CfgParallel cp = CfgParallel.of(comms);
            boolean cond = cp.branch() == CfgParallel.Branch.COND;
            Tensor x = dev(b, latent, dtype);
            Tensor text = m.embedText(dev(b, !cfgMode || cond ? ctx : ctxU, dtype));
            WanTransformer.Conditioning c = sp.prepare(m, t, gf, gh, gw);
            Function<Function<CfgParallel.Branch, Tensor>, Tensor> step = fwd -> cfgMode
                    ? CfgParallel.combine(b, widen(b, cp.both(fwd)), GUIDANCE) : fwd.apply(CfgParallel.Branch.COND);
            float[] ref = refs[cfgMode ? 1 : 0];
            double err = rel(ref, host(b, step.apply(br -> sp.forward(m, x, text, c))));
            resetPeak(b);
            double eager = timeMesh(b, comms.world(), scoped(() -> step.apply(br -> sp.forward(m, x, text, c))), iters);
            double graph = Double.NaN, errG = Double.NaN;
            if (cuda != null) {
                Tensor[] h = new Tensor[1];
                // every rank captures its call with the collectives inside at the same point
                try (CudaGraph gr = CudaGraph.capture(cuda, () -> h[0] = Scope.detach(m.forwardRows(x, text, c)))) {
                    Function<CfgParallel.Branch, Tensor> replay = br -> {
                        gr.replay();
                        return sp.velocity(m, h[0], c);
                    };
                    graph = timeMesh(b, comms.world(), scoped(() -> step.apply(replay)), iters);
                    errG = rel(ref, host(b, step.apply(replay)));
                } finally {
                    if (h[0] != null) h[0].close();
                }
            }
            double peak = peak(b);
            c.close();
            Timing tm = new Timing(pc + " rank " + comms.rank(), pc.worldSize(), eager, graph, peak, err, errG);
            synchronized (WanParallelBench.class) {
                out.printf(Locale.ROOT, "  %s rank %d: eager %.1f ms, graph %s ms, peak %.2f GB, rel-L2 vs 1 GPU %.2e (graph %.2e)%n", spec,
                        comms.rank(), eager, Double.isNaN(graph) ? "-" : String.format(Locale.ROOT, "%.1f", graph), peak, err, errG);
            }
            return tm;
        }
    }

    /** A run of {@code body} in its own scope: what it computes (its result included) is freed after it. */
    private static Runnable scoped(java.util.function.Supplier<Tensor> body) {
        return () -> {
            try (Scope s = Scope.open()) {
                body.get();
            }
        };
    }

    /** Both predictions in F32 (the guidance is computed in F32 as in the pipeline). */
    private static CfgParallel.Pair widen(Ops b, CfgParallel.Pair p) {
        return new CfgParallel.Pair(f32(b, p.cond()), f32(b, p.uncond()));
    }

    private static Tensor guided(Ops b, Tensor cond, Tensor uncond) {
        try (Scope s = Scope.open()) {
            return s.keep(CfgParallel.combine(b, new CfgParallel.Pair(f32(b, cond), f32(b, uncond)), GUIDANCE));
        }
    }

    private static Tensor f32(Ops b, Tensor x) { return x.dtype() == DType.F32 ? x : b.cast(x, DType.F32); }

    private static List<CudaBackend> castCuda(List<Ops> backends) {
        List<CudaBackend> out = new ArrayList<>();
        for (Ops o : backends) out.add((CudaBackend) o);
        return out;
    }

    private static Tensor dev(Ops b, Tensor host, DType dtype) {
        try (Scope s = Scope.open()) {
            Tensor d = b.upload(host);
            return s.keep(d.dtype() == dtype ? d : b.cast(d, dtype));
        }
    }

    private static float[] host(Ops b, Tensor x) {
        if (x.device().isCpu()) return x.toFloatArray();
        try (Tensor h = b.toHost(x)) { return h.toFloatArray(); }
    }

    private static double rel(float[] ref, float[] got) { return ParallelVerification.compare("wan", ref, got).relL2(); }

    private static void resetPeak(Ops b) { if (b instanceof CudaBackend c) c.allocator().resetPeak(); }

    private static double peak(Ops b) { return b instanceof CudaBackend c ? c.allocator().peakInUseBytes() / 1e9 : Double.NaN; }

    /** Median of {@code iters} synchronised runs after 2 warm-ups, ms. */
    private static double time(Ops b, Runnable body, int iters) {
        for (int i = 0; i < 2; i++) body.run();
        b.synchronize();
        double[] ms = new double[Math.max(1, iters)];
        for (int i = 0; i < ms.length; i++) {
            long t = System.nanoTime();
            body.run();
            b.synchronize();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return ms[ms.length / 2];
    }

    /** Like {@link #time}, every run started and ended with a world barrier, so it is the slowest rank's time. */
    private static double timeMesh(Ops b, Communicator world, Runnable body, int iters) {
        for (int i = 0; i < 2; i++) body.run();
        b.synchronize();
        world.barrier();
        double[] ms = new double[Math.max(1, iters)];
        for (int i = 0; i < ms.length; i++) {
            world.barrier();
            long t = System.nanoTime();
            body.run();
            b.synchronize();
            world.barrier();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return ms[ms.length / 2];
    }

    static int[] parseSize(String s) {
        String[] p = s.toLowerCase(Locale.ROOT).split("x");
        if (p.length != 3)
            throw new IllegalArgumentException("video size must be WIDTHxHEIGHTxFRAMES, e.g. 832x480x81, got '" + s + "'");
        return new int[] {Integer.parseInt(p[0].trim()), Integer.parseInt(p[1].trim()), Integer.parseInt(p[2].trim())};
    }

    private static void print(java.io.PrintStream out, Timing t) {
        out.printf(Locale.ROOT, "%-34s eager %.1f ms, graph %s ms, peak %s GB, rel-L2 vs 1 GPU %.2e (graph %.2e)%n", t.config(),
                t.eagerMs(), Double.isNaN(t.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", t.graphMs()),
                Double.isNaN(t.peakGb()) ? "-" : String.format(Locale.ROOT, "%.2f", t.peakGb()), t.relL2(), t.relL2Graph());
    }

    private static void table(java.io.PrintStream out, List<Timing> results) {
        Timing one = results.get(0), oneCfg = results.get(1);
        out.println();
        out.println("| configuration | GPUs | eager ms | CUDA graph ms | speedup (eager) | speedup (graph) | peak GB/GPU | rel-L2 vs 1 GPU (eager / graph) |");
        out.println("|---|---|---|---|---|---|---|---|");
        for (Timing tm : results) {
            boolean cfgRow = tm.config().contains("CFG") || tm.config().contains("cfg2");
            Timing base = cfgRow ? oneCfg : one;
            boolean baseRow = tm.config().startsWith("1 GPU");
            out.printf(Locale.ROOT, "| %s | %d | %.1f | %s | %.2f× | %s | %s | %s |%n", tm.config(), tm.gpus(), tm.eagerMs(),
                    Double.isNaN(tm.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", tm.graphMs()), base.eagerMs() / tm.eagerMs(),
                    Double.isNaN(tm.graphMs()) || Double.isNaN(base.graphMs()) ? "-" : String.format(Locale.ROOT, "%.2f×", base.graphMs() / tm.graphMs()),
                    Double.isNaN(tm.peakGb()) ? "-" : String.format(Locale.ROOT, "%.1f", tm.peakGb()),
                    baseRow ? "- / " + String.format(Locale.ROOT, "%.1e", tm.relL2Graph())
                            : String.format(Locale.ROOT, "%.2e / %.2e", tm.relL2(), tm.relL2Graph()));
        }
    }

    static String json(String model, int[] size, List<Timing> rows) {
        StringBuilder sb = new StringBuilder("[\n");
        for (int i = 0; i < rows.size(); i++) {
            Timing tm = rows.get(i);
            sb.append(String.format(Locale.ROOT, "  {\"model\": \"%s\", \"size\": \"%dx%dx%d\", \"config\": \"%s\", \"gpus\": %d, \"eager_ms\": %s, "
                            + "\"graph_ms\": %s, \"peak_gb\": %s, \"rel_l2\": %s, \"rel_l2_graph\": %s}%s%n", model, size[0], size[1], size[2],
                    tm.config(), tm.gpus(), num(tm.eagerMs()), num(tm.graphMs()), num(tm.peakGb()), sci(tm.relL2()), sci(tm.relL2Graph()),
                    i + 1 < rows.size() ? "," : ""));
        }
        return sb.append("]\n").toString();
    }

    private static String num(double v) { return Double.isNaN(v) || Double.isInfinite(v) ? "null" : String.format(Locale.ROOT, "%.4f", v); }

    private static String sci(double v) { return Double.isNaN(v) || Double.isInfinite(v) ? "null" : String.format(Locale.ROOT, "%.3e", v); }
}
