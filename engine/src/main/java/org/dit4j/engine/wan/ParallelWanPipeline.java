package org.dit4j.engine.wan;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CachePrograms;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.flux.ParallelFluxPipeline;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.DataParallel;
import org.dit4j.engine.parallel.MeshBackends;
import org.dit4j.engine.parallel.MeshComms;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.parallel.WanSequenceParallel;
import org.dit4j.models.sampling.FlowSampler;
import org.dit4j.models.sampling.FlowShiftSchedule;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

/**
 * A {@link WanPipeline} whose denoising loop runs on a mesh of ranks ({@link ParallelConfig}: dp × cfg × ring ×
 * ulysses), one thread per rank ({@link MeshRunner}), each with its own backend: on GPUs a {@link CudaBackend} per
 * device (rank r on cuda:r, rank 0 the pipeline's own backend) over NCCL; on the CPU a {@link CpuBackend} per rank over
 * the in-process {@link LocalCommunicator} (what CI runs).
 *
 * <p>Text encoding (umT5) and the VAE decode stay on rank 0 (the wrapped pipeline); the umT5 states and the noise are
 * copied to every rank through the host once per request. Each rank loads the transformer weights once onto its device
 * and keeps them while {@code keepLoaded} is set. Per step every rank: takes its dp block of the batch
 * ({@link DataParallel}), its CFG branch when cfg = 2 ({@link CfgParallel}: conditional on CFG rank 0, unconditional on
 * rank 1), its token rows of the patch grid ({@link WanSequenceParallel}: Ulysses/Ring self-attention through the
 * sequence-parallel Ops, cross-attention local), gathers the velocity over the sequence group and the branches over the
 * CFG group, and applies the sampler step (UniPC or Euler, {@link WanPipeline#sampler}) to the whole latent of its dp
 * block, so the sampler state is the same on every rank of a group; the batch is gathered over dp at the end and rank
 * 0's latent is decoded. On GPUs with CUDA graphs on (the pipeline's settings) the first step runs eagerly and every
 * rank then captures its transformer call per CFG branch (the Ulysses all-to-alls and ring passes inside, captured by
 * all ranks of a group at the same step) and replays it; the gathers, the guidance and the sampler step stay eager.
 * With a mesh of one rank this is the plain pipeline's arithmetic; the one-device {@link WanPipeline#generate} path is
 * untouched. Meshes over several nodes are not supported.
 *
 * <p><b>Step caches on a sequence-parallel mesh</b> ({@link #generate(WanRequest, FluxProgress, Supplier)}, TACO's
 * ParallelTeaCache): every rank runs its own policy over a {@link WanCachedTransformer} on its token rows, whose
 * velocity is the rows' head output, gathered over the sequence group and unpatchified here. TeaCache's signals (the
 * time embedding e or projection e0) are the same on every rank; First-Block Cache's relative-L1 sums are gathered over
 * the sequence group and added in rank order ({@link ParallelFluxPipeline#reduceRelL1}); MagCache measures nothing. So
 * every rank takes the same decisions and runs the same programs; with CUDA graphs on, each program (collectives
 * inside) is captured by all ranks at the same call. Meshes with cfg or dp degrees &gt; 1 are refused with a cache
 * (their branches/requests would need one decision per group).
 */
public final class ParallelWanPipeline implements AutoCloseable {
    private final WanPipeline pipeline;
    private final ParallelConfig config;
    private final List<Ops> rankOps;          // by rank
    private final List<Communicator> worlds;  // by rank
    private final List<AutoCloseable> owned;
    private final WanWeights[] weights;
    private volatile List<float[]> lastRankLatents = List.of();
    private volatile boolean lastUsedGraphs;
    private volatile WanPipeline.CacheReport lastCacheReport;
    private List<MeshComms> comms;

    /**
     * @param rankOps the backend of each rank ({@code rankOps.get(r)} runs rank r; the first normally the pipeline's
     *                own); not closed by this object
     * @param worlds  the world communicators of ranks 0..N−1 (one process); not closed by this object
     */
    public ParallelWanPipeline(WanPipeline pipeline, ParallelConfig config, List<? extends Ops> rankOps,
                               List<? extends Communicator> worlds) {
        this(pipeline, config, List.copyOf(rankOps), List.copyOf(worlds), List.of());
    }

