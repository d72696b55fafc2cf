package org.dit4j.engine.cache;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/**
 * What a pipeline measured and decided, call by call: the step, the branch, the (reduced) {@link Signals} the policy
 * was given and its {@link Decision}. Lets a run's decisions be checked against the policy afterwards and lets a
 * measured signal sequence be replayed at other settings ({@link #replay}).
 * <p>
 * A replay is exact for TeaCache at any configuration (its signal — this call's tensor against the previous call's —
 * does not depend on the decisions) and for MagCache (no signal); for First-Block Cache only at the recorded
 * configuration, because its reference is the residual of the last <em>computed</em> call.
 */
public final class CacheTrace {

    /** One decided transformer call. */
    public record Call(int step, Branch branch, Signals signals, Decision decision) {
        public Call {
            Objects.requireNonNull(branch, "branch");
            Objects.requireNonNull(signals, "signals");
            Objects.requireNonNull(decision, "decision");
        }
    }

    private final List<Call> calls = new ArrayList<>();

    /** Appends one call (calls of one branch in increasing step order). */
    public synchronized void record(int step, Branch branch, Signals signals, Decision decision) {
        calls.add(new Call(step, branch, signals, decision));
    }

    /** Every call in the order they were made. */
    public synchronized List<Call> calls() { return Collections.unmodifiableList(new ArrayList<>(calls)); }

    /** The calls of one branch, in step order. */
    public synchronized List<Call> calls(Branch branch) {
        return calls.stream().filter(c -> c.branch() == branch).toList();
    }

    /**
     * Feeds the recorded signals, in the recorded order, to {@code policy} (a fresh request of its own) and returns
     * what it decides. The policy must not be in use by a request named {@code "replay"}.
     */
    public RunSummary replay(StepCache policy, int totalSteps) {
        Objects.requireNonNull(policy, "policy");
        try (CacheRun<AutoCloseable> run = policy.begin("replay", totalSteps)) {
            AutoCloseable nothing = () -> {};
            for (Call c : calls()) {
                Decision d = run.decide(c.step(), c.branch(), c.signals());
                if (d.updateSignalReference()) run.storeReference(c.branch(), nothing);
                if (d.compute()) run.storeResidual(c.branch(), CacheRun.Slot.HIDDEN, nothing);
            }
            return run.summary();
        }
    }

    @Override public synchronized String toString() { return "CacheTrace[" + calls.size() + " calls]"; }
}
