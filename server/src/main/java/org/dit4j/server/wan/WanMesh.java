package org.dit4j.server.wan;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CachePrograms;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.flux.ParallelFluxPipeline;
import org.dit4j.engine.wan.WanCachedTransformer;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.DataParallel;
import org.dit4j.engine.parallel.MeshComms;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.WanSequenceParallel;
import org.dit4j.models.nn.Timesteps;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;
import org.dit4j.server.engine.MeshWorld;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.sampling.KSamplers;
import org.dit4j.server.sampling.ModelSampling;

/**
 * Multi-GPU sampling of Wan2.1 for {@code dit4j serve} (ParallelUNETLoader with num_gpus &gt; 1): the engine's mesh
 * ({@link MeshWorld}, whose ranks the Flux mesh shares: one set of NCCL communicators per server) runs the transformer,
 * and every rank runs the same host-side ComfyUI sampler loop ({@link KSamplers}) on the whole latent with
 * {@link WanSampler}'s CFG combine, so any sampler works and all ranks hold the same x after every step.
 *
 * <p>Per model call each rank takes its data-parallel block of the batch, its CFG branch (cfg_degree 2: conditional
 * on CFG rank 0, unconditional on rank 1) and its token rows of the patch grid ({@link WanSequenceParallel}: the
 * self-attention through Ulysses / ring attention, the cross-attention to the whole text local), gathers the velocity
 * over the sequence group, the branches over the CFG group and the batch over dp. Rank 0 uses the MODEL's own weights;
 * ranks 1.. load their own copy from one opening of the model's file (in parallel), kept while the model stays the same
 * and the ranks are not rebuilt. On GPUs (unless the MODEL carries a compile setting without CUDA graphs) the first
 * model call runs eagerly and every rank then captures its transformer call per CFG branch (collectives inside, all
 * ranks at the same call) and replays it with the latent shard and time embedding written in place. Refused with the
 * setting to change:
 * pipefusion_degree &gt; 1, cfg_degree 2 without a negative branch, Ulysses degrees that do not divide the heads,
 * patch grids the sequence degree does not divide, batches dp does not divide.
 *
 * <p>A step cache (TeaCache, ParallelTeaCache, MagCache nodes with a threshold other than 0; the policy as on one GPU,
 * {@link WanSampler#stepCache}) runs on sequence-parallel layouts only (ulysses × ring = num_gpus; cfg_degree 2 or a
 * data-parallel degree are refused naming the node input): every rank runs its own copy of the policy over a
 * {@link WanCachedTransformer} on its token rows, as the engine's {@code ParallelWanPipeline} does — TeaCache's
 * signals depend on the timestep only and MagCache measures nothing, so all ranks take the same decisions and run the
 * same programs (CUDA graphs with the collectives inside, captured by all ranks at the same call); each branch's
 * velocity rows are gathered over the sequence group and unpatchified, the CFG combine and the sampler run on the host.
 */
final class WanMesh implements AutoCloseable {

    private final DType act;
    private final MeshWorld world;
    private WanWeights[] rankWeights = new WanWeights[0];
    private WanModel weightsModel;

    /** @param act the compute dtype; {@code world} the engine's ranks, shared with the Flux mesh */
    WanMesh(DType act, MeshWorld world) {
        this.act = act;
        this.world = world;
        world.onDiscard(this::releaseWeights);
    }

    /** The mesh degrees for a ParallelUNETLoader setting on a Wan model; the message names the node input to change. */
    static ParallelConfig layout(ModelRef.ParallelSetting p) { return MeshWorld.layout(p, "Wan2.1"); }

    /** The layout now built (shared with the Flux mesh; null before the first multi-GPU prompt). */
    ParallelConfig config() { return world.config(); }