    private ParallelWanPipeline(WanPipeline pipeline, ParallelConfig config, List<Ops> rankOps, List<Communicator> worlds,
                                List<AutoCloseable> owned) {
        if (rankOps.size() != worlds.size())
            throw new IllegalArgumentException("a mesh needs one backend per world communicator, got " + rankOps.size() + " backends for "
                    + worlds.size() + " communicators");
        MeshRunner.checkRanks(config, worlds);
        if (worlds.size() != config.worldSize())
            throw new IllegalArgumentException("a Wan mesh runs every rank in this process: " + config + " needs " + config.worldSize()
                    + " communicators, got " + worlds.size());
        config.checkHeads("the Wan2.1 transformer " + pipeline.files().description(), pipeline.transformerConfig().numHeads());
        this.pipeline = pipeline;
        this.config = config;
        List<Ops> byRank = new ArrayList<>(Collections.nCopies(config.worldSize(), (Ops) null));
        List<Communicator> worldByRank = new ArrayList<>(Collections.nCopies(config.worldSize(), (Communicator) null));
        for (int i = 0; i < worlds.size(); i++) {
            byRank.set(worlds.get(i).rank(), rankOps.get(i));
            worldByRank.set(worlds.get(i).rank(), worlds.get(i));
        }
        this.rankOps = Collections.unmodifiableList(byRank);
        this.worlds = Collections.unmodifiableList(worldByRank);
        this.owned = owned;
        this.weights = new WanWeights[config.worldSize()];
    }

    /** The mesh in one JVM on the CPU: rank 0 the pipeline's backend, ranks 1.. a new CpuBackend each, LocalCommunicator. */
    public static ParallelWanPipeline local(WanPipeline pipeline, ParallelConfig config) {
        if (!pipeline.ops().device().isCpu())
            throw new IllegalArgumentException("ParallelWanPipeline.local runs on the CPU, but the pipeline's backend is "
                    + pipeline.ops().name() + "; use ParallelWanPipeline.cuda for GPUs");
        return of(pipeline, config, MeshBackends.cpu(pipeline.ops(), config.worldSize()));
    }

    /**
     * The mesh over GPUs cuda:0 … cuda:(N−1) in one JVM with NCCL ({@code NCCL_NVLS_ENABLE=0} as set by the caller's
     * environment): rank 0 is the pipeline's backend, which must be cuda:0.
     */
    public static ParallelWanPipeline cuda(WanPipeline pipeline, ParallelConfig config) {
        config.checkHeads("the Wan2.1 transformer " + pipeline.files().description(), pipeline.transformerConfig().numHeads());
        return of(pipeline, config, MeshBackends.cuda(pipeline.ops(), config.worldSize(), "Wan pipeline"));
    }

