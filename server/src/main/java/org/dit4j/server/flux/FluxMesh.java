package org.dit4j.server.flux;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.engine.flux.ParallelFluxPipeline;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.DataParallel;
import org.dit4j.engine.parallel.FluxSequenceParallel;
import org.dit4j.engine.parallel.MeshComms;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.server.engine.MeshWorld;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.sampling.KSamplers;

/**
 * Multi-GPU sampling for {@code dit4j serve} (ParallelUNETLoader with num_gpus &gt; 1): the engine's mesh
 * ({@link ParallelConfig} dp × cfg × ring × ulysses, {@link MeshRunner} one thread per rank) runs the transformer, and
 * every rank runs the same host-side ComfyUI sampler loop ({@link KSamplers}) on the full latent, so any sampler works
 * and all ranks hold the same x after every step.
 *
 * <p>Per model call each rank takes its data-parallel block of the batch, its CFG branch (cfg_degree 2: conditional
 * on CFG rank 0, unconditional on rank 1), its sequence rows of [text ‖ image] (Ulysses / ring attention through the
 * sequence-parallel Ops), and gathers the velocity over the sequence group, the branches over the CFG group and the
 * batch over dp. Rank 0 is this engine's backend and uses the MODEL's own weights; ranks 1.. are a
 * {@link CpuBackend} each over the in-process {@link LocalCommunicator} when the engine runs on the CPU, or cuda:1 …
 * over NCCL when it runs on cuda:0; they load their own copy of the weights (LoRAs merged), kept while model and LoRA
 * set stay the same.
 *
 * <p>The mesh ({@link MeshWorld}, shared with the Wan mesh of the same engine: one set of NCCL communicators per server)
 * is built when a prompt first asks for it and rebuilt when a prompt asks for another layout (GPU count or degrees), so
 * changing them between prompts needs no restart; a failed or interrupted run discards it (its communicators were
 * aborted) and with it the ranks' weights. On GPUs the steps run as CUDA graphs per rank and branch after an eager
 * first call (unless the MODEL carries a compile setting without CUDA graphs). Step caches
 * (TeaCache/ParallelTeaCache/MagCache) run on sequence-parallel layouts, every rank deciding from the whole sequence's
 * signal sums; with cfg or dp degrees &gt; 1 they are refused, as is pipefusion_degree &gt; 1, with the setting to
 * change.
 */
final class FluxMesh implements AutoCloseable {

    private final FluxEngine engine;
    private final MeshWorld world;
    private FluxWeights[] rankWeights = new FluxWeights[0];
    private FluxModel weightsModel;
    private List<LoraSpec> weightsLoras = List.of();

    /** @param world the engine's ranks, shared with the Wan mesh (one set of NCCL communicators per server) */
    FluxMesh(FluxEngine engine, MeshWorld world) {
        this.engine = engine;
        this.world = world;
        world.onDiscard(this::releaseWeights);
    }

    /** The mesh degrees for a ParallelUNETLoader setting; the message names the node input to change. */
    static ParallelConfig layout(ModelRef.ParallelSetting p) { return MeshWorld.layout(p, "Flux"); }

    /** The layout now built (null before the first multi-GPU prompt). */
    ParallelConfig config() { return world.config(); }