    /** Fails with the node input to change unless a latent of {@code shape} and this job split over {@code want}. */
    static void check(ParallelConfig want, WanModel model, SampleJob job, long[] shape, boolean cfgPass) {
        ModelRef.ParallelSetting p = job.model().parallel();
        if (want.cfg() == 2 && !cfgPass)
            throw new IllegalArgumentException("cfg_degree 2 runs the conditional and unconditional branches on two GPUs, but this "
                    + "sampler has no negative branch (cfg 1 or BasicGuider); set cfg_degree to 1 or use CFGGuider / KSampler with cfg > 1");
        WanConfig cfg = model.config();
        if (cfg.numHeads() % want.ulysses() != 0) {
            int u = 1;
            for (int d = 1; d <= want.sequenceDegree(); d++) if (want.sequenceDegree() % d == 0 && cfg.numHeads() % d == 0) u = d;
            throw new IllegalArgumentException("the Wan2.1 transformer " + model.name() + " has " + cfg.numHeads() + " attention heads, "
                    + "which ulysses_degree " + want.ulysses() + " does not divide; set ulysses_degree to a divisor of " + cfg.numHeads()
                    + " and put the rest into ring_degree (e.g. ulysses_degree " + u + ", ring_degree " + want.sequenceDegree() / u + ")");
        }
        if (shape[0] % want.dp() != 0)
            throw new IllegalArgumentException("num_gpus " + p.gpus() + " leaves a data-parallel degree of " + want.dp() + ", which needs "
                    + "a batch that is a multiple of it; got batch_size " + shape[0] + ": raise ulysses/ring/cfg degrees or the batch size");
        int[] pt = cfg.patch();
        long f = shape[2] / pt[0], h = shape[3] / pt[1], w = shape[4] / pt[2], tokens = f * h * w;
        int s = want.sequenceDegree();
        if (tokens % s != 0)
            throw new IllegalArgumentException("the video's patch grid (" + f + " latent frames × " + h + " × " + w + " = " + tokens
                    + " tokens) does not split into ring_degree × ulysses_degree = " + s + " equal shards (sequences are split, not "
                    + "padded); change the width, height or length of the empty latent so the token count is a multiple of " + s
                    + ", or use degrees whose product divides " + tokens);
    }

    /**
     * Runs the sampler loop with the transformer on the mesh; returns rank 0's result. {@code x} is the noised latent in
     * model space [B, C, F, h, w] (not modified); {@code graphs} whether CUDA graphs are wanted (GPU, no compile setting
     * against them).
     */
    KSamplers.Result sample(WanModel model, SampleJob job, long[] shape, float[] x, boolean cfgPass, boolean graphs, StepObserver observer) {
        ParallelConfig want = layout(job.model().parallel());
        boolean cached = WanSampler.stepCache(job.model().cache(), model.config()) != null;
        if (cached && (want.cfg() > 1 || want.dp() > 1))
            throw new UnsupportedOperationException(job.model().cache().spec().kind().word() + " with num_gpus " + job.model().parallel().gpus()
                    + " needs sequence parallelism only (ulysses_degree × ring_degree = num_gpus), got " + want
                    + ": set cfg_degree 1 and the ulysses/ring degrees to num_gpus, or remove the cache node");
        check(want, model, job, shape, cfgPass);
        world.ensure(want);
        List<Ops> rankOps = world.rankOps();
        ensureWeights(model, rankOps);
        WanWeights rank0 = model.weights();
        WanWeights[] ws = rankWeights;
        return world.run(comms -> {
            int rank = comms.rank();
            WanWeights w = rank == 0 ? rank0 : ws[rank];
            StepObserver obs = rank == 0 ? observer : StepObserver.NONE;
            return cached ? cachedRankRun(rankOps.get(rank), comms, w, model.config(), job, shape, x, cfgPass, graphs, obs, want)
                    : rankRun(rankOps.get(rank), comms, w, model.config(), job, shape, x, cfgPass, graphs, obs);
        });
    }

