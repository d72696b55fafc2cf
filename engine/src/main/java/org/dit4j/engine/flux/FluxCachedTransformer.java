package org.dit4j.engine.flux;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;
import java.util.function.UnaryOperator;

import org.dit4j.core.ops.Ops;
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
import org.dit4j.models.flux.FluxTransformer;

/**
 * The Flux transformer calls of one request under a {@link StepCache}: per call it measures the policy's signal, asks
 * for a decision, and runs either the remaining blocks (storing the new residual) or the residual path.
 *
 * <h2>The three programs of a branch</h2>
 * <pre>
 * head    embed (img_in, txt_in, vec)                         → base = img_in output, txt, SiLU(vec)
 *         TeaCache: + signal = block-0 modulated input
 *         FBCache:  + double block 0; base = its image output, signal = its residual (out₀ − img_in output)
 * tail    remaining blocks from base → out;  residual = out − base;  velocity = finalLayer(out)
 * apply   velocity = finalLayer(base + residual)
 * </pre>
 * Residuals as the reference implementations take them: TeaCache4FLUX and MagCache4FLUX cache the image tokens after
 * the last single block minus the img_in output; ParaAttention's First-Block Cache the same output minus block 0's.
 * Every call runs head, then (after the decision, which needs the signal on the host: one synchronisation per call
 * for TeaCache and FBCache, as the references' {@code .item()}) tail or apply.
 * <p>
 * Programs read and write only fixed tensors of this object — the inputs the caller refreshes before each step
 * ({@code img}, the conditioning's time embedding) and per-branch buffers (base, text state, SiLU(vec), signal,
 * signal reference, residual, velocity) — so on a CUDA backend each program is run eagerly once and then captured
 * as a CUDA graph and replayed: one graph per branch and program. Without graphs (CPU, {@code --no-compile}) the
 * same programs run eagerly each time, so the CPU tests exercise the data flow of the graph path.
 * <p>
 * Sequence parallel: give each rank its own instance over its shard and a {@code reduce} that all-reduces the four
 * numbers of {@link Signals.RelL1}; decisions then agree on every rank.
 */
public final class FluxCachedTransformer implements AutoCloseable {

    /** What a policy measures on the Flux forward. */
    public enum Signal {
        /** Nothing (MagCache, NoCache). */
        NONE,
        /** TeaCache: double block 0's modulated image input, against the previous call's. */
        MODULATED_INPUT,
        /** First-Block Cache: double block 0's image residual, against the last computed call's. */
        FIRST_BLOCK_RESIDUAL;

        /** The signal of a policy the Flux pipeline supports; the error names what is supported. */
        public static Signal of(StepCache policy) {
            Objects.requireNonNull(policy, "policy");
            if (policy instanceof NoCache || policy instanceof MagCache) return NONE;
            if (policy instanceof FirstBlockCache) return FIRST_BLOCK_RESIDUAL;
            if (policy instanceof TeaCache t) {
                TeaCache.Preset p = t.config().preset();
                if (!p.signal().equals(TeaCache.FLUX.signal()))
                    throw new IllegalArgumentException("TeaCache preset " + p.id() + " measures \"" + p.signal()
                            + "\", which the Flux transformer does not have; use TeaCache.FLUX (or a preset with its signal)");
                return MODULATED_INPUT;
            }
            throw new IllegalArgumentException("the Flux pipeline supports TeaCache, MagCache, FirstBlockCache and NoCache, got "
                    + policy.getClass().getName() + " (" + policy.describe() + ")");
        }
    }

    /** The text conditioning of a branch: T5 states [B, Ntxt, contextDim] and the pooled CLIP vector [B, vecDim]. */
    public record Text(Tensor txt, Tensor y) {
        public Text {
            Objects.requireNonNull(txt, "txt");
            Objects.requireNonNull(y, "y");
        }
    }

