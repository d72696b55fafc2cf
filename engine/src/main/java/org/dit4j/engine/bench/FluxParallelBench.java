package org.dit4j.engine.bench;

import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.cuda.NcclCommunicator;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.FluxSequenceParallel;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CyclicBarrier;

/**
 * Flux.1-dev (random bf16 weights) forward on all local GPUs of one JVM, one thread per GPU, against one GPU:
 * per-forward time of sequence-parallel meshes (eager and CUDA graph), per-GPU peak memory, and the rel-L2 of the
 * gathered output against the one-GPU output. The random weights are generated once on the host and uploaded to
 * every GPU. Also times true-CFG guidance with the two branches on two GPUs ("cfg=2") against both on one GPU.
 * <pre>java ... org.dit4j.engine.bench.FluxParallelBench [resolution=1024] [iters=5] [configs=ulysses=2;cfg=2] [json path]</pre>
 */
public final class FluxParallelBench {
    private FluxParallelBench() {}

    record Timing(String config, double eagerMs, double graphMs, double peakGb, double relL2) {}

    /** {@code -Ddit4j.bench.profile=true}: one eager forward per configuration and rank with every launch (and NCCL call) timed. */
    private static final boolean PROFILE = Boolean.getBoolean("dit4j.bench.profile");

    public static void main(String[] args) throws Exception {
        int res = args.length > 0 ? Integer.parseInt(args[0]) : 1024;
        int iters = args.length > 1 ? Integer.parseInt(args[1]) : 5;
        String[] configs = (args.length > 2 ? args[2] : "ulysses=2;cfg=2").split(";");
        Path json = args.length > 3 ? Path.of(args[3]) : null;
        int n = Cuda.deviceCount();
        if (n < 1) throw new IllegalStateException("no GPU: " + Cuda.unavailableReason());
        FluxConfig cfg = FluxConfig.dev();
        int txtLen = 512;
        long lat = res / 8, nImg = (lat / 2) * (lat / 2);
        System.out.printf(Locale.ROOT, "Flux.1-dev %d² (%d image + %d text tokens), bf16 random weights, %d GPU(s)%n", res, nImg, txtLen, n);

        List<CudaBackend> gpus = new ArrayList<>();
        for (int i = 0; i < n; i++) gpus.add(new CudaBackend(i));
        long t0 = System.nanoTime();
        Materialized host = new Materialized(new RandomWeightSource(FluxWeights.expectedShapes(cfg), DType.BF16, 1));
        double genS = (System.nanoTime() - t0) / 1e9;
        t0 = System.nanoTime();
        FluxWeights[] weights = new FluxWeights[n];
        Thread[] loaders = new Thread[n];
        for (int i = 0; i < n; i++) {
            int r = i;
            loaders[i] = Thread.ofPlatform().start(() -> {
                weights[r] = FluxWeights.load(gpus.get(r), host, cfg, DType.BF16);
                gpus.get(r).synchronize();
            });
        }
        for (Thread t : loaders) t.join();
        for (FluxWeights w : weights) if (w == null) throw new IllegalStateException("a weight upload failed (see above)");
        host.close();
        System.out.printf(Locale.ROOT, "weights: generated once on the host in %.1f s, uploaded to %d GPU(s) in parallel in %.1f s%n",
                genS, n, (System.nanoTime() - t0) / 1e9);

        TorchGenerator g = new TorchGenerator(7);
        Tensor img = g.randn(1, nImg, cfg.inChannels()), txt = g.randn(1, txtLen, cfg.contextDim()), y = g.randn(1, cfg.vecDim());
        Tensor txtU = g.randn(1, txtLen, cfg.contextDim()), yU = g.randn(1, cfg.vecDim());
        Tensor imgIds = FluxPacking.imageIds(lat, lat), txtIds = FluxPacking.textIds(txtLen);
        float[] t = {0.75f}, guidance = {3.5f};

        List<Timing> results = new ArrayList<>();
        // ---- one GPU
        float[] ref;
        float[] refGuided;
        {
            CudaBackend b = gpus.get(0);
            try (Scope s = Scope.open()) {
                FluxTransformer m = new FluxTransformer(b, weights[0]);
                FluxTransformer.Conditioning c = m.prepare(t, guidance, imgIds, txtIds, DType.BF16);
                Tensor di = dev(b, img), dt = dev(b, txt), dy = dev(b, y), dtU = dev(b, txtU), dyU = dev(b, yU);
                ref = b.toHost(m.forward(di, dt, dy, c)).toFloatArray();
                b.allocator().resetPeak();
                double eager = time(b, () -> m.forward(di, dt, dy, c).close(), iters);
                Tensor[] holder = new Tensor[1];
                double graph;
                try (CudaGraph gr = CudaGraph.capture(b, () -> holder[0] = m.forward(di, dt, dy, c))) {
                    graph = time(b, gr::replay, iters);
                }
                double peak = b.allocator().peakInUseBytes() / 1e9;
                if (PROFILE) FluxBench.printProfile(System.out, b, "1 GPU", eager, () -> m.forward(di, dt, dy, c).close());
                results.add(new Timing("1 GPU", eager, graph, peak, 0));
                Runnable guided = () -> {
                    try (Scope g2 = Scope.open()) {
                        CfgParallel.combine(b, new CfgParallel.Pair(m.forward(di, dt, dy, c), m.forward(di, dtU, dyU, c)), 3.5f);
                    }
                };
                refGuided = guidedHost(b, m, di, dt, dy, dtU, dyU, c);
                double cfgEager = time(b, guided, iters);
                results.add(new Timing("1 GPU, true CFG (2 forwards)", cfgEager, Double.NaN, peak, 0));
                c.close();
            }
        }
        print(results.get(0));
        print(results.get(1));

        // ---- meshes
        long c0 = System.nanoTime();
        List<Communicator> world = NcclCommunicator.initAll(gpus);
        System.out.printf(Locale.ROOT, "NCCL %d, world of %d ranks in %.2f s%n", org.dit4j.cuda.Nccl.get().version(), n, (System.nanoTime() - c0) / 1e9);
        for (String spec : configs) {
            ParallelConfig pc = ParallelConfig.parse(spec);
            if (pc.worldSize() != n) {
                System.out.println("skipping " + spec + ": needs " + pc.worldSize() + " GPUs");
                continue;
            }
            boolean cfgMode = pc.cfg() == 2;
            CyclicBarrier hostBarrier = new CyclicBarrier(n);
            boolean[] captured = new boolean[n];
            String[] profiles = new String[n];
            List<Timing> perRank = MeshRunner.run(pc, world, comms -> {
                int r = comms.rank();
                CudaBackend b = gpus.get(r);
                try (Scope s = Scope.open()) {
                    FluxTransformer m = FluxSequenceParallel.model(b, comms, weights[r]);
                    FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
                    CfgParallel cp = CfgParallel.of(comms);
                    boolean cond = cp.branch() == CfgParallel.Branch.COND;
                    FluxTransformer.Conditioning c = sp.prepare(m, t, guidance, imgIds, txtIds, DType.BF16);
                    Tensor di = sp.shard(b, dev(b, img), 1);
                    Tensor dt = sp.shard(b, dev(b, !cfgMode || cond ? txt : txtU), 1);
                    Tensor dy = dev(b, !cfgMode || cond ? y : yU);
                    Runnable step = cfgMode
                            ? () -> { try (Scope g2 = Scope.open()) {
                                    CfgParallel.combine(b, cp.both(br -> m.forward(di, dt, dy, c)), 3.5f); } }
                            : () -> m.forward(di, dt, dy, c).close();
                    float[] out;
                    if (cfgMode) {
                        out = b.toHost(CfgParallel.combine(b, cp.both(br -> m.forward(di, dt, dy, c)), 3.5f)).toFloatArray();
                    } else {
                        out = b.toHost(sp.gather(m.forward(di, dt, dy, c), 1)).toFloatArray();
                    }
                    b.allocator().resetPeak();
                    double eager = timeMesh(b, comms.world(), step, iters);
                    double err = FluxReferenceCheck.relL2(out, cfgMode ? refGuided : ref);
                    System.out.printf(Locale.ROOT, "  %s rank %d: eager %.1f ms, rel-L2 vs 1 GPU %.2e%n", pc, r, eager, err);
                    if (PROFILE && !cfgMode) {
                        // every rank profiles the same forward (collectives inside); printed in rank order below
                        java.io.ByteArrayOutputStream buf = new java.io.ByteArrayOutputStream();
                        try (java.io.PrintStream ps = new java.io.PrintStream(buf, true, java.nio.charset.StandardCharsets.UTF_8)) {
                            FluxBench.printProfile(ps, b, pc + " rank " + r, eager, () -> m.forward(di, dt, dy, c).close());
                        }
                        profiles[r] = buf.toString(java.nio.charset.StandardCharsets.UTF_8);
                    }
                    double graph = Double.NaN;
                    Tensor[] holder = new Tensor[1];
                    CudaGraph gr = null;
                    if (!cfgMode) {
                        try {
                            gr = CudaGraph.capture(b, () -> holder[0] = m.forward(di, dt, dy, c));
                            captured[r] = true;
                        } catch (RuntimeException e) {
                            System.out.println("rank " + r + ": CUDA graph capture with NCCL failed: " + e.getMessage());
                        }
                    }
                    hostBarrier.await();
                    boolean all = true;
                    for (boolean x : captured) all &= x;
                    if (all && !cfgMode) graph = timeMesh(b, comms.world(), gr::replay, iters);
                    if (gr != null) gr.close();
                    double peak = b.allocator().peakInUseBytes() / 1e9;
                    c.close();
                    return new Timing(pc + " rank " + r, eager, graph, peak, err);
                }
            });
            for (Timing tm : perRank) print(tm);
            for (String prof : profiles) if (prof != null) System.out.print(prof);
            Timing r0 = perRank.get(0);
            double peakMax = perRank.stream().mapToDouble(Timing::peakGb).max().orElse(Double.NaN);
            results.add(new Timing(pc.toString(), r0.eagerMs(), r0.graphMs(), peakMax, r0.relL2()));
        }
        world.forEach(Communicator::close);
        for (FluxWeights w : weights) w.close();
        gpus.forEach(CudaBackend::close);

        Timing one = results.get(0), oneCfg = results.get(1);
        System.out.println();
        System.out.println("| configuration | GPUs | eager ms | CUDA graph ms | speedup (eager) | speedup (graph) | peak GB/GPU | rel-L2 vs 1 GPU |");
        System.out.println("|---|---|---|---|---|---|---|---|");
        for (Timing tm : results) {
            boolean cfgRow = tm.config().contains("CFG") || tm.config().contains("cfg2");
            Timing base = cfgRow ? oneCfg : one;
            int gpusUsed = tm.config().startsWith("1 GPU") ? 1 : n;
            System.out.printf(Locale.ROOT, "| %s | %d | %.1f | %s | %.2f× | %s | %.1f | %s |%n", tm.config(), gpusUsed, tm.eagerMs(),
                    Double.isNaN(tm.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", tm.graphMs()), base.eagerMs() / tm.eagerMs(),
                    Double.isNaN(tm.graphMs()) || Double.isNaN(base.graphMs()) ? "-" : String.format(Locale.ROOT, "%.2f×", base.graphMs() / tm.graphMs()),
                    tm.peakGb(), tm.config().startsWith("1 GPU") ? "-" : String.format(Locale.ROOT, "%.2e", tm.relL2()));
        }
        if (json != null) {
            StringBuilder sb = new StringBuilder("[\n");
            for (int i = 0; i < results.size(); i++) {
                Timing tm = results.get(i);
                sb.append(String.format(Locale.ROOT, "  {\"config\": \"%s\", \"resolution\": %d, \"eager_ms\": %s, \"graph_ms\": %s, \"peak_gb\": %s, \"rel_l2\": %s}%s%n",
                        tm.config(), res, num(tm.eagerMs()), num(tm.graphMs()), num(tm.peakGb()), num(tm.relL2()), i + 1 < results.size() ? "," : ""));
            }
            java.nio.file.Files.writeString(json, sb.append("]\n"));
        }
    }

    private static float[] guidedHost(CudaBackend b, FluxTransformer m, Tensor di, Tensor dt, Tensor dy, Tensor dtU, Tensor dyU,
                                      FluxTransformer.Conditioning c) {
        try (Scope s = Scope.open()) {
            return b.toHost(CfgParallel.combine(b, new CfgParallel.Pair(m.forward(di, dt, dy, c), m.forward(di, dtU, dyU, c)), 3.5f)).toFloatArray();
        }
    }

    private static void print(Timing t) {
        System.out.printf(Locale.ROOT, "%-34s eager %.1f ms, graph %s ms, peak %.1f GB, rel-L2 vs 1 GPU %.2e%n", t.config(), t.eagerMs(),
                Double.isNaN(t.graphMs()) ? "-" : String.format(Locale.ROOT, "%.1f", t.graphMs()), t.peakGb(), t.relL2());
    }

    private static Tensor dev(CudaBackend b, Tensor host) {
        Tensor d = b.upload(host);
        Tensor c = b.cast(d, DType.BF16);
        d.close();
        return c;
    }

    /** Median of {@code iters} synchronised runs after 2 warm-ups, ms. */
    private static double time(CudaBackend b, Runnable body, int iters) {
        for (int i = 0; i < 2; i++) body.run();
        b.synchronize();
        double[] ms = new double[iters];
        for (int i = 0; i < iters; i++) {
            long t = System.nanoTime();
            body.run();
            b.synchronize();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return ms[iters / 2];
    }

    /** Like {@link #time}, every run started and ended with a world barrier, so it is the slowest rank's time. */
    private static double timeMesh(CudaBackend b, Communicator world, Runnable body, int iters) {
        for (int i = 0; i < 2; i++) body.run();
        world.barrier();
        double[] ms = new double[iters];
        for (int i = 0; i < iters; i++) {
            world.barrier();
            long t = System.nanoTime();
            body.run();
            world.barrier();
            ms[i] = (System.nanoTime() - t) / 1e6;
        }
        Arrays.sort(ms);
        return ms[iters / 2];
    }

    private static String num(double v) { return Double.isNaN(v) ? "null" : String.format(Locale.ROOT, "%.4f", v); }

    /** A weight source whose tensors are generated once, kept on the host, and handed out as views (for several GPUs). */
    static final class Materialized implements WeightSource {
        private final WeightSource src;
        private final Map<String, Tensor> tensors = new TreeMap<>();

        Materialized(WeightSource src) {
            this.src = src;
            List<String> names = new ArrayList<>(src.names());
            names.parallelStream().forEach(name -> {
                Tensor x = src.tensor(name);
                synchronized (tensors) { tensors.put(name, x); }
            });
        }

        @Override public Path path() { return src.path(); }
        @Override public Set<String> names() { return src.names(); }
        @Override public boolean contains(String name) { return src.contains(name); }
        @Override public TensorInfo info(String name) { return src.info(name); }
        @Override public String dtypeName(String name) { return src.dtypeName(name); }
        @Override public Tensor tensor(String name) { Tensor t = tensors.get(name); return t.view(t.shape()); }
        @Override public Path fileOf(String name) { return src.fileOf(name); }
        @Override public Map<String, String> metadata() { return src.metadata(); }
        @Override public void close() {
            tensors.values().forEach(Tensor::close);
            tensors.clear();
            src.close();
        }
    }
}