    /**
     * One rank's sampler run under a step cache (sequence-parallel layout: cfg = dp = 1): its own policy over the cached
     * transformer on the rank's token rows; per model call the latent and time input written into the fixed tensors,
     * each branch's velocity rows from {@code velocity(step, branch)} gathered over the sequence group and unpatchified.
     */
    private KSamplers.Result cachedRankRun(Ops o, MeshComms comms, WanWeights w, WanConfig cfg, SampleJob job, long[] shape, float[] x,
                                           boolean cfgPass, boolean graphs, StepObserver observer, ParallelConfig layout) {
        StepCache policy = WanSampler.stepCache(job.model().cache(), cfg);      // one per rank: policies keep request state
        WanTransformer tr = WanSequenceParallel.model(o, comms, w);
        WanSequenceParallel sp = WanSequenceParallel.of(comms);
        ModelSampling sampling = job.model().sampling();
        int b = (int) shape[0];
        Map<Branch, Tensor> texts = new EnumMap<>(Branch.class);
        WanTransformer.Conditioning cond = null;
        Tensor xIn = null;
        WanCachedTransformer ct = null;
        try {
            texts.put(Branch.COND, WanSampler.embedText(o, act, tr, cfg, job.positive(), b));
            if (cfgPass) texts.put(Branch.UNCOND, WanSampler.embedText(o, act, tr, cfg, job.negative(), b));
            int[] p = cfg.patch();
            cond = sp.prepare(tr, times(b, sampling.timestep(job.sigmas()[0])), shape[2] / p[0], shape[3] / p[1], shape[4] / p[2]);
            xIn = o.empty(act, Shape.of(shape));
            org.dit4j.core.parallel.Communicator group = comms.sequence();
            WanCachedTransformer.Options options = WanCachedTransformer.Options.eager()
                    .withCudaGraphs(graphs && CachePrograms.cudaOf(o) != null)
                    .withReduce(rel -> ParallelFluxPipeline.reduceRelL1(o, group, rel));
            ct = new WanCachedTransformer(o, tr, policy, "serve-wan-mesh-" + comms.rank(), job.sigmas().length - 1, xIn, cond, texts, options);
            WanCachedTransformer cache = ct;
            WanTransformer.Conditioning c0 = cond;
            Tensor in0 = xIn;
            float cfgScale = (float) job.cfg();
            KSamplers.Denoiser denoiser = (xi, i, sigma) -> {
                float t = sampling.timestep(sigma);
                float[][] vel = new float[cfgPass ? 2 : 1][];
                try (Scope s = Scope.open()) {
                    Tensor host = Timesteps.embedding(times(b, t), cfg.freqDim(), 1f);
                    Tensor tSin = o.device().isCpu() ? host : o.upload(host);
                    Tensor xs = o.upload(Tensor.of(xi, shape));
                    CachePrograms.copyInto(o, c0.timeSin(), tSin);
                    CachePrograms.copyInto(o, in0, act == DType.F32 ? xs : o.cast(xs, act));
                    for (int k = 0; k < vel.length; k++) {
                        Tensor v = sp.velocity(tr, cache.velocity(i, k == 0 ? Branch.COND : Branch.UNCOND), c0);   // [B, C, F, h, w]
                        Tensor f = v.dtype() == DType.F32 ? v : o.cast(v, DType.F32);
                        Tensor h = f.device().isCpu() ? f : o.toHost(f);
                        vel[k] = h.toFloatArray();
                    }
                }
                return WanSampler.guided(xi, sigma, vel, cfgScale);
            };
            KSamplers.Result r = KSamplers.sample(job.sampler(), denoiser, x, job.sigmas(),
                    (i, n, d) -> observer.stepDone(i, n, LatentFormat.WAN21, d, shape));
            if (comms.rank() == 0) {
                WanSampler.lastCacheSummary = ct.summary();
                System.out.println("dit4j server: " + policy.describe() + " on " + layout + ": cond " + ct.summary().computed(Branch.COND)
                        + "/" + ct.summary().totalSteps() + " steps computed");
            }
            return r;
        } finally {
            if (ct != null) ct.close();
            for (Tensor t : texts.values()) t.close();
            if (xIn != null) xIn.close();
            if (cond != null) cond.close();
        }
    }

