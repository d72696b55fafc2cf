package org.dit4j.engine.cache;

import java.util.EnumMap;
import java.util.Map;
import java.util.Objects;

/**
 * One request's step caching on one rank: asks the policy, records the {@link RunSummary}, and keeps the branch's
 * cached values — residuals and the signal reference — checking that the pipeline stores what the decision asks for.
 * {@code T} is the pipeline's tensor type (any {@link AutoCloseable}); the run takes ownership of stored values,
 * closes a value when it is replaced, and closes all on {@link #close()}, which also drops the policy's state.
 * <pre>
 * try (CacheRun&lt;Tensor&gt; run = policy.begin(requestId, steps)) {
 *     for (int i = 0; i &lt; steps; i++) for (Branch b : branches) {
 *         Signals s = run.needsSignal(i, b) &amp;&amp; run.reference(b) != null ? measure(x, run.reference(b)) : Signals.NONE;
 *         Decision d = run.decide(i, b, s);
 *         if (d.updateSignalReference()) run.storeReference(b, detached(x));
 *         if (d.skip()) out = ops.add(in, run.residual(b, Slot.HIDDEN));
 *         else { out = transformer(in); run.storeResidual(b, Slot.HIDDEN, detached(ops.sub(out, in))); }
 *     }
 *     log.info(run.summary());
 * }
 * </pre>
 * Stored values must outlive the step's {@link org.dit4j.core.tensor.Scope}: hand over tensors that no open scope
 * will release. Not thread-safe: one rank's pipeline thread drives it.
 */
public final class CacheRun<T extends AutoCloseable> implements AutoCloseable {

    /** Which residual: the image/video stream, or the text stream of models that cache both (CogVideoX, FBCache). */
    public enum Slot { HIDDEN, ENCODER }

    private static final class BranchSlots<T> {
        final EnumMap<Slot, T> residuals = new EnumMap<>(Slot.class);
        final EnumMap<Slot, Integer> residualStep = new EnumMap<>(Slot.class);
        T reference;
        int referenceStep = -1;
        int lastStep = -1;
        Decision last;
    }

    private final StepCache policy;
    private final String requestId;
    private final int totalSteps;
    private final RunSummary summary;
    private final EnumMap<Branch, BranchSlots<T>> branches = new EnumMap<>(Branch.class);
    private boolean closed;

    CacheRun(StepCache policy, String requestId, int totalSteps) {
        this.policy = Objects.requireNonNull(policy, "policy");
        this.requestId = Objects.requireNonNull(requestId, "requestId");
        if (totalSteps < 1) throw new IllegalArgumentException("totalSteps must be at least 1, got " + totalSteps);
        this.totalSteps = totalSteps;
        this.summary = new RunSummary(policy.describe(), requestId, totalSteps);
        policy.finish(requestId);      // a fresh start even if an earlier run under this id was not closed
    }

    public StepCache policy() { return policy; }

    public String requestId() { return requestId; }

    public int totalSteps() { return totalSteps; }

    /** Whether the decision at this call will read a measurement (see {@link StepCache#needsSignal}). */
    public boolean needsSignal(int step, Branch branch) {
        return policy.needsSignal(StepContext.of(requestId, step, totalSteps, branch));
    }

    /**
     * Decides one call. Throws {@link IllegalStateException} when the previous call of this branch asked for a
     * residual or a signal reference that was not stored.
     */
    public Decision decide(int step, Branch branch, Signals signals) {
        return decide(new StepContext(requestId, step, totalSteps, branch, Double.NaN), signals);
    }

    /** Decides one call with a full context (its request id and step count must be this run's). */
    public Decision decide(StepContext ctx, Signals signals) {
        checkOpen();
        if (!ctx.requestId().equals(requestId) || ctx.totalSteps() != totalSteps)
            throw new IllegalArgumentException("context " + ctx + " does not belong to this run (request " + requestId
                    + ", " + totalSteps + " steps)");
        BranchSlots<T> s = branches.computeIfAbsent(ctx.branch(), b -> new BranchSlots<>());
        checkPreviousStored(ctx.branch(), s);
        Decision d = policy.decide(ctx, signals);
        if (d.skip() && !s.residuals.containsKey(Slot.HIDDEN))
            throw new IllegalStateException(policy.name() + " decided to skip " + ctx + " but this run holds no residual for "
                    + ctx.branch().label() + "; store it with storeResidual after every computed call");
        s.lastStep = ctx.step();
        s.last = d;
        summary.record(ctx.step(), ctx.branch(), d);
        return d;
    }

    /** How the branches of one batched call (CFG in one forward) combine their decisions. */
    public enum Joint {
        /**
         * Compute the batch if any branch computes (ComfyUI-TeaCache). Branches that could have skipped compute too
         * ({@link Decision.Reason#BATCHED_WITH_COMPUTE}); their policy state goes on as decided and their residual is
         * refreshed by the computed call.
         */
        ANY_COMPUTE,
        /**
         * Skip the batch if any branch skips (ComfyUI-MagCache's Wan forward), provided every branch holds a residual;
         * otherwise compute. Branches that wanted to compute skip ({@link Decision.Reason#BATCHED_WITH_SKIP}) with
         * their policy state already reset.
         */
        ANY_SKIP
    }