    KSamplers.Result sample(FluxSampler sampler, FluxModel model, SampleJob job, FluxSampler.Geometry g, float[] x,
                            StepObserver observer) {
        ModelRef ref = job.model();
        ParallelConfig want = layout(ref.parallel());
        boolean cached = FluxSampler.stepCache(ref.cache()) != null;
        if (cached && (want.cfg() > 1 || want.dp() > 1))
            throw new UnsupportedOperationException(ref.cache().spec().kind().word() + " with num_gpus " + ref.parallel().gpus()
                    + " needs sequence parallelism only (ulysses/ring degrees multiplying to num_gpus), got " + want
                    + ": set cfg_degree 1 and the ulysses/ring degrees to num_gpus, or remove the cache node");
        boolean cfgPass = job.negative() != null && !FluxSampler.isClose(job.cfg(), 1.0);
        if (want.cfg() == 2 && !cfgPass)
            throw new IllegalArgumentException("cfg_degree 2 runs the conditional and unconditional branches on two GPUs, but this "
                    + "sampler has no negative branch (cfg 1 or BasicGuider); set cfg_degree to 1 or use CFGGuider / KSampler with cfg > 1");
        want.checkHeads("the Flux transformer " + model.name(), model.config().numHeads());
        if (g.b() % want.dp() != 0)
            throw new IllegalArgumentException("num_gpus " + ref.parallel().gpus() + " leaves a data-parallel degree of " + want.dp()
                    + ", which needs a batch that is a multiple of it; got batch_size " + g.b() + ": raise ulysses/ring/cfg degrees or the batch size");
        want.checkSequence("the image token sequence (" + g.tokens() + " tokens)", g.tokens());
        world.ensure(want);
        List<Ops> rankOps = world.rankOps();
        List<LoraSpec> loras = FluxSampler.loraSpecs(ref);
        ensureWeights(model, loras, rankOps);
        FluxWeights rank0 = model.weights(loras);
        return world.run(comms -> {
            int rank = comms.rank();
            Ops o = rankOps.get(rank);
            FluxWeights w = rank == 0 ? rank0 : rankWeights[rank];
            StepObserver obs = rank == 0 ? observer : StepObserver.NONE;
            return cached ? cachedRankRun(sampler, o, comms, w, model, job, g, x, cfgPass, obs, rank, want)
                    : rankRun(sampler, o, comms, w, model, job, g, x, cfgPass, obs);
        });
    }

    private KSamplers.Result rankRun(FluxSampler sampler, Ops o, org.dit4j.engine.parallel.MeshComms comms, FluxWeights w, FluxModel model,
                                     SampleJob job, FluxSampler.Geometry g, float[] x, boolean cfgPass, StepObserver observer) {
        DType act = engine.activation();
        FluxTransformer tr = FluxSequenceParallel.model(o, comms, w);
        FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
        DataParallel dp = DataParallel.of(comms);
        CfgParallel cfgp = CfgParallel.of(comms);
        int[] mine = dp.range(g.b());
        int per = g.c() * g.h() * g.w();
        FluxSampler.Geometry gl = new FluxSampler.Geometry(mine[1] - mine[0], g.c(), g.h(), g.w());
        List<FluxSampler.Branch> branches = new ArrayList<>();
        // CUDA graphs as on one GPU (unless a compile node says otherwise): the first call eager, then one capture per
        // branch on every rank at the same call (collectives inside), replays with the shard and time written in place
        CudaBackend cuda = o instanceof CudaBackend cb && (job.model().compile() == null || job.model().compile().cudaGraphs()) ? cb : null;
        Map<CfgParallel.Branch, CudaGraph> graphs = new EnumMap<>(CfgParallel.Branch.class);
        Map<CfgParallel.Branch, Tensor> graphOut = new EnumMap<>(CfgParallel.Branch.class);
        int[] calls = {0};
        try {
            branches.add(sampler.branch(o, model, job.positive(), gl, false, sp));
            if (cfgPass) branches.add(sampler.branch(o, model, job.negative(), gl, false, sp));
            float cfgScale = (float) job.cfg();
            KSamplers.Denoiser denoiser = (xi, i, sigma) -> {
                int call = calls[0]++;
                float t = job.model().sampling().timestep(sigma);
                float[][] vel = new float[branches.size()][];
                try (Scope s = Scope.open()) {
                    float[] tb = new float[gl.b()];
                    Arrays.fill(tb, t);
                    Tensor tSin = FluxEmbeddings.sinEmb(o, tb, act);
                    float[] xl = Arrays.copyOfRange(xi, mine[0] * per, mine[1] * per);
                    Tensor xAct = o.cast(o.upload(Tensor.of(FluxSampler.pack(xl, gl), gl.b(), gl.tokens(), 4L * gl.c())), act);
                    Function<CfgParallel.Branch, Tensor> forward = which -> {
                        FluxSampler.Branch br = branches.get(which == CfgParallel.Branch.COND ? 0 : 1);
                        Tensor in = br.ref == null ? xAct : o.concat(1, xAct, br.ref);
                        Tensor shard = sp.shard(o, in, 1), v;
                        if (cuda == null) {
                            FluxTransformer.Conditioning c = new FluxTransformer.Conditioning(tSin, br.cond.guidanceSin(), br.cond.pe(),
                                    br.cond.nTxt(), br.cond.nImg());
                            v = tr.forward(shard, br.txt, br.y, c);
                        } else {
                            if (br.imgIn == null) br.imgIn = Scope.detach(o.empty(shard.dtype(), shard.shape()));
                            cuda.copyInto(br.cond.timeSin(), tSin);
                            cuda.copyInto(br.imgIn, shard);
                            if (call == 0) {
                                v = tr.forward(br.imgIn, br.txt, br.y, br.cond);      // eager: kernels compile, plans cached
                            } else {
                                CudaGraph gr = graphs.get(which);
                                if (gr == null) {
                                    gr = CudaGraph.capture(cuda, () -> graphOut.put(which, Scope.detach(tr.forward(br.imgIn, br.txt, br.y, br.cond))));
                                    graphs.put(which, gr);
                                }
                                gr.replay();
                                v = graphOut.get(which);
                            }
                        }
                        return o.slice(sp.gather(v, 1), 1, 0, gl.tokens());
                    };
                    Tensor[] v;
                    if (cfgPass) {
                        CfgParallel.Pair p = cfgp.both(forward);
                        v = new Tensor[] {p.cond(), p.uncond()};
                    } else {
                        v = new Tensor[] {forward.apply(CfgParallel.Branch.COND)};
                    }
                    for (int k = 0; k < v.length; k++) {
                        Tensor all = dp.gatherBatch(v[k]);
                        Tensor host = all.device().isCpu() ? all : o.toHost(all);
                        vel[k] = FluxSampler.unpack(host.toFloatArray(), g);
                    }
                }
                return FluxSampler.guided(xi, sigma, vel, cfgScale);
            };
            return KSamplers.sample(job.sampler(), denoiser, x, job.sigmas(), (i, n, d) -> observer.stepDone(i, n, LatentFormat.FLUX, d, job.latent().shape()));
        } finally {
            for (CudaGraph gr : graphs.values()) gr.close();
            for (Tensor t : graphOut.values()) t.close();
            for (FluxSampler.Branch b : branches) b.close();
        }
    }


