package org.dit4j.engine.wan;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.UnaryOperator;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CachePrograms;
import org.dit4j.engine.cache.CacheRun;
import org.dit4j.engine.cache.CacheTrace;
import org.dit4j.engine.cache.Decision;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.Signals;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.models.wan.WanTransformer;

/**
 * The Wan2.1 transformer calls of one request under a {@link StepCache}: per call it measures the policy's signal, asks
 * for a decision, and runs either the blocks (storing the new residual) or the residual path. The Wan counterpart of
 * {@link FluxCachedTransformer}, with the same three programs per CFG branch:
 * <pre>
 * head    time embedding e (F32), e0 = time_projection(e), patch embedding → base = tokens
 *         FBCache: + block 0; base = its output, signal = its residual (out₀ − tokens)
 * tail    remaining blocks from base → out;  residual = out − base;  velocity = head(out, e)
 * apply   velocity = head(base + residual, e)
 * </pre>
 * What the reference implementations measure and cache, checked against their code:
 * <ul>
 *   <li>TeaCache4Wan2.1 ({@code teacache_generate.py}, {@code teacache_forward}): the signal is {@code e} (the time
 *       embedding, F32 [B, D]) or, with {@code --use_ret_steps}, {@code e0} (the time projection, F32 [B, 6, D]); the
 *       cached residual is the tokens after the last block minus the patch-embedded tokens; cond and uncond calls
 *       alternate ({@code cnt % 2}) and keep separate accumulators, previous signals and residuals. Both depend only on
 *       the timestep, so every rank of a sequence-parallel group holds the whole signal: no reduction is needed.</li>
 *   <li>MagCache4Wan2.1 ({@code magcache_generate.py}, {@code magcache_forward}): nothing measured; the same residual
 *       (blocks' output − input) per branch.</li>
 *   <li>First-Block Cache (ParaAttention): block 0's residual against the last computed call's; the cached residual is
 *       the last block's output minus block 0's. The signal is sharded with the tokens: {@link Options#reduce} sums it
 *       over the sequence-parallel group.</li>
 * </ul>
 * dit4j computes e in F32 and e0 from e rounded to the activation dtype (diffusers' bf16 behaviour,
 * {@link WanTransformer#embed}); the original Wan code keeps both in F32. In F32 runs the two agree exactly.
 * <p>
 * Programs read and write only fixed tensors — the latent and the conditioning's sinusoidal time input that the caller
 * overwrites before each step, and per-branch buffers — so on a CUDA backend each program runs eagerly once and is then
 * captured as a CUDA graph and replayed: one graph per branch and program. Without graphs (CPU, {@code --no-compile})
 * the same programs run eagerly, so the CPU tests exercise the data flow of the graph path.
 * <p>
 * <b>On a sequence-parallel shard</b> (a conditioning of some token rows, {@link WanTransformer#prepareRows}; the model's
 * self-attention over the group, {@code WanSequenceParallel.model}) every program works on the rank's rows only, and the
 * velocity is the head's output for those rows before unpatchify ({@link WanTransformer#headTokens}): the caller gathers
 * it over the sequence group in row order and unpatchifies ({@code WanSequenceParallel.velocity}). Every rank of the
 * group runs its own policy; TeaCache's signals are time-only (the same on every rank), First-Block Cache's relative-L1
 * sums are reduced by {@link Options#reduce}, so all ranks take the same decisions and run the same programs at the
 * same calls (the graphs, with the collectives inside, are captured by all ranks at the same call). MagCache
 * calibration needs the whole residual and runs on one device only.
 */
public final class WanCachedTransformer implements AutoCloseable {

    /** What a policy measures on the Wan forward. */
    public enum Signal {
        /** Nothing (MagCache, NoCache). */
        NONE,
        /** TeaCache4Wan2.1: the time embedding e, F32 [B, D]. */
        TIME_EMBEDDING,
        /** TeaCache4Wan2.1 ret mode: the time projection e0, F32 [B, 6, D]. */
        TIME_PROJECTION,
        /** First-Block Cache: block 0's residual, against the last computed call's. */
        FIRST_BLOCK_RESIDUAL;

        /** The signal of a policy the Wan pipeline supports; the error names what is supported. */
        public static Signal of(StepCache policy) {
            Objects.requireNonNull(policy, "policy");
            if (policy instanceof NoCache || policy instanceof MagCache) return NONE;
            if (policy instanceof FirstBlockCache) return FIRST_BLOCK_RESIDUAL;
            if (policy instanceof TeaCache t) {
                TeaCache.Preset p = t.config().preset();
                if (p.signal().equals(TeaCache.WAN21_T2V_1_3B.signal())) return TIME_EMBEDDING;
                if (p.signal().equals(TeaCache.WAN21_T2V_1_3B_RET.signal())) return TIME_PROJECTION;
                throw new IllegalArgumentException("TeaCache preset " + p.id() + " measures \"" + p.signal()
                        + "\", which the Wan transformer does not have; use a Wan2.1 preset (TeaCache.WAN21_T2V_1_3B, _14B, or their _RET)");
            }
            throw new IllegalArgumentException("the Wan pipeline supports TeaCache, MagCache, FirstBlockCache and NoCache, got "
                    + policy.getClass().getName() + " (" + policy.describe() + ")");
        }