    private static ParallelWanPipeline of(WanPipeline pipeline, ParallelConfig config, MeshBackends m) {
        try {
            return new ParallelWanPipeline(pipeline, config, m.ops(), m.worlds(), m.owned());
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    public WanPipeline pipeline() { return pipeline; }

    public ParallelConfig config() { return config; }

    /**
     * Fails with a message naming the option to change unless the request (after defaults) splits over the mesh: head
     * count by ulysses, patch-grid tokens by ring·ulysses, batch by dp, cfg 2 only with CFG (guidance &gt; 1).
     */
    public WanRequest check(WanRequest request) { return check(pipeline, config, request); }

    /** {@link #check(WanRequest)} before the mesh exists. */
    public static WanRequest check(WanPipeline pipeline, ParallelConfig config, WanRequest request) {
        WanRequest r = pipeline.withDefaults(request);
        WanConfig wc = pipeline.transformerConfig();
        config.checkHeads("the Wan2.1 " + pipeline.kind() + " transformer", wc.numHeads());
        long[] grid = grid(pipeline, r);
        config.checkSequence("the video's patch grid (" + r.width() + "×" + r.height() + ", " + r.frames() + " frames → " + grid[0]
                + " latent frames × " + grid[1] + " × " + grid[2] + "; change --frames, --width or --height)", grid[0] * grid[1] * grid[2]);
        if (r.batch() % config.dp() != 0)
            throw new IllegalArgumentException("data parallel degree " + config.dp() + " needs a batch that is a multiple of it, got --batch "
                    + r.batch() + "; use --batch " + config.dp() + " (or a multiple) or a smaller --dp");
        if (config.cfg() == 2 && !r.cfg())
            throw new IllegalArgumentException("CFG parallel (cfg 2) runs the conditional and unconditional branches on two ranks, but "
                    + "guidance " + r.guidance() + " runs no unconditional branch; use --guidance > 1 (Wan's default is 5) or --cfg-parallel 1");
        return r;
    }

    /** The patch grid (latent frames, height, width divided by the patch) of a defaulted request. */
    static long[] grid(WanPipeline pipeline, WanRequest r) {
        int[] p = pipeline.transformerConfig().patch();
        int s = pipeline.vaeConfig().spatialFactor();
        return new long[] {pipeline.vaeConfig().latentFrames(r.frames()) / p[0], r.height() / s / p[1], r.width() / s / p[2]};
    }

    /** Runs one request with the denoising loop on the mesh; rank 0's latent is decoded by the wrapped pipeline. */
    public WanPipeline.Result generate(WanRequest request, FluxProgress progress) {
        check(request);
        lastUsedGraphs = false;
        WanPipeline.Result res = pipeline.generate(request, progress, this::denoise);
        if (!lastUsedGraphs) return res;
        return new WanPipeline.Result(res.videos(), res.request(), res.schedule(), res.stageSeconds(), res.peakDeviceBytes(), true,
                res.latents(), res.cache());
    }

    /**
     * Like {@link #generate(WanRequest, FluxProgress)} with a step cache: {@code cache} makes one fresh policy per rank
     * (each rank decides on its own, from the same numbers). Needs a sequence-parallel mesh (cfg = dp = 1). The
     * result's {@link WanPipeline.Result#cache()} is rank 0's report (every rank decided the same).
     */
    public WanPipeline.Result generate(WanRequest request, FluxProgress progress, Supplier<? extends StepCache> cache) {
        if (cache == null) return generate(request, progress);
        if (config.cfg() > 1 || config.dp() > 1)
            throw new IllegalArgumentException("a step cache on a Wan mesh needs sequence parallelism only (ring/ulysses), got " + config
                    + "; use --cfg-parallel 1 --dp 1 with --cache, or leave --cache out");
        WanCachedTransformer.Signal.of(cache.get());       // fails early on a policy the Wan transformer has no signal for
        check(request);
        lastUsedGraphs = false;
        lastCacheReport = null;
        WanPipeline.Result res = pipeline.generate(request, progress, (r, schedule, latent, txt, txtNeg, p) ->
                denoise(r, schedule, latent, txt, txtNeg, p, cache));
        WanPipeline.CacheReport report = lastCacheReport;
        return new WanPipeline.Result(res.videos(), res.request(), res.schedule(), res.stageSeconds(), res.peakDeviceBytes(),
                res.usedCudaGraph() || lastUsedGraphs, res.latents(), report != null ? report : res.cache());
    }

    /**
     * {@link #generate(WanRequest, FluxProgress, Supplier)} with a copy of {@code cache}'s configuration per rank
     * (TeaCache, MagCache, First-Block Cache; the given policy's own state is not used); {@link NoCache} (or null) runs
     * {@link #generate(WanRequest, FluxProgress)}.
     */
    public WanPipeline.Result generate(WanRequest request, FluxProgress progress, StepCache cache) {
        if (cache == null || cache instanceof NoCache) return generate(request, progress);
        WanCachedTransformer.Signal.of(cache);
        return generate(request, progress, () -> freshCopy(cache));
    }

    /** A new policy with the configuration of {@code p} (one per rank). */
    static StepCache freshCopy(StepCache p) {
        return switch (p) {
            case TeaCache t -> new TeaCache(t.config());
            case MagCache m -> new MagCache(m.config());
            case FirstBlockCache f -> new FirstBlockCache(f.config());
            case NoCache n -> n;
            default -> throw new IllegalArgumentException("the Wan mesh supports TeaCache, MagCache, FirstBlockCache and NoCache, got "
                    + p.getClass().getName() + " (" + p.describe() + "); pass a Supplier of fresh policies");
        };
    }

    /**
     * {@code --verify-parallel}: runs the request on one device (the wrapped pipeline alone) and on the mesh, and compares
     * every rank's final latent with the one-device latent ({@link ParallelVerification}).
     */
    public ParallelVerification.Verification verify(WanRequest request, FluxProgress progress) {
        check(request);
        FluxProgress p = progress == null ? FluxProgress.NONE : progress;
        return ParallelVerification.verify("wan " + config, () -> pipeline.generate(request, p).latents(), () -> {
            generate(request, p);
            return lastRankLatents;
        });
    }

    /** The tolerance of {@link #verify} for this pipeline's activation dtype. */
    public double tolerance() { return ParallelVerification.tolerance(pipeline.settings().activation()); }

    /** Every rank's final latent of the last mesh run (rank order; after the dp gather each is the whole batch). */
    public List<float[]> lastRankLatents() { return lastRankLatents; }

    private record HostInputs(Tensor latent, Tensor txt, Tensor txtNeg) {}

    private Tensor denoise(WanRequest r, FlowShiftSchedule schedule, Tensor latent, Tensor txt, Tensor txtNeg, FluxProgress progress) {
        return denoise(r, schedule, latent, txt, txtNeg, progress, null);
    }

    private Tensor denoise(WanRequest r, FlowShiftSchedule schedule, Tensor latent, Tensor txt, Tensor txtNeg, FluxProgress progress,
                           Supplier<? extends StepCache> cache) {
        Ops main = pipeline.ops();
        List<Tensor> hosts = new ArrayList<>();
        Function<Tensor, Tensor> host = t -> {
            if (t == null) return null;
            Tensor h = main.device().isCpu() ? main.copy(t) : main.toHost(t);
            hosts.add(h);
            return h;
        };
        try {
            HostInputs in = new HostInputs(host.apply(latent), host.apply(txt), host.apply(txtNeg));
            loadMissingWeights();
            List<float[]> out;
            try {
                out = MeshRunner.run(meshComms(), c -> cache == null ? rankLoop(c.rank(), c, r, schedule, in, progress)
                        : cachedRankLoop(c.rank(), c, r, schedule, in, progress, cache.get()));
            } catch (RuntimeException | Error e) {
                dropMeshComms();
                throw e;
            }
            lastRankLatents = List.copyOf(out);
            Tensor h = Tensor.of(out.getFirst(), latent.shape().dims());
            if (main.device().isCpu()) return h;
            try (h) { return main.upload(h); }
        } finally {
            for (Tensor t : hosts) t.close();
        }
    }

    /** Ranks without weights get them from one opening of the checkpoint, uploaded in parallel. */
    private void loadMissingWeights() {
        List<Integer> missing = new ArrayList<>();
        for (int r = 0; r < weights.length; r++) if (weights[r] == null) missing.add(r);
        if (missing.isEmpty()) return;
        List<Ops> targets = new ArrayList<>();
        for (int r : missing) targets.add(rankOps.get(r));
        List<WanWeights> loaded = pipeline.loadTransformerWeights(targets);
        for (int i = 0; i < missing.size(); i++) weights[missing.get(i)] = loaded.get(i);
    }

    /** The ranks' axis groups, split on the first request and kept (each split is an NCCL communicator creation). */
    private synchronized List<MeshComms> meshComms() {
        if (comms == null) comms = MeshRunner.open(config, worlds);
        return comms;
    }

    private synchronized void dropMeshComms() {
        if (comms == null) return;
        for (MeshComms c : comms) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // groups of an aborted world: the failure that aborted them is the one reported
            }
        }
        comms = null;
    }

