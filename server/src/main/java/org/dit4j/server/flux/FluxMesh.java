package org.dit4j.server.flux;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.cuda.NcclCommunicator;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.DataParallel;
import org.dit4j.engine.parallel.FluxSequenceParallel;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.server.engine.InterruptedRun;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.sampling.KSamplers;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

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
 * <p>The mesh is built when a prompt first asks for it and rebuilt when a prompt asks for another layout (GPU count
 * or degrees), so changing them between prompts needs no restart; a failed or interrupted run discards it (its
 * communicators were aborted). Steps run eagerly (no CUDA graph); step caches (TeaCache/MagCache) and
 * pipefusion_degree &gt; 1 are refused with the setting to change.
 */
final class FluxMesh implements AutoCloseable {

    private final FluxEngine engine;
    private ParallelConfig config;
    private List<Ops> rankOps = List.of();
    private List<? extends Communicator> worlds = List.of();
    private final List<AutoCloseable> owned = new ArrayList<>();
    private FluxWeights[] rankWeights = new FluxWeights[0];
    private FluxModel weightsModel;
    private List<LoraSpec> weightsLoras = List.of();

    FluxMesh(FluxEngine engine) { this.engine = engine; }

    /** The mesh degrees for a ParallelUNETLoader setting; the message names the node input to change. */
    static ParallelConfig layout(ModelRef.ParallelSetting p) {
        if (p.pipefusion() != 1)
            throw new UnsupportedOperationException("pipefusion_degree " + p.pipefusion() + ": dit4j has no pipeline-parallel Flux "
                    + "transformer; set pipefusion_degree to 1 and use ulysses_degree / ring_degree");
        int seqCfg = p.ulysses() * p.ring() * p.cfg();
        if (p.gpus() % seqCfg != 0)
            throw new IllegalArgumentException("num_gpus " + p.gpus() + " is not a multiple of ulysses × ring × cfg = " + seqCfg);
        return new ParallelConfig(p.gpus() / seqCfg, p.cfg(), p.ring(), p.ulysses());
    }

    /** The layout now built (null before the first multi-GPU prompt). */
    synchronized ParallelConfig config() { return config; }

