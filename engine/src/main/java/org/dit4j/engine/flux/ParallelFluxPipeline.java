package org.dit4j.engine.flux;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.EnumMap;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;

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
import org.dit4j.cuda.NcclCommunicator;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CachePrograms;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.Signals;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.parallel.CfgParallel;
import org.dit4j.engine.parallel.DataParallel;
import org.dit4j.engine.parallel.FluxSequenceParallel;
import org.dit4j.engine.parallel.MeshBackends;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.parallel.Rendezvous;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.sampling.FlowMatchEuler;
import org.dit4j.models.sampling.FlowMatchSchedule;

/**
 * A {@link FluxPipeline} whose denoising loop runs on a mesh of ranks ({@link ParallelConfig}: dp × cfg × ring ×
 * ulysses), one thread per rank ({@link MeshRunner}), each with its own backend: on GPUs a {@link CudaBackend} per
 * device (rank r on cuda:r, rank 0 the pipeline's own backend) over NCCL; on the CPU a {@link CpuBackend} per rank over
 * the in-process {@link LocalCommunicator} (what CI runs).
 *
 * <p>Text encoding, the Kontext reference encoding and the VAE decode stay on rank 0 (the wrapped pipeline); their
 * outputs (T5/CLIP embeddings, packed noise, reference tokens) are copied to every rank through the host once per
 * request. Each rank loads the transformer weights once onto its device (LoRAs merged) and keeps them while
 * {@code keepLoaded} is set. Per step every rank: takes its dp block of the batch ({@link DataParallel}), its CFG branch
 * when cfg = 2 ({@link CfgParallel}, true CFG: conditional on CFG rank 0, unconditional on rank 1), its sequence shard
 * of [text ‖ image] ({@link FluxSequenceParallel}: Ulysses/Ring attention through the sequence-parallel Ops), gathers
 * the velocity over the sequence group and the branches over the CFG group, and applies the Euler step to the whole
 * latent of its dp block (identical on the ranks of a group); the batch is gathered over dp at the end and rank 0's
 * latent is the result. On GPUs with CUDA graphs on (the pipeline's settings) the first step runs eagerly and every
 * rank then captures its transformer call per CFG branch (Ulysses all-to-alls and ring passes inside, captured by all
 * ranks of a group at the same step) and replays it; the gathers, the guidance and the Euler step stay eager. With a mesh of one rank this is the plain pipeline's
 * arithmetic; the one-device {@link FluxPipeline#generate} path is untouched.
 *
 * <p><b>Several nodes</b> ({@link #cudaNode}, after a {@link Rendezvous}): each process runs its share of the ranks on
 * its own GPUs, and the whole pipeline around the loop itself (the inputs are deterministic, so nothing but the
 * loop's collectives crosses nodes); every node ends with the whole latent and decodes it.
 *
 * <p><b>Step caches on a sequence-parallel mesh</b> ({@link #generate(FluxRequest, FluxProgress, Supplier)}, TACO's
 * ParallelTeaCache): every rank runs its own policy over a {@link FluxCachedTransformer} on its shard; the relative-L1
 * sums of a signal (TeaCache, First-Block Cache) are gathered over the sequence group and added in rank order in double
 * on every rank, so all ranks take the same decision from the whole tensor's sums (MagCache needs no signal). Meshes
 * with cfg or dp degrees &gt; 1 are refused with a cache (their branches/requests would need one decision per group).
 */
public final class ParallelFluxPipeline implements AutoCloseable {
    private final FluxPipeline pipeline;
    private final ParallelConfig config;
    private final List<Ops> rankOps;          // by global rank; null for ranks of other nodes
    private final List<Communicator> worlds;  // this process's ranks, in rank order
    private final List<AutoCloseable> owned;
    private final FluxWeights[] weights;
    private volatile List<float[]> lastRankLatents = List.of();
    private volatile FluxPipeline.CacheReport lastCacheReport;
    private volatile boolean lastUsedGraphs;
    private List<org.dit4j.engine.parallel.MeshComms> comms;
    private Rendezvous.Link link = Rendezvous.Link.NONE;
    /** This process's lowest rank (0 unless a node of a multi-node mesh): it reports progress, graphs and the cache. */
    private final int leadRank;