    /** One rank's sampler run: the velocity of its rows and branch per model call, gathered; the sampler on the host. */
    private KSamplers.Result rankRun(Ops o, MeshComms comms, WanWeights w, WanConfig cfg, SampleJob job, long[] shape, float[] x,
                                     boolean cfgPass, boolean graphs, StepObserver observer) {
        WanTransformer tr = WanSequenceParallel.model(o, comms, w);
        WanSequenceParallel sp = WanSequenceParallel.of(comms);
        DataParallel dp = DataParallel.of(comms);
        CfgParallel cfgp = CfgParallel.of(comms);
        ModelSampling sampling = job.model().sampling();
        int b = (int) shape[0];
        int[] mine = dp.range(b);
        int bl = mine[1] - mine[0];
        long[] local = shape.clone();
        local[0] = bl;
        int per = Math.toIntExact(shape[1] * shape[2] * shape[3] * shape[4]);
        boolean needCond = !cfgp.isParallel() || cfgp.branch() == CfgParallel.Branch.COND;
        boolean needUncond = cfgPass && (!cfgp.isParallel() || cfgp.branch() == CfgParallel.Branch.UNCOND);
        CudaBackend cuda = graphs && o instanceof CudaBackend cb ? cb : null;
        Map<CfgParallel.Branch, Tensor> texts = new EnumMap<>(CfgParallel.Branch.class);
        Map<CfgParallel.Branch, CudaGraph> captured = new EnumMap<>(CfgParallel.Branch.class);
        Map<CfgParallel.Branch, Tensor> graphOut = new EnumMap<>(CfgParallel.Branch.class);
        WanTransformer.Conditioning cond = null;
        Tensor xIn = null;
        int[] calls = {0};
        try {
            if (needCond) texts.put(CfgParallel.Branch.COND, WanSampler.embedText(o, act, tr, cfg, job.positive(), bl));
            if (needUncond) texts.put(CfgParallel.Branch.UNCOND, WanSampler.embedText(o, act, tr, cfg, job.negative(), bl));
            int[] p = cfg.patch();
            cond = sp.prepare(tr, times(bl, sampling.timestep(job.sigmas()[0])), shape[2] / p[0], shape[3] / p[1], shape[4] / p[2]);
            if (cuda != null) xIn = o.empty(act, Shape.of(local));
            WanTransformer.Conditioning c0 = cond;
            Tensor in0 = xIn;
            float cfgScale = (float) job.cfg();
            KSamplers.Denoiser denoiser = (xi, i, sigma) -> {
                int call = calls[0]++;
                float t = sampling.timestep(sigma);
                float[][] vel = new float[cfgPass ? 2 : 1][];
                try (Scope s = Scope.open()) {
                    Tensor host = Timesteps.embedding(times(bl, t), cfg.freqDim(), 1f);
                    Tensor tSin = o.device().isCpu() ? host : o.upload(host);
                    Tensor xs = o.upload(Tensor.of(Arrays.copyOfRange(xi, mine[0] * per, mine[1] * per), local));
                    Tensor xa = act == DType.F32 ? xs : o.cast(xs, act);
                    WanTransformer.Conditioning c;
                    Tensor input;
                    if (cuda != null) {
                        cuda.copyInto(c0.timeSin(), tSin);
                        cuda.copyInto(in0, xa);
                        c = c0;
                        input = in0;
                    } else {
                        c = c0.withTimeSin(tSin);
                        input = xa;
                    }
                    Function<CfgParallel.Branch, Tensor> forward = which -> {
                        Tensor text = texts.get(which);
                        Tensor rows;
                        if (cuda == null || call == 0) {
                            rows = tr.forwardRows(input, text, c);            // eager (on a GPU: kernels compile, plans cached)
                        } else {
                            CudaGraph g = captured.get(which);
                            if (g == null) {
                                // every rank of a sequence group captures at the same call (collectives inside); the output
                                // outlives the step's scope and CfgParallel.both's inner one
                                g = CudaGraph.capture(cuda, () -> graphOut.put(which, Scope.detach(tr.forwardRows(input, text, c))));
                                captured.put(which, g);
                            }
                            g.replay();
                            rows = graphOut.get(which);
                        }
                        return sp.velocity(tr, rows, c);                      // [bl, C, F, h, w] in the activation dtype
                    };
                    Tensor[] v;
                    if (cfgPass) {
                        CfgParallel.Pair pair = cfgp.both(forward);
                        v = new Tensor[] {pair.cond(), pair.uncond()};
                    } else {
                        v = new Tensor[] {forward.apply(CfgParallel.Branch.COND)};
                    }
                    for (int k = 0; k < v.length; k++) {
                        Tensor all = dp.gatherBatch(v[k]);
                        Tensor f = all.dtype() == DType.F32 ? all : o.cast(all, DType.F32);
                        Tensor h = f.device().isCpu() ? f : o.toHost(f);
                        vel[k] = h.toFloatArray();
                    }
                }
                return WanSampler.guided(xi, sigma, vel, cfgScale);
            };
            return KSamplers.sample(job.sampler(), denoiser, x, job.sigmas(),
                    (i, n, d) -> observer.stepDone(i, n, LatentFormat.WAN21, d, shape));
        } finally {
            for (CudaGraph g : captured.values()) g.close();
            for (Tensor t : graphOut.values()) t.close();
            for (Tensor t : texts.values()) t.close();
            if (xIn != null) xIn.close();
            if (cond != null) cond.close();
        }
    }

    private static float[] times(int b, float t) {
        float[] a = new float[b];
        Arrays.fill(a, t);
        return a;
    }

    /** Loads ranks 1..'s weights of this model unless they are already loaded on the ranks now built. */
    private synchronized void ensureWeights(WanModel model, List<Ops> rankOps) {
        if (rankWeights.length != rankOps.size()) {
            releaseWeights();
            rankWeights = new WanWeights[rankOps.size()];
        }
        boolean same = model == weightsModel;
        for (int r = 1; r < rankWeights.length && same; r++) same = rankWeights[r] != null;
        if (same) return;
        releaseWeights();
        List<WanWeights> loaded = model.loadOnto(rankOps.subList(1, rankOps.size()));
        for (int r = 1; r < rankWeights.length; r++) rankWeights[r] = loaded.get(r - 1);
        weightsModel = model;
    }

    private synchronized void releaseWeights() {
        for (int r = 0; r < rankWeights.length; r++) {
            if (rankWeights[r] != null) rankWeights[r].close();
            rankWeights[r] = null;
        }
        weightsModel = null;
    }

    /** Releases the ranks' Wan weights; the ranks themselves (shared with the Flux mesh) are closed by the engine. */
    @Override public void close() { releaseWeights(); }
}