    /**
     * One rank's sampler run under a step cache on a sequence-parallel mesh (TACO's ParallelTeaCache): a cached
     * transformer over this rank's shard, the relative-L1 sums gathered over the sequence group so every rank decides
     * alike (see {@link org.dit4j.engine.flux.ParallelFluxPipeline#reduceRelL1}).
     */
    private KSamplers.Result cachedRankRun(FluxSampler sampler, Ops o, org.dit4j.engine.parallel.MeshComms comms, FluxWeights w,
                                           FluxModel model, SampleJob job, FluxSampler.Geometry g, float[] x, boolean cfgPass,
                                           StepObserver observer, int rank, ParallelConfig config) {
        DType act = engine.activation();
        StepCache policy = FluxSampler.stepCache(job.model().cache());         // one per rank: policies keep request state
        FluxTransformer tr = FluxSequenceParallel.model(o, comms, w);
        FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
        List<FluxSampler.Branch> branches = new ArrayList<>();
        FluxCachedTransformer ct = null;
        Tensor imgIn = null;
        try {
            branches.add(sampler.branch(o, model, job.positive(), g, false, sp));
            if (cfgPass) branches.add(sampler.branch(o, model, job.negative(), g, false, sp));
            if (cfgPass) FluxSampler.requireSharedInputs(job.positive(), job.negative(), branches, policy);
            FluxSampler.Branch b0 = branches.getFirst();
            imgIn = o.empty(act, Shape.of(g.b(), b0.cond.nImg(), model.config().inChannels()));
            Map<org.dit4j.engine.cache.Branch, FluxCachedTransformer.Text> texts = new EnumMap<>(org.dit4j.engine.cache.Branch.class);
            texts.put(org.dit4j.engine.cache.Branch.COND, new FluxCachedTransformer.Text(b0.txt, b0.y));
            if (cfgPass) texts.put(org.dit4j.engine.cache.Branch.UNCOND, new FluxCachedTransformer.Text(branches.get(1).txt, branches.get(1).y));
            Communicator group = comms.sequence();
            ct = new FluxCachedTransformer(o, tr, policy, "serve-mesh-" + rank, job.sigmas().length - 1, imgIn, b0.cond, texts,
                    FluxCachedTransformer.Options.eager().withReduce(rel -> ParallelFluxPipeline.reduceRelL1(o, group, rel)));
            FluxCachedTransformer cache = ct;
            Tensor in0 = imgIn;
            float cfgScale = (float) job.cfg();
            KSamplers.Denoiser denoiser = (xi, i, sigma) -> {
                float t = job.model().sampling().timestep(sigma);
                float[][] vel = new float[branches.size()][];
                try (Scope s = Scope.open()) {
                    float[] tb = new float[g.b()];
                    Arrays.fill(tb, t);
                    FluxCachedTransformer.copyInto(o, b0.cond.timeSin(), FluxEmbeddings.sinEmb(o, tb, act));
                    Tensor xAct = o.cast(o.upload(Tensor.of(FluxSampler.pack(xi, g), g.b(), g.tokens(), 4L * g.c())), act);
                    Tensor full = b0.ref == null ? xAct : o.concat(1, xAct, b0.ref);
                    FluxCachedTransformer.copyInto(o, in0, sp.shard(o, full, 1));
                    for (int k = 0; k < branches.size(); k++) {
                        Tensor v = sp.gather(cache.velocity(i, k == 0 ? org.dit4j.engine.cache.Branch.COND : org.dit4j.engine.cache.Branch.UNCOND), 1);
                        v = o.slice(v, 1, 0, g.tokens());
                        Tensor host = v.device().isCpu() ? v : o.toHost(v);
                        vel[k] = FluxSampler.unpack(host.toFloatArray(), g);
                    }
                }
                return FluxSampler.guided(xi, sigma, vel, cfgScale);
            };
            KSamplers.Result r = KSamplers.sample(job.sampler(), denoiser, x, job.sigmas(),
                    (i, n, d) -> observer.stepDone(i, n, LatentFormat.FLUX, d, job.latent().shape()));
            if (rank == 0) System.out.println("dit4j server: " + policy.describe() + " on " + config + ": " + ct.summary().pattern(org.dit4j.engine.cache.Branch.COND)
                    + " (cond; " + ct.summary().computed(org.dit4j.engine.cache.Branch.COND) + "/" + ct.summary().totalSteps() + " steps computed)");
            return r;
        } finally {
            if (ct != null) ct.close();
            if (imgIn != null) imgIn.close();
            for (FluxSampler.Branch b : branches) b.close();
        }
    }