    /** One rank's denoising loop; returns the rank's final latent (the whole batch after the dp gather) on the host. */
    private float[] rankLoop(int rank, MeshComms comms, WanRequest r, FlowShiftSchedule schedule, HostInputs in, FluxProgress progress) {
        Ops ops = rankOps.get(rank);
        WanPipeline.Settings settings = pipeline.settings();
        WanConfig wc = pipeline.transformerConfig();
        DType act = settings.activation();
        WanTransformer model = WanSequenceParallel.model(ops, comms, weights[rank]);
        WanSequenceParallel sp = WanSequenceParallel.of(comms);
        DataParallel dp = DataParallel.of(comms);
        CfgParallel cfgp = CfgParallel.of(comms);
        boolean cfg = in.txtNeg() != null;
        boolean needCond = !cfgp.isParallel() || cfgp.branch() == CfgParallel.Branch.COND;
        boolean needUncond = cfg && (!cfgp.isParallel() || cfgp.branch() == CfgParallel.Branch.UNCOND);
        int steps = schedule.steps();
        FlowSampler<Tensor> sampler = WanPipeline.sampler(r, schedule, ops);
        CudaBackend cuda = settings.cudaGraphs() && ops instanceof CudaBackend cb ? cb : null;
        Tensor x = null, ctx = null, ctxNeg = null, xIn = null;
        WanTransformer.Conditioning cond = null;
        Map<CfgParallel.Branch, CudaGraph> graphs = new EnumMap<>(CfgParallel.Branch.class);
        Map<CfgParallel.Branch, Tensor> graphOut = new EnumMap<>(CfgParallel.Branch.class);
        try {
            x = batchShard(ops, dp, in.latent());                                   // F32 [b, 16, F, h, w], rank-owned
            if (needCond) ctx = embed(ops, model, dp, in.txt());
            if (needUncond) ctxNeg = embed(ops, model, dp, in.txtNeg());
            int b = Math.toIntExact(x.dim(0));
            long[] grid = grid(pipeline, r);
            cond = sp.prepare(model, WanPipeline.times(b, schedule.timestep(0)), grid[0], grid[1], grid[2]);
            if (cuda != null) xIn = ops.empty(act, x.shape());
            long start = System.nanoTime();
            for (int i = 0; i < steps; i++) {
                final int step = i;
                Tensor v;
                try (Scope st = Scope.open()) {
                    Tensor tSin = WanPipeline.timeEmbedding(ops, wc, WanPipeline.times(b, schedule.timestep(i)));
                    Tensor xa = x.dtype() == act ? x : ops.cast(x, act);
                    WanTransformer.Conditioning c;
                    Tensor input;
                    if (cuda != null) {
                        cuda.copyInto(cond.timeSin(), tSin);
                        cuda.copyInto(xIn, xa);
                        c = cond;
                        input = xIn;
                    } else {
                        c = cond.withTimeSin(tSin);
                        input = xa;
                    }
                    Tensor pos = ctx, neg = ctxNeg;
                    Function<CfgParallel.Branch, Tensor> forward = branch -> {
                        Tensor text = branch == CfgParallel.Branch.COND ? pos : neg;
                        Tensor rows;
                        if (cuda == null || step == 0) {
                            rows = model.forwardRows(input, text, c);           // eager (on a GPU: kernels compile, plans cached)
                        } else {
                            CudaGraph g = graphs.get(branch);
                            if (g == null) {
                                // every rank of a sequence group captures at the same step (collectives inside)
                                g = CudaGraph.capture(cuda, () -> graphOut.put(branch, Scope.detach(model.forwardRows(input, text, c))));
                                graphs.put(branch, g);
                            }
                            g.replay();
                            rows = graphOut.get(branch);
                        }
                        return sp.velocity(model, rows, c);                     // [b, 16, F, h, w] in the activation dtype
                    };
                    Tensor vv;
                    if (cfg) {
                        CfgParallel.Pair p = cfgp.both(forward);
                        vv = WanPipeline.guided(ops, p.cond(), p.uncond(), r.guidance());
                    } else {
                        vv = forward.apply(CfgParallel.Branch.COND);
                    }
                    v = st.keep(vv.dtype() != DType.F32 ? ops.cast(vv, DType.F32) : vv);
                }
                Tensor next;
                try {
                    next = sampler.step(v, i, x);
                } finally {
                    v.close();
                }
                x.close();
                x = next;
                ops.synchronize();
                if (rank == 0) progress.step(i + 1, steps, (System.nanoTime() - start) / 1e9);
            }
            if (rank == 0) lastUsedGraphs = !graphs.isEmpty();
            try (Scope s = Scope.open()) {
                Tensor all = dp.gatherBatch(x);
                return (ops.device().isCpu() ? all : ops.toHost(all)).toFloatArray();
            }
        } finally {
            sampler.reset();
            for (CudaGraph g : graphs.values()) g.close();
            for (Tensor t : graphOut.values()) t.close();
            for (Tensor t : new Tensor[] {x, ctx, ctxNeg, xIn}) if (t != null) t.close();
            if (cond != null) cond.close();
            if (!settings.keepLoaded()) {
                weights[rank].close();
                weights[rank] = null;
            }
        }
    }