    /**
     * @param rankOps the backend of each communicator of {@code worlds} ({@code rankOps.get(i)} runs rank
     *                {@code worlds.get(i).rank()}; the first normally the pipeline's own); not closed by this object
     * @param worlds  world communicators: every rank of the mesh, or this node's ranks of a multi-node mesh (each
     *                spanning the whole world); not closed by this object
     */
    public ParallelFluxPipeline(FluxPipeline pipeline, ParallelConfig config, List<? extends Ops> rankOps,
                                List<? extends Communicator> worlds) {
        this(pipeline, config, List.copyOf(rankOps), List.copyOf(worlds), List.of());
    }

    private ParallelFluxPipeline(FluxPipeline pipeline, ParallelConfig config, List<Ops> localOps, List<Communicator> worlds,
                                 List<AutoCloseable> owned) {
        if (localOps.size() != worlds.size())
            throw new IllegalArgumentException("a mesh needs one backend per world communicator, got " + localOps.size() + " backends for "
                    + worlds.size() + " communicators");
        MeshRunner.checkRanks(config, worlds);
        config.checkHeads("the Flux transformer " + pipeline.files().description(), pipeline.transformerConfig().numHeads());
        this.pipeline = pipeline;
        this.config = config;
        List<Ops> byRank = new ArrayList<>(java.util.Collections.nCopies(config.worldSize(), (Ops) null));
        List<Integer> order = new ArrayList<>();
        for (int i = 0; i < worlds.size(); i++) {
            byRank.set(worlds.get(i).rank(), localOps.get(i));
            order.add(i);
        }
        order.sort(java.util.Comparator.comparingInt(i -> worlds.get(i).rank()));
        this.rankOps = java.util.Collections.unmodifiableList(byRank);
        this.worlds = order.stream().map(worlds::get).toList();
        this.leadRank = this.worlds.getFirst().rank();
        this.owned = owned;
        this.weights = new FluxWeights[config.worldSize()];
    }

    /** The mesh in one JVM on the CPU: rank 0 the pipeline's backend, ranks 1.. a new CpuBackend each, LocalCommunicator. */
    public static ParallelFluxPipeline local(FluxPipeline pipeline, ParallelConfig config) {
        if (!pipeline.ops().device().isCpu())
            throw new IllegalArgumentException("ParallelFluxPipeline.local runs on the CPU, but the pipeline's backend is "
                    + pipeline.ops().name() + "; use ParallelFluxPipeline.cuda for GPUs");
        return of(pipeline, config, MeshBackends.cpu(pipeline.ops(), config.worldSize()));
    }

    /**
     * The mesh over GPUs cuda:0 … cuda:(N−1) in one JVM with NCCL ({@code NCCL_NVLS_ENABLE=0} as set by the caller's
     * environment): rank 0 is the pipeline's backend, which must be cuda:0.
     */
    public static ParallelFluxPipeline cuda(FluxPipeline pipeline, ParallelConfig config) {
        return of(pipeline, config, MeshBackends.cuda(pipeline.ops(), config.worldSize(), "Flux pipeline"));
    }

    private static ParallelFluxPipeline of(FluxPipeline pipeline, ParallelConfig config, MeshBackends m) {
        try {
            return new ParallelFluxPipeline(pipeline, config, m.ops(), m.worlds(), m.owned());
        } catch (RuntimeException e) {
            m.close();
            throw e;
        }
    }

    // ------------------------------------------------------------------ multi-node meshes

    /**
     * One node of a multi-node mesh on GPUs: this process's ranks {@code node.firstRank()} … on its GPUs cuda:0 …
     * cuda:(localRanks−1) (rank {@code firstRank} is the pipeline's backend, which must be cuda:0), joined to the world
     * through the NCCL unique id of the {@link Rendezvous} ({@link NcclCommunicator#initRanks}). Every node runs the whole
     * pipeline (text encoders, noise from the seed, its ranks of the denoising loop, the VAE): the inputs are
     * deterministic, so only the NCCL collectives of the loop cross nodes. {@link #generate} returns, on every node, its
     * first rank's latent, which after the loop's gathers is the whole latent.
     */
    public static ParallelFluxPipeline cudaNode(FluxPipeline pipeline, ParallelConfig config, Rendezvous.Result node) {
        checkNode(config, node);
        if (!(pipeline.ops() instanceof CudaBackend first) || first.device().index() != 0)
            throw new IllegalArgumentException("a multi-node Flux mesh needs this node's first rank on cuda:0, but the pipeline runs on "
                    + pipeline.ops().name() + "; open it with --backend cuda:0 (or cuda), choosing the GPUs with CUDA_VISIBLE_DEVICES");
        int k = node.localRanks(), visible = org.dit4j.cuda.Cuda.deviceCount();
        if (k > visible)
            throw new IllegalArgumentException("node " + node.nodeRank() + " runs " + k + " ranks of the mesh " + config + " but sees "
                    + visible + " GPU(s); give each node world size / nnodes = " + k + " GPUs (CUDA_VISIBLE_DEVICES) or change --nnodes");
        List<CudaBackend> gpus = new ArrayList<>();
        List<AutoCloseable> owned = new ArrayList<>();
        gpus.add(first);
        try {
            for (int i = 1; i < k; i++) {
                CudaBackend b = new CudaBackend(i);
                gpus.add(b);
                owned.add(b);
            }
            List<Communicator> worlds = NcclCommunicator.initRanks(gpus, node.worldSize(), node.uniqueId(), node.firstRank());
            owned.addAll(0, worlds);
            return new ParallelFluxPipeline(pipeline, config, List.copyOf(gpus), worlds, owned).watching(node.link());
        } catch (RuntimeException e) {
            MeshBackends.closeAll(owned);
            throw e;
        }
    }

