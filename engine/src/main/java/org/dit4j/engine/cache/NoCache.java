package org.dit4j.engine.cache;

/** The policy that computes every step. Keeps no state. */
public final class NoCache implements StepCache {
    public static final NoCache INSTANCE = new NoCache();

    private static final Decision ALWAYS = Decision.compute(Decision.Reason.DISABLED, Double.NaN, false);

    private NoCache() {}

    @Override public String name() { return "none"; }

    @Override public String describe() { return "none (every step computed)"; }

    @Override public boolean needsSignal(StepContext ctx) { return false; }

    @Override public Decision decide(StepContext ctx, Signals signals) { return ALWAYS; }

    @Override public void finish(String requestId) {}

    @Override public void reset() {}

    @Override public int openRequests() { return 0; }
}