    /**
     * One rank's denoising loop under a step cache (sequence-parallel mesh: cfg = dp = 1): the cached transformer on the
     * rank's token rows, its velocity rows gathered over the sequence group and unpatchified, the sampler step on the
     * whole latent. Returns the rank's final latent on the host.
     */
    private float[] cachedRankLoop(int rank, MeshComms comms, WanRequest r, FlowShiftSchedule schedule, HostInputs in,
                                   FluxProgress progress, StepCache policy) {
        Ops ops = rankOps.get(rank);
        WanPipeline.Settings settings = pipeline.settings();
        WanConfig wc = pipeline.transformerConfig();
        DType act = settings.activation();
        WanTransformer model = WanSequenceParallel.model(ops, comms, weights[rank]);
        WanSequenceParallel sp = WanSequenceParallel.of(comms);
        DataParallel dp = DataParallel.of(comms);
        boolean cfg = in.txtNeg() != null;
        int steps = schedule.steps();
        FlowSampler<Tensor> sampler = WanPipeline.sampler(r, schedule, ops);
        Tensor x = null, ctx = null, ctxNeg = null, xIn = null;
        WanTransformer.Conditioning cond = null;
        WanCachedTransformer ct = null;
        try {
            x = batchShard(ops, dp, in.latent());                                   // F32 [B, 16, F, h, w], rank-owned (dp = 1)
            ctx = embed(ops, model, dp, in.txt());
            if (cfg) ctxNeg = embed(ops, model, dp, in.txtNeg());
            int b = Math.toIntExact(x.dim(0));
            long[] grid = grid(pipeline, r);
            cond = sp.prepare(model, WanPipeline.times(b, schedule.timestep(0)), grid[0], grid[1], grid[2]);
            xIn = ops.empty(act, x.shape());
            Map<Branch, Tensor> texts = new EnumMap<>(Branch.class);
            texts.put(Branch.COND, ctx);
            if (cfg) texts.put(Branch.UNCOND, ctxNeg);
            org.dit4j.core.parallel.Communicator group = comms.sequence();
            WanCachedTransformer.Options options = WanCachedTransformer.Options.eager()
                    .withCudaGraphs(settings.cudaGraphs() && CachePrograms.cudaOf(ops) != null)
                    .withResidualsOnHost(settings.cacheOnHost())
                    .withReduce(rel -> ParallelFluxPipeline.reduceRelL1(ops, group, rel));
            ct = new WanCachedTransformer(ops, model, policy, "wan-mesh-" + rank, steps, xIn, cond, texts, options);
            long start = System.nanoTime();
            for (int i = 0; i < steps; i++) {
                Tensor v;
                try (Scope st = Scope.open()) {
                    Tensor tSin = WanPipeline.timeEmbedding(ops, wc, WanPipeline.times(b, schedule.timestep(i)));
                    Tensor xa = x.dtype() == act ? x : ops.cast(x, act);
                    CachePrograms.copyInto(ops, cond.timeSin(), tSin);
                    CachePrograms.copyInto(ops, xIn, xa);
                    Tensor vv = sp.velocity(model, ct.velocity(i, Branch.COND), cond);   // [B, 16, F, h, w], scope-owned
                    if (cfg) vv = WanPipeline.guided(ops, vv, sp.velocity(model, ct.velocity(i, Branch.UNCOND), cond), r.guidance());
                    v = st.keep(vv.dtype() != DType.F32 ? ops.cast(vv, DType.F32) : vv);
                }
                Tensor next;
                try {
                    next = sampler.step(v, i, x);
                } finally {
                    v.close();
                }
                x.close();
                x = next;
                ops.synchronize();
                if (rank == 0) progress.step(i + 1, steps, (System.nanoTime() - start) / 1e9);
            }
            if (rank == 0) {
                lastCacheReport = new WanPipeline.CacheReport(policy.describe(), ct.summary(), ct.trace(), null);
                lastUsedGraphs = ct.usedGraphs();
            }
            if (ops.device().isCpu()) return x.toFloatArray();
            try (Tensor h = ops.toHost(x)) { return h.toFloatArray(); }
        } finally {
            sampler.reset();
            if (ct != null) ct.close();
            for (Tensor t : new Tensor[] {x, ctx, ctxNeg, xIn}) if (t != null) t.close();
            if (cond != null) cond.close();
            if (!settings.keepLoaded()) {
                weights[rank].close();
                weights[rank] = null;
            }
        }
    }

    /** The rank's dp block of a host batch, on its device (rank-owned). */
    private static Tensor batchShard(Ops ops, DataParallel dp, Tensor host) {
        try (Scope s = Scope.open()) {
            return s.keep(dp.shardBatch(ops, ops.device().isCpu() ? host : ops.upload(host)));
        }
    }

    /** The embedded text of the rank's dp block of umT5 states [B, 512, textDim] (rank-owned). */
    private static Tensor embed(Ops ops, WanTransformer model, DataParallel dp, Tensor host) {
        try (Scope s = Scope.open()) {
            return s.keep(model.embedText(dp.shardBatch(ops, ops.device().isCpu() ? host : ops.upload(host))));
        }
    }


    /** Releases the ranks' weights and what this object opened (extra backends, NCCL communicators); not the pipeline. */
    @Override public void close() {
        dropMeshComms();
        for (int r = 0; r < weights.length; r++) {
            if (weights[r] != null) weights[r].close();
            weights[r] = null;
        }
        MeshBackends.closeAll(owned);
    }
}