    /** Loads ranks 1..'s weights for this model and LoRA set unless they are already loaded. */
    private synchronized void ensureWeights(FluxModel model, List<LoraSpec> loras, List<Ops> rankOps) {
        if (rankWeights.length != rankOps.size()) {
            releaseWeights();
            rankWeights = new FluxWeights[rankOps.size()];
        }
        boolean same = model == weightsModel && loras.equals(weightsLoras);
        for (int r = 1; r < rankWeights.length && same; r++) same = rankWeights[r] != null;
        if (same) return;
        releaseWeights();
        for (int r = 1; r < rankWeights.length; r++) rankWeights[r] = model.loadOnto(rankOps.get(r), loras);
        weightsModel = model;
        weightsLoras = List.copyOf(loras);
    }

    private synchronized void releaseWeights() {
        for (int r = 0; r < rankWeights.length; r++) {
            if (rankWeights[r] != null) rankWeights[r].close();
            rankWeights[r] = null;
        }
        weightsModel = null;
        weightsLoras = List.of();
    }

    /** Releases the ranks' weights (POST /free); the mesh itself is kept. */
    synchronized void free() { releaseWeights(); }

    /** Drops the ranks (shared with the Wan mesh) and with them these weights. */
    @Override public void close() { world.discard(); }
}