    /**
     * How the calls run.
     *
     * @param cudaGraphs  capture each program as a CUDA graph after its first (eager) run; needs a CUDA backend
     * @param calibration record MagCache γ for this run (every step computed: the policy must be {@link NoCache}), or null
     * @param reduce      all-reduces a rank's signal sums over the sequence-parallel group; identity on one rank
     * @param residualsOnHost keep each branch's cached residual in (pinned) host memory instead of the GPU: one device
     *                    buffer serves all branches, the residual is copied out after a computed call and back before
     *                    a skipped one (both copies inside the CUDA graphs). For long videos / many branches short of
     *                    GPU memory; costs two PCIe copies per call
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
    private final FluxTransformer model;
    private final Signal signal;
    private final Tensor img;
    private final FluxTransformer.Conditioning cond;
    private final CudaBackend cuda;
    private final Options options;
    private final CacheRun<Tensor> run;
    private final CacheTrace trace = new CacheTrace();
    private final EnumMap<Branch, Lane> lanes = new EnumMap<>(Branch.class);
    private final int totalSteps;
    /** With residuals on the host: the one device buffer all branches compute into and apply from. */
    private Tensor sharedResidual;
    private boolean closed;

    /**
     * Allocates the per-branch buffers; call it outside any {@link Scope} (the buffers live until {@link #close}).
     *
     * @param img   the packed image tokens [B, N, inChannels] that the caller overwrites before every step (fixed)
     * @param cond  the conditioning; the caller overwrites its time embedding before every step (fixed)
     * @param texts the branches of this request with their text conditioning ({@link Branch#COND}, and
     *              {@link Branch#UNCOND} with true CFG)
     */
    public FluxCachedTransformer(Ops ops, FluxTransformer model, StepCache policy, String requestId, int totalSteps, Tensor img,
                                 FluxTransformer.Conditioning cond, Map<Branch, Text> texts, Options options) {
        this.ops = Objects.requireNonNull(ops, "ops");
        this.model = Objects.requireNonNull(model, "model");
        this.signal = Signal.of(policy);
        this.img = Objects.requireNonNull(img, "img");
        this.cond = Objects.requireNonNull(cond, "cond");
        this.options = Objects.requireNonNull(options, "options");
        this.totalSteps = totalSteps;
        if (texts.isEmpty() || !texts.containsKey(Branch.COND))
            throw new IllegalArgumentException("texts must hold the COND branch (and UNCOND for true CFG), got " + texts.keySet());
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
        if (signal == Signal.FIRST_BLOCK_RESIDUAL && model.config().depth() < 1)
            throw new IllegalArgumentException("First-Block Cache needs a double block; this Flux model has none");
        this.run = policy.begin(requestId, totalSteps);
        try {
            if (options.residualsOnHost())
                sharedResidual = ops.empty(img.dtype(), Shape.of(img.dim(0), img.dim(1), model.config().hiddenSize()));
            for (Map.Entry<Branch, Text> e : texts.entrySet()) lanes.put(e.getKey(), new Lane(e.getKey(), e.getValue()));
        } catch (RuntimeException | Error e) {
            close();
            throw e;
        }
    }

    /** The signal this request measures. */
    public Signal signal() { return signal; }