    /** Decides the branches of one batched call (see {@link Joint}); returns the final decision of each branch. */
    public Map<Branch, Decision> decideJointly(int step, Map<Branch, Signals> signals, Joint rule) {
        Objects.requireNonNull(rule, "rule");
        Map<Branch, Decision> out = new EnumMap<>(Branch.class);
        boolean anyCompute = false, anySkip = false, allHaveResidual = true;
        for (Map.Entry<Branch, Signals> e : new EnumMap<>(signals).entrySet()) {
            allHaveResidual &= branches.containsKey(e.getKey()) && branches.get(e.getKey()).residuals.containsKey(Slot.HIDDEN);
            Decision d = decide(step, e.getKey(), e.getValue());
            out.put(e.getKey(), d);
            anyCompute |= d.compute();
            anySkip |= d.skip();
        }
        boolean batchSkips = rule == Joint.ANY_COMPUTE ? !anyCompute : anySkip && allHaveResidual;
        for (Map.Entry<Branch, Decision> e : out.entrySet()) {
            Decision d = e.getValue();
            if (d.skip() == batchSkips) continue;
            Decision changed = batchSkips
                    ? new Decision(Decision.Action.SKIP, Decision.Reason.BATCHED_WITH_SKIP, d.metric(), d.updateSignalReference())
                    : new Decision(Decision.Action.COMPUTE, Decision.Reason.BATCHED_WITH_COMPUTE, d.metric(), d.updateSignalReference());
            e.setValue(changed);
            branches.get(e.getKey()).last = changed;
            summary.record(step, e.getKey(), changed);
        }
        return out;
    }

    /** Stores the residual of the branch's current (computed) call; closes the one it replaces. */
    public void storeResidual(Branch branch, Slot slot, T residual) {
        checkOpen();
        Objects.requireNonNull(residual, "residual");
        BranchSlots<T> s = current(branch, "storeResidual");
        T old = s.residuals.put(slot, residual);
        s.residualStep.put(slot, s.lastStep);
        if (old != null && old != residual) closeQuietly(old);
    }

    /** The cached residual of a branch (borrowed: valid until replaced or the run is closed). */
    public T residual(Branch branch, Slot slot) {
        checkOpen();
        BranchSlots<T> s = branches.get(branch);
        T r = s == null ? null : s.residuals.get(slot);
        if (r == null)
            throw new IllegalStateException("no " + slot + " residual cached for " + branch.label() + " of request " + requestId
                    + "; store one with storeResidual after a computed call");
        return r;
    }

    /** Stores this call's signal tensor as the branch's reference for the next call; closes the one it replaces. */
    public void storeReference(Branch branch, T reference) {
        checkOpen();
        Objects.requireNonNull(reference, "reference");
        BranchSlots<T> s = current(branch, "storeReference");
        T old = s.reference;
        s.reference = reference;
        s.referenceStep = s.lastStep;
        if (old != null && old != reference) closeQuietly(old);
    }

    /** The branch's signal reference, or null before the first one is stored. */
    public T reference(Branch branch) {
        BranchSlots<T> s = branches.get(branch);
        return s == null ? null : s.reference;
    }

    /** What was decided so far. */
    public RunSummary summary() { return summary; }

    /** Closes every stored value and drops the policy's state of this request. */
    @Override public void close() {
        if (closed) return;
        closed = true;
        policy.finish(requestId);
        for (BranchSlots<T> s : branches.values()) {
            for (T r : s.residuals.values()) closeQuietly(r);
            if (s.reference != null) closeQuietly(s.reference);
            s.residuals.clear();
            s.reference = null;
        }
    }

    private BranchSlots<T> current(Branch branch, String what) {
        BranchSlots<T> s = branches.get(branch);
        if (s == null || s.last == null)
            throw new IllegalStateException(what + "(" + branch.label() + ") before any decision for that branch; call decide first");
        return s;
    }

    private void checkPreviousStored(Branch branch, BranchSlots<T> s) {
        if (s.last == null) return;
        if (s.last.compute() && s.last.reason() != Decision.Reason.DISABLED && s.residualStep.getOrDefault(Slot.HIDDEN, -1) != s.lastStep)
            throw new IllegalStateException("step " + s.lastStep + " " + branch.label() + " of request " + requestId
                    + " was computed but its residual was not stored; call storeResidual(" + branch + ", HIDDEN, output − input) after every computed call");
        if (s.last.updateSignalReference() && s.referenceStep != s.lastStep)
            throw new IllegalStateException("step " + s.lastStep + " " + branch.label() + " of request " + requestId
                    + " asked to keep its signal as the new reference but none was stored; call storeReference(" + branch + ", signal)");
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("the cache run of request " + requestId + " is closed");
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            throw new IllegalStateException("closing a cached value failed: " + e.getMessage(), e);
        }
    }
}