    synchronized KSamplers.Result sample(FluxSampler sampler, FluxModel model, SampleJob job, FluxSampler.Geometry g, float[] x,
                                         StepObserver observer) {
        ModelRef ref = job.model();
        ParallelConfig want = layout(ref.parallel());
        if (FluxSampler.stepCache(ref.cache()) != null)
            throw new UnsupportedOperationException(ref.cache().spec().kind().word() + " with num_gpus " + ref.parallel().gpus()
                    + " is not supported by dit4j serve yet: remove the cache node or set num_gpus to 1");
        boolean cfgPass = job.negative() != null && !FluxSampler.isClose(job.cfg(), 1.0);
        if (want.cfg() == 2 && !cfgPass)
            throw new IllegalArgumentException("cfg_degree 2 runs the conditional and unconditional branches on two GPUs, but this "
                    + "sampler has no negative branch (cfg 1 or BasicGuider); set cfg_degree to 1 or use CFGGuider / KSampler with cfg > 1");
        want.checkHeads("the Flux transformer " + model.name(), model.config().numHeads());
        if (g.b() % want.dp() != 0)
            throw new IllegalArgumentException("num_gpus " + ref.parallel().gpus() + " leaves a data-parallel degree of " + want.dp()
                    + ", which needs a batch that is a multiple of it; got batch_size " + g.b() + ": raise ulysses/ring/cfg degrees or the batch size");
        want.checkSequence("the image token sequence (" + g.tokens() + " tokens)", g.tokens());
        ensure(want);
        List<LoraSpec> loras = FluxSampler.loraSpecs(ref);
        ensureWeights(model, loras);
        FluxWeights rank0 = model.weights(loras);
        try {
            List<KSamplers.Result> out = MeshRunner.run(config, worlds, comms -> {
                int rank = comms.rank();
                Ops o = rankOps.get(rank);
                FluxWeights w = rank == 0 ? rank0 : rankWeights[rank];
                return rankRun(sampler, o, comms, w, model, job, g, x, cfgPass, rank == 0 ? observer : StepObserver.NONE);
            });
            return out.getFirst();
        } catch (RuntimeException e) {
            discard();
            Throwable c = e;
            while (c != null && !(c instanceof InterruptedRun)) c = c.getCause();
            if (c instanceof InterruptedRun ir) throw ir;
            throw e;
        }
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
        try {
            branches.add(sampler.branch(o, model, job.positive(), gl, false, sp));
            if (cfgPass) branches.add(sampler.branch(o, model, job.negative(), gl, false, sp));
            float cfgScale = (float) job.cfg();
            KSamplers.Denoiser denoiser = (xi, i, sigma) -> {
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
                        FluxTransformer.Conditioning c = new FluxTransformer.Conditioning(tSin, br.cond.guidanceSin(), br.cond.pe(),
                                br.cond.nTxt(), br.cond.nImg());
                        Tensor v = sp.gather(tr.forward(sp.shard(o, in, 1), br.txt, br.y, c), 1);
                        return o.slice(v, 1, 0, gl.tokens());
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
            for (FluxSampler.Branch b : branches) b.close();
        }
    }

    /** Builds the mesh for {@code want} unless it is the one already built. */
    private void ensure(ParallelConfig want) {
        if (want.equals(config)) return;
        discard();
        int n = want.worldSize();
        Ops main = engine.ops();
        List<Ops> ops = new ArrayList<>();
        ops.add(main);
        try {
            if (main instanceof CudaBackend cuda) {
                if (cuda.device().index() != 0)
                    throw new IllegalArgumentException("multi-GPU sampling needs the server on cuda:0, but it runs on " + main.name()
                            + "; start dit4j serve with --backend cuda");
                int have = CudaDriver.get().deviceCount();
                if (n > have)
                    throw new IllegalArgumentException("num_gpus " + n + " but this machine has " + have + " GPU(s); set num_gpus to at most " + have);
                List<CudaBackend> gpus = new ArrayList<>();
                gpus.add(cuda);
                for (int r = 1; r < n; r++) {
                    CudaBackend b = new CudaBackend(r);
                    owned.add(b);
                    gpus.add(b);
                    ops.add(b);
                }
                List<Communicator> comms = NcclCommunicator.initAll(gpus);
                for (Communicator c : comms) owned.addFirst(c);
                worlds = comms;
            } else {
                int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / n);
                for (int r = 1; r < n; r++) {
                    CpuBackend b = new CpuBackend(threads);
                    owned.add(b);
                    ops.add(b);
                }
                worlds = LocalCommunicator.group(n);
            }
        } catch (RuntimeException e) {
            discard();
            throw e;
        }
        rankOps = List.copyOf(ops);
        rankWeights = new FluxWeights[n];
        config = want;
        System.out.println("dit4j server: multi-GPU mesh " + want + " on " + n + " rank(s) (" + main.name() + (n > 1 ? " …" : "") + ")");
    }

    /** Loads ranks 1..'s weights for this model and LoRA set unless they are already loaded. */
    private void ensureWeights(FluxModel model, List<LoraSpec> loras) {
        boolean same = model == weightsModel && loras.equals(weightsLoras);
        for (int r = 1; r < rankWeights.length && same; r++) same = rankWeights[r] != null;
        if (same) return;
        releaseWeights();
        for (int r = 1; r < rankWeights.length; r++) rankWeights[r] = model.loadOnto(rankOps.get(r), loras);
        weightsModel = model;
        weightsLoras = List.copyOf(loras);
    }

    private void releaseWeights() {
        for (int r = 0; r < rankWeights.length; r++) {
            if (rankWeights[r] != null) rankWeights[r].close();
            rankWeights[r] = null;
        }
        weightsModel = null;
        weightsLoras = List.of();
    }

    /** Drops the mesh: ranks' weights, extra backends and communicators. */
    private void discard() {
        releaseWeights();
        for (AutoCloseable c : owned) {
            try {
                c.close();
            } catch (Exception e) {
                System.err.println("dit4j server: closing " + c + " failed: " + e);
            }
        }
        owned.clear();
        rankOps = List.of();
        worlds = List.of();
        rankWeights = new FluxWeights[0];
        config = null;
    }

    /** Releases the ranks' weights (POST /free); the mesh itself is kept. */
    synchronized void free() { releaseWeights(); }

    @Override public synchronized void close() { discard(); }
}