    /**
     * The velocity [B, N, outChannels] of one branch at one step, computed or from the cached residual as the policy
     * decides. Call it after writing the step's inputs into {@code img} and the conditioning's time embedding; steps in
     * increasing order per branch. The result is this object's buffer: valid until the branch's next call, never
     * closed by the caller.
     */
    public Tensor velocity(int step, Branch branch) {
        if (closed) throw new IllegalStateException("this cached transformer is closed");
        Lane l = lanes.get(branch);
        if (l == null) throw new IllegalArgumentException("branch " + branch.label() + " was not set up for this request; it has " + lanes.keySet());
        l.head.run();
        Signals s = Signals.NONE;
        if (signal != Signal.NONE && run.needsSignal(step, branch) && run.reference(branch) != null) {
            double[] sums = ops.absSums(l.signal, l.reference);
            long n = l.signal.numel();
            s = options.reduce().apply(Signals.relL1(sums[0], n, sums[1], n));
        }
        Decision d = run.decide(step, branch, s);
        trace.record(step, branch, s, d);
        if (d.updateSignalReference()) {
            copyInto(ops, l.reference, l.signal);
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
            options.calibration().record(step, branch,
                    MagCacheCalibration.StepNorms.ofHost(cur, l.previousResidual, model.config().hiddenSize()));
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

    /** One branch: its text, its fixed buffers and its three programs. */
    private final class Lane implements AutoCloseable {
        final Text text;
        final Tensor vecSilu, base, txtState, signal, reference, residual, velocity;
        /** The residual in host memory (pinned on CUDA) with {@link Options#residualsOnHost}, else null. */
        final Tensor hostResidual;
        final CachePrograms.Program head, tail, apply;
        float[] previousResidual;

        Lane(Branch branch, Text text) {
            this.text = text;
            long b = img.dim(0), n = img.dim(1), d = model.config().hiddenSize();
            var act = img.dtype();
            Shape tokens = Shape.of(b, n, d);
            vecSilu = ops.empty(act, Shape.of(b, d));
            base = ops.empty(act, tokens);
            txtState = ops.empty(act, Shape.of(b, text.txt().dim(1), d));
            signal = FluxCachedTransformer.this.signal == Signal.NONE ? null : ops.empty(act, tokens);
            reference = signal == null ? null : ops.empty(act, tokens);
            if (options.residualsOnHost()) {
                residual = sharedResidual;
                hostResidual = CachePrograms.hostResidual(ops, act, tokens);
            } else {
                residual = ops.empty(act, tokens);
                hostResidual = null;
            }
            velocity = ops.empty(act, Shape.of(b, n, model.config().outChannels()));
            String name = branch.label();
            head = new CachePrograms.Program("head " + name + " program of the Flux step cache", this::head, cuda);
            tail = new CachePrograms.Program("tail " + name + " program of the Flux step cache", this::tail, cuda);
            apply = new CachePrograms.Program("apply " + name + " program of the Flux step cache", this::apply, cuda);
        }

        private void head() {
            try (Scope s = Scope.open()) {
                FluxTransformer.Hidden e = model.embed(img, text.txt(), text.y(), cond);
                copyInto(ops, vecSilu, e.vecSilu());
                FluxTransformer.Hidden next = e;
                switch (FluxCachedTransformer.this.signal) {
                    case NONE -> { }
                    case MODULATED_INPUT -> copyInto(ops, signal, model.modulatedInput(e));
                    case FIRST_BLOCK_RESIDUAL -> {
                        next = model.firstBlock(e, cond);
                        copyInto(ops, signal, ops.sub(next.img(), e.img()));
                    }
                }
                copyInto(ops, base, next.img());
                copyInto(ops, txtState, next.txt());
            }
        }

        private void tail() {
            try (Scope s = Scope.open()) {
                int from = FluxCachedTransformer.this.signal == Signal.FIRST_BLOCK_RESIDUAL ? 1 : 0;
                Tensor out = model.remainingBlocks(new FluxTransformer.Hidden(vecSilu, base, txtState), cond, from);
                copyInto(ops, residual, ops.sub(out, base));
                if (hostResidual != null) CachePrograms.copyBetween(ops, hostResidual, residual);
                copyInto(ops, velocity, model.finalLayer(out, vecSilu));
            }
        }

        private void apply() {
            try (Scope s = Scope.open()) {
                if (hostResidual != null) CachePrograms.copyBetween(ops, residual, hostResidual);
                copyInto(ops, velocity, model.applyResidual(base, residual, vecSilu));
            }
        }

        @Override public void close() {
            try {
                head.close();
                tail.close();
                apply.close();
            } finally {
                Tensor own = hostResidual != null ? hostResidual : residual;    // the shared device buffer is closed by the owner
                for (Tensor t : new Tensor[] {vecSilu, base, txtState, signal, reference, own, velocity}) if (t != null) t.close();
            }
        }
    }


    /**
     * Copies src into the existing tensor dst (same dtype and element count): a device copy on CUDA (capturable), a
     * memory copy on the host.
     */
    public static void copyInto(Ops ops, Tensor dst, Tensor src) { CachePrograms.copyInto(ops, dst, src); }
}