    /**
     * One node of a multi-node mesh on the CPU, for tests: the nodes are threads of one JVM that joined one
     * {@link Rendezvous} whose id came from {@link #cpuNodeId()}; the id names one in-process {@link LocalCommunicator}
     * group shared by the nodes, of which this node takes its ranks. Rank {@code firstRank} runs on the pipeline's
     * backend, the others on new CpuBackends. Nodes in different processes cannot share a group: put
     * {@link #cpuProcess()} into the job fingerprint so that the rendezvous refuses them.
     */
    public static ParallelFluxPipeline cpuNode(FluxPipeline pipeline, ParallelConfig config, Rendezvous.Result node) {
        checkNode(config, node);
        if (!pipeline.ops().device().isCpu())
            throw new IllegalArgumentException("ParallelFluxPipeline.cpuNode runs on the CPU, but the pipeline's backend is "
                    + pipeline.ops().name() + "; use ParallelFluxPipeline.cudaNode for GPUs");
        List<Communicator> worlds = CpuGroups.take(node);
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / config.worldSize());
        List<Ops> ops = new ArrayList<>();
        List<AutoCloseable> owned = new ArrayList<>();
        ops.add(pipeline.ops());
        for (int i = 1; i < node.localRanks(); i++) {
            CpuBackend b = new CpuBackend(threads);
            ops.add(b);
            owned.add(b);
        }
        return new ParallelFluxPipeline(pipeline, config, ops, worlds, owned).watching(node.link());
    }

    /**
     * Keeps the rendezvous connections of a multi-node mesh for this pipeline's life: a node lost without a goodbye
     * aborts this node's communicators ({@link #abort}), so its ranks stop with that message instead of waiting in NCCL;
     * {@link #close} says goodbye.
     */
    private ParallelFluxPipeline watching(Rendezvous.Link link) {
        this.link = link;
        link.watch(this::abort);
        return this;
    }

    /**
     * Stops the mesh: aborts this process's world communicators (and through them their groups), so ranks blocked in a
     * collective fail with {@code reason}; the pipeline cannot run again. Safe from any thread.
     */
    public void abort(String reason) {
        System.err.println("dit4j: " + reason);
        link.sever();
        IllegalStateException cause = new IllegalStateException(reason);
        for (Communicator w : worlds) w.abort(cause);
    }

    /** A fresh id for a CPU rendezvous ({@link #cpuNode}): 128 random bytes, like an NCCL unique id. */
    public static byte[] cpuNodeId() {
        byte[] id = new byte[128];
        new java.security.SecureRandom().nextBytes(id);
        return id;
    }

    /** Names this JVM (pid and a random token) for job fingerprints of CPU nodes, which must share one process. */
    public static String cpuProcess() { return CpuGroups.PROCESS; }

    /**
     * The nodes of a multi-node mesh in one JVM on the CPU without a network (tests): node n of {@code nodes.size()}
     * gets ranks n·k … n·k+k−1 (k = world size / nodes) of one shared {@link LocalCommunicator} group, rank n·k on
     * {@code nodes.get(n)}'s backend. Call each node's {@link #generate} from its own thread, as separate processes would.
     */
    public static List<ParallelFluxPipeline> localNodes(List<FluxPipeline> nodes, ParallelConfig config) {
        int n = nodes.size(), world = config.worldSize();
        if (n < 1 || world % n != 0)
            throw new IllegalArgumentException("a mesh of " + world + " ranks does not split over " + n + " nodes; the world size must be a "
                    + "multiple of the node count");
        byte[] id = cpuNodeId();
        List<ParallelFluxPipeline> out = new ArrayList<>();
        for (int i = 0; i < n; i++)
            out.add(cpuNode(nodes.get(i), config, new Rendezvous.Result(n, i, world, i * (world / n), world / n, id)));
        return out;
    }

    private static void checkNode(ParallelConfig config, Rendezvous.Result node) {
        config.checkWorldSize(node.worldSize());
        if (node.firstRank() < 0 || node.localRanks() < 1 || node.firstRank() + node.localRanks() > node.worldSize())
            throw new IllegalArgumentException("node " + node.nodeRank() + ": ranks " + node.firstRank() + ".."
                    + (node.firstRank() + node.localRanks() - 1) + " are outside the mesh of " + node.worldSize());
    }

    /** The in-process groups of CPU nodes, by rendezvous id; a group is dropped once all its ranks were taken. */
    private static final class CpuGroups {
        static final String PROCESS = ProcessHandle.current().pid() + "-" + java.util.HexFormat.of().formatHex(cpuNodeId(), 0, 4);
        private static final Map<String, List<Communicator>> GROUPS = new java.util.HashMap<>();
        private static final Map<String, Integer> TAKEN = new java.util.HashMap<>();

        static synchronized List<Communicator> take(Rendezvous.Result node) {
            String key = java.util.HexFormat.of().formatHex(node.uniqueId());
            List<Communicator> group = GROUPS.computeIfAbsent(key, k -> List.copyOf(LocalCommunicator.group(node.worldSize())));
            if (group.size() != node.worldSize())
                throw new IllegalArgumentException("CPU rendezvous id names a group of " + group.size() + " ranks, but node " + node.nodeRank()
                        + " expects " + node.worldSize());
            int taken = TAKEN.merge(key, node.localRanks(), Integer::sum);
            if (taken >= node.worldSize()) {
                GROUPS.remove(key);
                TAKEN.remove(key);
            }
            return group.subList(node.firstRank(), node.firstRank() + node.localRanks());
        }
    }

    /** Whether this object runs every rank of the mesh (one process), as opposed to one node's share. */
    public boolean wholeMesh() { return worlds.size() == config.worldSize(); }

    /** The global ranks this object runs, ascending. */
    public int[] localRanks() { return worlds.stream().mapToInt(Communicator::rank).toArray(); }

    /**
     * The degrees for {@code gpus} ranks when only the count is given: Ulysses over all of them when the head count
     * allows, else the largest Ulysses degree dividing both, the rest as ring.
     */
    public static ParallelConfig forGpus(int gpus, int heads) { return ParallelConfig.forGpus(gpus, heads); }

    public FluxPipeline pipeline() { return pipeline; }

    public ParallelConfig config() { return config; }

    /**
     * Fails with a message naming the option to change unless the request (after defaults) splits over the mesh: head
     * count by ulysses, T5 and image token counts by ring·ulysses, batch by dp, cfg 2 only with true CFG.
     */
    public FluxRequest check(FluxRequest request) { return check(pipeline, config, request); }

    /** {@link #check(FluxRequest)} before the mesh exists (e.g. before a multi-node rendezvous). */
    public static FluxRequest check(FluxPipeline pipeline, ParallelConfig config, FluxRequest request) {
        FluxRequest r = pipeline.withDefaults(request);
        FluxConfig fc = pipeline.transformerConfig();
        config.checkHeads("the Flux transformer", fc.numHeads());
        config.checkSequence("the text (T5) sequence (--t5-length " + r.t5Length() + ")", r.t5Length());
        int m = pipeline.sizeMultiple();
        long nImg = (long) (r.width() / m) * (r.height() / m);
        if (r.reference() != null) {
            int[] wh = pipeline.referenceSize(r.reference());
            nImg += (long) (wh[0] / m) * (wh[1] / m);
        }
        config.checkSequence("the image token sequence (" + r.width() + "×" + r.height()
                + (r.reference() != null ? " plus the Kontext reference" : "") + ")", nImg);
        if (r.batch() % config.dp() != 0)
            throw new IllegalArgumentException("data parallel degree " + config.dp() + " needs a batch that is a multiple of it, got --batch "
                    + r.batch() + "; use --batch " + config.dp() + " (or a multiple) or a smaller --dp");
        if (config.cfg() == 2 && !r.trueCfg())
            throw new IllegalArgumentException("CFG parallel (cfg 2) runs the conditional and unconditional branches of true CFG on "
                    + "two ranks, but this request has no true CFG; add --negative-prompt and --true-cfg > 1, or use --cfg-parallel 1");
        return r;
    }

    /** Runs one request with the denoising loop on the mesh; rank 0's latent is decoded by the wrapped pipeline. */
    public FluxPipeline.Result generate(FluxRequest request, FluxProgress progress) {
        return generate(request, progress, null);
    }

    /**
     * Like {@link #generate(FluxRequest, FluxProgress)} with a step cache: {@code cache} makes one fresh policy per rank
     * (policies keep per-request state and are not thread-safe). Sequence-parallel meshes only (cfg = dp = 1); the
     * result's {@link FluxPipeline.Result#cache()} is rank 0's report (every rank decided the same).
     */
    public FluxPipeline.Result generate(FluxRequest request, FluxProgress progress, Supplier<? extends StepCache> cache) {
        check(request);
        if (cache != null && (config.cfg() > 1 || config.dp() > 1))
            throw new IllegalArgumentException("a step cache on a mesh needs sequence parallelism only (ring/ulysses), got " + config
                    + "; use --cfg-parallel 1 --dp 1 with --cache, or leave --cache out");
        lastCacheReport = null;
        lastUsedGraphs = false;
        FluxPipeline.Result res = pipeline.generate(request, progress,
                (r, schedule, latent, ids, txt, y, txtNeg, yNeg, ref, nImg, p) -> denoise(r, schedule, latent, ids, txt, y, txtNeg, yNeg, ref, nImg, p, cache));
        FluxPipeline.CacheReport report = lastCacheReport;
        boolean graphs = lastUsedGraphs;
        if (report == null && !graphs) return res;
        return new FluxPipeline.Result(res.images(), res.request(), res.schedule(), res.stageSeconds(), res.peakDeviceBytes(),
                graphs, res.latents(), report != null ? report : res.cache());
    }

    /**
     * {@code --verify-parallel}: runs the request on one device (the wrapped pipeline alone) and on the mesh, and compares
     * every rank's final latent with the one-device latent ({@link ParallelVerification}); check the result against
     * {@link ParallelVerification#tolerance} of the activation dtype.
     */
    public ParallelVerification.Verification verify(FluxRequest request, FluxProgress progress) {
        if (!wholeMesh())
            throw new IllegalArgumentException("verify compares one device with every rank of the mesh in one process, but this node runs only "
                    + "ranks " + Arrays.toString(localRanks()) + " of " + config.worldSize() + "; verify the mesh on one host (without --nnodes)");
        check(request);
        FluxProgress p = progress == null ? FluxProgress.NONE : progress;
        return ParallelVerification.verify("flux " + config, () -> pipeline.generate(request, p).latents(), () -> {
            generate(request, p);
            return lastRankLatents;
        });
    }

    /** The tolerance of {@link #verify} for this pipeline's activation dtype. */
    public double tolerance() { return ParallelVerification.tolerance(pipeline.settings().activation()); }

    private record HostInputs(Tensor latent, Tensor ids, Tensor txt, Tensor y, Tensor txtNeg, Tensor yNeg, Tensor ref) {}

    private Tensor denoise(FluxRequest r, FlowMatchSchedule schedule, Tensor latent, Tensor ids, Tensor txt, Tensor y, Tensor txtNeg,
                           Tensor yNeg, Tensor ref, long nImg, FluxProgress progress, Supplier<? extends StepCache> cache) {
        Ops main = pipeline.ops();
        List<Tensor> hosts = new ArrayList<>();
        Function<Tensor, Tensor> host = t -> {
            if (t == null) return null;
            Tensor h = main.device().isCpu() ? main.copy(t) : main.toHost(t);
            hosts.add(h);
            return h;
        };
        try {
            HostInputs in = new HostInputs(host.apply(latent), ids, host.apply(txt), host.apply(y), host.apply(txtNeg),
                    host.apply(yNeg), host.apply(ref));
            loadMissingWeights();
            List<float[]> out;
            try {
                out = MeshRunner.run(meshComms(), comms -> cache == null
                        ? rankLoop(comms.rank(), comms, r, schedule, in, nImg, progress)
                        : cachedRankLoop(comms.rank(), comms, r, schedule, in, nImg, progress, cache.get()));
            } catch (RuntimeException | Error e) {
                link.sever();          // a multi-node mesh: the other nodes stop instead of waiting for these ranks
                dropMeshComms();
                throw e;
            }
            lastRankLatents = List.copyOf(out);
            float[] x0 = out.getFirst();
            Tensor h = Tensor.of(x0, r.batch(), nImg, latent.dim(2));
            if (main.device().isCpu()) return h;
            try (h) { return main.upload(h); }
        } finally {
            for (Tensor t : hosts) t.close();
        }
    }

    /** This process's ranks without weights get them from one opening of the checkpoint, uploaded in parallel. */
    private void loadMissingWeights() {
        List<Integer> missing = new ArrayList<>();
        for (Communicator w : worlds) if (weights[w.rank()] == null) missing.add(w.rank());
        if (missing.isEmpty()) return;
        List<Ops> targets = new ArrayList<>();
        for (int r : missing) targets.add(rankOps.get(r));
        List<FluxWeights> loaded = pipeline.loadTransformerWeights(targets);
        for (int i = 0; i < missing.size(); i++) weights[missing.get(i)] = loaded.get(i);
    }

    /**
     * The ranks' axis groups, split from the worlds on the first request and kept for the next ones (each split is an
     * NCCL communicator creation); dropped after a failed request (its abort reached them).
     */
    private synchronized List<org.dit4j.engine.parallel.MeshComms> meshComms() {
        if (comms == null) comms = MeshRunner.open(config, worlds);
        return comms;
    }

    private synchronized void dropMeshComms() {
        if (comms == null) return;
        for (org.dit4j.engine.parallel.MeshComms c : comms) {
            try {
                c.close();
            } catch (RuntimeException ignored) {
                // groups of an aborted world: the failure that aborted them is the one reported
            }
        }
        comms = null;
    }

    private float[] rankLoop(int rank, org.dit4j.engine.parallel.MeshComms comms, FluxRequest r, FlowMatchSchedule schedule,
                             HostInputs in, long nImg, FluxProgress progress) {
        Ops ops = rankOps.get(rank);
        FluxPipeline.Settings settings = pipeline.settings();
        DType act = settings.activation();
        try (Scope s = Scope.open()) {
            FluxTransformer model = FluxSequenceParallel.model(ops, comms, weights[rank]);
            FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
            DataParallel dp = DataParallel.of(comms);
            CfgParallel cfg = CfgParallel.of(comms);
            boolean trueCfg = in.txtNeg() != null;
            Tensor txt = dp.shardBatch(ops, dev(ops, in.txt())), y = dp.shardBatch(ops, dev(ops, in.y()));
            Tensor txtNeg = trueCfg ? dp.shardBatch(ops, dev(ops, in.txtNeg())) : null;
            Tensor yNeg = trueCfg ? dp.shardBatch(ops, dev(ops, in.yNeg())) : null;
            Tensor ref = in.ref() == null ? null : dp.shardBatch(ops, dev(ops, in.ref()));
            Tensor x = dp.shardBatch(ops, dev(ops, in.latent()));
            int b = Math.toIntExact(x.dim(0));
            float[] guidance = null;
            if (pipeline.transformerConfig().guidanceEmbed()) {
                guidance = new float[b];
                Arrays.fill(guidance, r.guidance());
            }
            Tensor txtIds = FluxPacking.textIds(txt.dim(1));
            FluxTransformer.Conditioning cond = sp.prepare(model, times(b, schedule.modelTimestep(0)), guidance, in.ids(), txtIds, act);
            // fixed inputs: the text shards once per request; on a GPU with graphs on, the image shard and the time
            // embedding are copied into tensors allocated here, so the forward can be captured after an eager first step
            Tensor txtShard = sp.shard(ops, txt, 1), txtNegShard = trueCfg ? sp.shard(ops, txtNeg, 1) : null;
            CudaBackend cuda = settings.cudaGraphs() && ops instanceof CudaBackend cb ? cb : null;
            long[] shardRows = sp.rows(x.dim(1) + (ref == null ? 0 : ref.dim(1)));
            Tensor imgIn = cuda == null ? null : ops.empty(act, Shape.of(b, shardRows[1] - shardRows[0], x.dim(2)));
            Map<CfgParallel.Branch, CudaGraph> graphs = new EnumMap<>(CfgParallel.Branch.class);
            Map<CfgParallel.Branch, Tensor> graphOut = new EnumMap<>(CfgParallel.Branch.class);
            long start = System.nanoTime();
            try {
                for (int i = 0; i < schedule.steps(); i++) {
                    final int step = i;
                    try (Scope st = Scope.open()) {
                        Tensor tSin = FluxEmbeddings.sinEmb(ops, times(b, schedule.modelTimestep(i)), act);
                        Tensor xIn = ops.cast(x, act);
                        if (ref != null) xIn = ops.concat(1, xIn, ref);
                        Tensor xShard = sp.shard(ops, xIn, 1);
                        FluxTransformer.Conditioning c;
                        if (cuda != null) {
                            cuda.copyInto(cond.timeSin(), tSin);
                            cuda.copyInto(imgIn, xShard);
                            xShard = imgIn;
                            c = cond;
                        } else {
                            c = new FluxTransformer.Conditioning(tSin, cond.guidanceSin(), cond.pe(), cond.nTxt(), cond.nImg());
                        }
                        Tensor img = xShard;
                        Function<CfgParallel.Branch, Tensor> forward = branch -> {
                            boolean pos = branch == CfgParallel.Branch.COND;
                            Tensor t = pos ? txtShard : txtNegShard, yy = pos ? y : yNeg;
                            Tensor v;
                            if (cuda == null || step == 0) {
                                v = model.forward(img, t, yy, c);               // eager (on a GPU: kernels compile, plans cached)
                            } else {
                                CudaGraph g = graphs.get(branch);
                                if (g == null) {
                                    // every rank of a sequence group captures at the same step (collectives inside)
                                    g = CudaGraph.capture(cuda, () -> graphOut.put(branch, Scope.detach(model.forward(img, t, yy, c))));
                                    graphs.put(branch, g);
                                }
                                g.replay();
                                v = graphOut.get(branch);
                            }
                            v = sp.gather(v, 1);
                            return ref != null ? ops.slice(v, 1, 0, nImg) : v;
                        };
                        Tensor v;
                        if (trueCfg) {
                            CfgParallel.Pair p = cfg.both(forward);
                            v = FlowMatchEuler.trueCfg(ops, p.cond(), p.uncond(), r.trueCfgScale());
                        } else {
                            v = forward.apply(CfgParallel.Branch.COND);
                        }
                        Tensor next = FlowMatchEuler.step(ops, schedule, i, x, v);
                        x.close();
                        x = st.keep(next);
                    }
                    ops.synchronize();
                    if (rank == leadRank) progress.step(i + 1, schedule.steps(), (System.nanoTime() - start) / 1e9);
                }
                if (rank == leadRank) lastUsedGraphs = !graphs.isEmpty();
            } finally {
                for (CudaGraph g : graphs.values()) g.close();
                for (Tensor t : graphOut.values()) t.close();
                if (imgIn != null) imgIn.close();
                cond.close();
            }
            Tensor all = dp.gatherBatch(x);
            return (ops.device().isCpu() ? all : ops.toHost(all)).toFloatArray();
        } finally {
            if (!settings.keepLoaded()) {
                weights[rank].close();
                weights[rank] = null;
            }
        }
    }

    /** One rank's denoising loop under a step cache (sequence-parallel mesh: cfg = dp = 1). */
    private float[] cachedRankLoop(int rank, org.dit4j.engine.parallel.MeshComms comms, FluxRequest r, FlowMatchSchedule schedule,
                                   HostInputs in, long nImg, FluxProgress progress, StepCache policy) {
        Ops ops = rankOps.get(rank);
        DType act = pipeline.settings().activation();
        try (Scope s = Scope.open()) {
            FluxTransformer model = FluxSequenceParallel.model(ops, comms, weights[rank]);
            FluxSequenceParallel sp = FluxSequenceParallel.of(comms);
            boolean trueCfg = in.txtNeg() != null;
            Tensor txt = dev(ops, in.txt()), y = dev(ops, in.y());
            Tensor txtNeg = trueCfg ? dev(ops, in.txtNeg()) : null, yNeg = trueCfg ? dev(ops, in.yNeg()) : null;
            Tensor ref = in.ref() == null ? null : dev(ops, in.ref());
            Tensor x = ops.copy(dev(ops, in.latent()));          // a rank-owned copy: the loop closes each step's x
            int b = Math.toIntExact(x.dim(0));
            float[] guidance = null;
            if (pipeline.transformerConfig().guidanceEmbed()) {
                guidance = new float[b];
                Arrays.fill(guidance, r.guidance());
            }
            Tensor txtIds = FluxPacking.textIds(txt.dim(1));
            FluxTransformer.Conditioning cond = sp.prepare(model, times(b, schedule.modelTimestep(0)), guidance, in.ids(), txtIds, act);
            long[] rows = sp.rows(in.ids().dim(0));
            Map<Branch, FluxCachedTransformer.Text> texts = new EnumMap<>(Branch.class);
            texts.put(Branch.COND, new FluxCachedTransformer.Text(sp.shard(ops, txt, 1), y));
            if (trueCfg) texts.put(Branch.UNCOND, new FluxCachedTransformer.Text(sp.shard(ops, txtNeg, 1), yNeg));
            Communicator group = comms.sequence();
            FluxCachedTransformer.Options options = FluxCachedTransformer.Options.eager()
                    .withCudaGraphs(pipeline.settings().cudaGraphs() && CachePrograms.cudaOf(ops) != null)
                    .withReduce(rel -> reduceRelL1(ops, group, rel));
            Tensor imgIn = ops.empty(act, Shape.of(b, rows[1] - rows[0], x.dim(2)));
            FluxCachedTransformer ct = null;
            try {
                // closed below, before the scope ends (closing untracks them from it)
                ct = new FluxCachedTransformer(ops, model, policy, "flux-mesh-" + rank, schedule.steps(), imgIn, cond, texts, options);
                long start = System.nanoTime();
                for (int i = 0; i < schedule.steps(); i++) {
                    try (Scope st = Scope.open()) {
                        CachePrograms.copyInto(ops, cond.timeSin(), FluxEmbeddings.sinEmb(ops, times(b, schedule.modelTimestep(i)), act));
                        Tensor xIn = ops.cast(x, act);
                        if (ref != null) xIn = ops.concat(1, xIn, ref);
                        CachePrograms.copyInto(ops, imgIn, sp.shard(ops, xIn, 1));
                        Tensor v = sp.gather(ct.velocity(i, Branch.COND), 1);
                        if (ref != null) v = ops.slice(v, 1, 0, nImg);
                        if (trueCfg) {
                            Tensor vNeg = sp.gather(ct.velocity(i, Branch.UNCOND), 1);
                            if (ref != null) vNeg = ops.slice(vNeg, 1, 0, nImg);
                            v = FlowMatchEuler.trueCfg(ops, v, vNeg, r.trueCfgScale());
                        }
                        Tensor next = FlowMatchEuler.step(ops, schedule, i, x, v);
                        x.close();
                        x = st.keep(next);
                    }
                    ops.synchronize();
                    if (rank == leadRank) progress.step(i + 1, schedule.steps(), (System.nanoTime() - start) / 1e9);
                }
                if (rank == leadRank) {
                    lastCacheReport = new FluxPipeline.CacheReport(policy.describe(), ct.summary(), ct.trace(), null);
                    lastUsedGraphs = ct.usedGraphs();
                }
                return (ops.device().isCpu() ? x : ops.toHost(x)).toFloatArray();
            } finally {
                if (ct != null) ct.close();
                imgIn.close();
                cond.close();
            }
        } finally {
            if (!pipeline.settings().keepLoaded()) {
                weights[rank].close();
                weights[rank] = null;
            }
        }
    }

    /**
     * The whole sequence's relative-L1 sums from every rank's shard: the ranks' (hi, lo) float pairs are gathered and
     * added in rank order in double, so every rank gets the same bits (equal shards: the counts scale by the group size).
     */
    public static Signals.RelL1 reduceRelL1(Ops ops, Communicator group, Signals.RelL1 mine) {
        if (group.size() == 1) return mine;
        float dh = (float) mine.absDiffSum(), rh = (float) mine.absRefSum();
        float[] four = {dh, (float) (mine.absDiffSum() - dh), rh, (float) (mine.absRefSum() - rh)};
        try (Scope s = Scope.open()) {
            Tensor local = Tensor.of(four, 1, 4);
            Tensor all = group.allGather(ops.device().isCpu() ? local : ops.upload(local), 0);
            float[] v = (all.device().isCpu() ? all : ops.toHost(all)).toFloatArray();
            double diff = 0, ref = 0;
            for (int k = 0; k < group.size(); k++) {
                diff += (double) v[4 * k] + v[4 * k + 1];
                ref += (double) v[4 * k + 2] + v[4 * k + 3];
            }
            return new Signals.RelL1(diff, mine.diffCount() * group.size(), ref, mine.refCount() * group.size());
        }
    }


    private static Tensor dev(Ops ops, Tensor host) { return ops.device().isCpu() ? host : ops.upload(host); }

    private static float[] times(int b, float t) {
        float[] a = new float[b];
        Arrays.fill(a, t);
        return a;
    }


    /** Releases the ranks' weights and what this object opened (extra backends, NCCL communicators); not the pipeline. */
    @Override public void close() {
        link.close();
        dropMeshComms();
        for (int r = 0; r < weights.length; r++) {
            if (weights[r] != null) weights[r].close();
            weights[r] = null;
        }
        MeshBackends.closeAll(owned);
    }
}