        /** Whether the signal is sharded with the tokens in a sequence-parallel run (and must be reduced). */
        public boolean sharded() { return this == FIRST_BLOCK_RESIDUAL; }
    }

    /**
     * How the calls run.
     *
     * @param cudaGraphs      capture each program as a CUDA graph after its first (eager) run; needs a CUDA backend
     * @param calibration     record MagCache γ for this run (every step computed: the policy must be {@link NoCache}), or null
     * @param reduce          all-reduces a rank's signal sums over the sequence-parallel group (applied to sharded signals
     *                        only, see {@link Signal#sharded}); identity on one rank
     * @param residualsOnHost keep each branch's cached residual in (pinned) host memory: one device buffer serves all
     *                        branches, copied out after a computed call and back before a skipped one (inside the graphs)
     */
    public record Options(boolean cudaGraphs, MagCacheCalibration calibration, UnaryOperator<Signals.RelL1> reduce,
                          boolean residualsOnHost) {
        public Options {
            Objects.requireNonNull(reduce, "reduce (UnaryOperator.identity() on one rank)");
        }

        /** Eager, no calibration, one rank. */
        public static Options eager() { return new Options(false, null, UnaryOperator.identity(), false); }

        public Options withCudaGraphs(boolean g) { return new Options(g, calibration, reduce, residualsOnHost); }

        public Options withCalibration(MagCacheCalibration c) { return new Options(cudaGraphs, c, reduce, residualsOnHost); }

        public Options withReduce(UnaryOperator<Signals.RelL1> r) { return new Options(cudaGraphs, calibration, r, residualsOnHost); }

        public Options withResidualsOnHost(boolean h) { return new Options(cudaGraphs, calibration, reduce, h); }
    }

    private final Ops ops;
    private final WanTransformer model;
    private final Signal signal;
    private final Tensor latent;
    private final WanTransformer.Conditioning cond;
    private final CudaBackend cuda;
    private final Options options;
    private final CacheRun<Tensor> run;
    private final CacheTrace trace = new CacheTrace();
    private final EnumMap<Branch, Lane> lanes = new EnumMap<>(Branch.class);
    private final long dim;
    private Tensor sharedResidual;
    private boolean closed;

    /**
     * Allocates the per-branch buffers; call it outside any {@link Scope} (the buffers live until {@link #close}).
     *
     * @param latent the latent [B, C, F, H, W] in the activation dtype that the caller overwrites before every step (fixed)
     * @param cond   the conditioning; the caller overwrites its sinusoidal time input before every step (fixed)
     * @param texts  the branches of this request with their embedded text [B, Lc, D] ({@link WanTransformer#embedText}):
     *               {@link Branch#COND}, and {@link Branch#UNCOND} with classifier-free guidance
     */
    public WanCachedTransformer(Ops ops, WanTransformer model, StepCache policy, String requestId, int totalSteps, Tensor latent,
                                WanTransformer.Conditioning cond, Map<Branch, Tensor> texts, Options options) {
        this.ops = Objects.requireNonNull(ops, "ops");
        this.model = Objects.requireNonNull(model, "model");
        this.signal = Signal.of(policy);
        this.latent = Objects.requireNonNull(latent, "latent");
        this.cond = Objects.requireNonNull(cond, "cond");
        this.options = Objects.requireNonNull(options, "options");
        this.dim = model.config().dim();
        if (texts.isEmpty() || !texts.containsKey(Branch.COND))
            throw new IllegalArgumentException("texts must hold the COND branch (and UNCOND with classifier-free guidance), got " + texts.keySet());
        MagCacheCalibration cal = options.calibration();
        if (cal != null) {
            if (!(policy instanceof NoCache))
                throw new IllegalArgumentException("MagCache calibration computes every step; run it without a cache (NoCache), not "
                        + policy.describe());
            if (cal.totalSteps() != totalSteps || cal.branches() != texts.size())
                throw new IllegalArgumentException("MagCache calibration " + cal.id() + " was made for " + cal.totalSteps() + " steps × "
                        + cal.branches() + " branch(es), this run has " + totalSteps + " × " + texts.size());
        }
        this.cuda = options.cudaGraphs() ? CachePrograms.cudaOf(ops) : null;
        if (options.cudaGraphs() && cuda == null)
            throw new IllegalArgumentException("CUDA graphs need a CUDA backend, got " + ops.name() + "; use cudaGraphs = false");
        if (cal != null && cond.isShard())
            throw new IllegalArgumentException("MagCache calibration needs the whole residual; run it on one device, not on a sequence-parallel "
                    + "shard (token rows [" + cond.rowStart() + ", " + cond.rowEnd() + ") of " + cond.gridTokens() + ")");
        if (signal == Signal.FIRST_BLOCK_RESIDUAL && model.depth() < 1)
            throw new IllegalArgumentException("First-Block Cache needs a block; this Wan model has none");
        this.run = policy.begin(requestId, totalSteps);
        try {
            if (options.residualsOnHost()) sharedResidual = ops.empty(latent.dtype(), tokenShape());
            for (Map.Entry<Branch, Tensor> e : texts.entrySet()) lanes.put(e.getKey(), new Lane(e.getKey(), e.getValue()));
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    /** The signal this request measures. */
    public Signal signal() { return signal; }

    /**
     * The velocity [B, outChannels, F, H, W] of one branch at one step, computed or from the cached residual as the
     * policy decides — on a sequence-parallel shard the head's output for the rank's token rows, [B, rows, pt·ph·pw·C]
     * before unpatchify (see the class comment). Call it after writing the step's inputs into the latent and the
     * conditioning's time input; steps in increasing order per branch. The result is this object's buffer: valid until
     * the branch's next call, never closed by the caller.
     */
    public Tensor velocity(int step, Branch branch) {
        if (closed) throw new IllegalStateException("this cached transformer is closed");
        Lane l = lanes.get(branch);
        if (l == null) throw new IllegalArgumentException("branch " + branch.label() + " was not set up for this request; it has " + lanes.keySet());
        l.head.run();
        Signals s = Signals.NONE;
        if (signal != Signal.NONE && run.needsSignal(step, branch) && run.reference(branch) != null) {
            Tensor x = l.signal();
            double[] sums = ops.absSums(x, l.reference);
            long n = x.numel();
            Signals.RelL1 r = Signals.relL1(sums[0], n, sums[1], n);
            s = signal.sharded() ? options.reduce().apply(r) : r;
        }
        Decision d = run.decide(step, branch, s);
        trace.record(step, branch, s, d);
        if (d.updateSignalReference()) {
            CachePrograms.copyInto(ops, l.reference, l.signal());
            run.storeReference(branch, CachePrograms.borrowed(l.reference));
        }
        if (d.skip()) {
            l.apply.run();
        } else {
            l.tail.run();
            run.storeResidual(branch, CacheRun.Slot.HIDDEN, CachePrograms.borrowed(l.hostResidual != null ? l.hostResidual : l.residual));
            if (options.calibration() != null) calibrate(step, branch, l);
        }
        return l.velocity;
    }

    /** What was decided so far. */
    public RunSummary summary() { return run.summary(); }

    /** The signals and decisions so far. */
    public CacheTrace trace() { return trace; }

    /** Whether any program of this request runs from a CUDA graph. */
    public boolean usedGraphs() {
        for (Lane l : lanes.values()) if (l.head.usesGraph() || l.tail.usesGraph() || l.apply.usesGraph()) return true;
        return false;
    }

    private void calibrate(int step, Branch branch, Lane l) {
        float[] cur = host(l.residual);
        if (step >= 1) {
            if (l.previousResidual == null)
                throw new IllegalStateException("MagCache calibration: step " + (step - 1) + " " + branch.label() + " was not computed");
            options.calibration().record(step, branch, MagCacheCalibration.StepNorms.ofHost(cur, l.previousResidual, (int) dim));
        }
        l.previousResidual = cur;
    }

    private float[] host(Tensor t) {
        if (t.device().isCpu()) return t.toFloatArray();
        try (Tensor h = ops.toHost(t)) {
            return h.toFloatArray();
        }
    }

    /** Stops the request: releases the graphs and buffers and drops the policy's state. Idempotent. */
    @Override public void close() {
        if (closed) return;
        closed = true;
        RuntimeException failure = null;
        for (Lane l : lanes.values()) {
            try {
                l.close();
            } catch (RuntimeException e) {
                if (failure == null) failure = e;
            }
        }
        run.close();
        if (sharedResidual != null) sharedResidual.close();
        if (failure != null) throw failure;
    }

    // ------------------------------------------------------------------------------------------------ internals

    private Shape tokenShape() { return Shape.of(latent.dim(0), cond.tokens(), dim); }

    /** One branch: its embedded text, its fixed buffers and its three programs. */
    private final class Lane implements AutoCloseable {
        final Tensor text;
        /** Head outputs: the tokens the blocks (or the residual) continue from, e (F32 and activation dtype), e0 (F32). */
        final Tensor base, time, timeAct, modulation;
        /** First-Block Cache's block-0 residual (null otherwise); the signal reference (null without a signal). */
        final Tensor blockResidual, reference;
        final Tensor residual, velocity;
        /** The residual in host memory (pinned on CUDA) with {@link Options#residualsOnHost}, else null. */
        final Tensor hostResidual;
        final CachePrograms.Program head, tail, apply;
        float[] previousResidual;

        Lane(Branch branch, Tensor text) {
            this.text = text;
            long b = latent.dim(0);
            DType act = latent.dtype();
            Shape tokens = tokenShape();
            base = ops.empty(act, tokens);
            time = ops.empty(DType.F32, Shape.of(b, dim));
            timeAct = act == DType.F32 ? null : ops.empty(act, Shape.of(b, dim));
            modulation = ops.empty(DType.F32, Shape.of(b, 6, dim));
            blockResidual = signal == Signal.FIRST_BLOCK_RESIDUAL ? ops.empty(act, tokens) : null;
            reference = switch (signal) {
                case NONE -> null;
                case TIME_EMBEDDING -> ops.empty(DType.F32, time.shape());
                case TIME_PROJECTION -> ops.empty(DType.F32, modulation.shape());
                case FIRST_BLOCK_RESIDUAL -> ops.empty(act, tokens);
            };
            if (options.residualsOnHost()) {
                residual = sharedResidual;
                hostResidual = CachePrograms.hostResidual(ops, act, tokens);
            } else {
                residual = ops.empty(act, tokens);
                hostResidual = null;
            }
            velocity = cond.isShard() ? ops.empty(act, Shape.of(b, cond.tokens(), model.config().patchFeaturesOut()))
                    : ops.empty(act, Shape.of(b, model.config().outChannels(), latent.dim(2), latent.dim(3), latent.dim(4)));
            String name = branch.label();
            head = new CachePrograms.Program("head " + name + " program of the Wan step cache", this::head, cuda);
            tail = new CachePrograms.Program("tail " + name + " program of the Wan step cache", this::tail, cuda);
            apply = new CachePrograms.Program("apply " + name + " program of the Wan step cache", this::apply, cuda);
        }

        /** The tensor the policy measures. */
        Tensor signal() {
            return switch (WanCachedTransformer.this.signal) {
                case NONE -> throw new IllegalStateException("this request measures no signal");
                case TIME_EMBEDDING -> time;
                case TIME_PROJECTION -> modulation;
                case FIRST_BLOCK_RESIDUAL -> blockResidual;
            };
        }

        /** The head's outputs as the model's stage record. */
        WanTransformer.Embedded embedded() {
            return new WanTransformer.Embedded(base, time, timeAct != null ? timeAct : time, modulation);
        }

        private void head() {
            try (Scope s = Scope.open()) {
                WanTransformer.Embedded e = model.embed(latent, cond);
                CachePrograms.copyInto(ops, time, e.time());
                if (timeAct != null) CachePrograms.copyInto(ops, timeAct, e.timeAct());
                CachePrograms.copyInto(ops, modulation, e.modulation());
                Tensor next = e.tokens();
                if (signal == Signal.FIRST_BLOCK_RESIDUAL) {
                    next = model.blocks(e.tokens(), text, e, cond, 0, 1);
                    CachePrograms.copyInto(ops, blockResidual, ops.sub(next, e.tokens()));
                }
                CachePrograms.copyInto(ops, base, next);
            }
        }

        private void tail() {
            try (Scope s = Scope.open()) {
                WanTransformer.Embedded e = embedded();
                int from = signal == Signal.FIRST_BLOCK_RESIDUAL ? 1 : 0;
                Tensor out = model.blocks(base, text, e, cond, from, model.depth());
                CachePrograms.copyInto(ops, residual, ops.sub(out, base));
                if (hostResidual != null) CachePrograms.copyBetween(ops, hostResidual, residual);
                CachePrograms.copyInto(ops, velocity, cond.isShard() ? model.headTokens(out, e) : model.head(out, e, cond));
            }
        }

        private void apply() {
            try (Scope s = Scope.open()) {
                if (hostResidual != null) CachePrograms.copyBetween(ops, residual, hostResidual);
                CachePrograms.copyInto(ops, velocity, cond.isShard() ? model.headTokens(ops.add(base, residual), embedded())
                        : model.applyResidual(base, residual, embedded(), cond));
            }
        }

        @Override public void close() {
            try {
                head.close();
                tail.close();
                apply.close();
            } finally {
                Tensor own = hostResidual != null ? hostResidual : residual;    // the shared device buffer is closed by the owner
                for (Tensor t : new Tensor[] {base, time, timeAct, modulation, blockResidual, reference, own, velocity})
                    if (t != null) t.close();
            }
        }
    }

}
