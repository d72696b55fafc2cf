package org.dit4j.engine.cache;

/**
 * A step-cache policy: decides, for every transformer call of a denoising run, whether the transformer runs or the
 * branch's cached residual (output − input of the last computed call) is reused.
 * <p>
 * The policy only decides and keeps its accumulators; the pipeline owns the tensors (see {@link CacheRun} for the
 * bookkeeping of residuals and signal references). State is kept per request and per {@link Branch}: it starts
 * fresh when a branch sees step 0, and {@link #finish} drops it. Calls for one branch of one request must come in
 * increasing step order.
 * <p>
 * <b>Parallel runs.</b> Give every rank its own policy instance and feed it the all-reduced {@link Signals}: the
 * decision is a pure function of the context, the signals and the history, so all ranks decide alike.
 * Implementations are thread-safe so that several requests may share one instance.
 */
public interface StepCache {

    /** Short name ("teacache", "magcache", "fbcache", "none"). */
    String name();

    /** One line with the constants in use, for logs and the run summary. */
    String describe();

    /**
     * Whether {@link #decide} at this call will read a measurement. When false the pipeline may pass
     * {@link Signals#NONE} and save the reduction. Depends only on the context and configuration (never on
     * rank-local data), so every rank gets the same answer.
     */
    boolean needsSignal(StepContext ctx);

    /** Decides one call and advances the branch's state. */
    Decision decide(StepContext ctx, Signals signals);

    /** Drops the state of a finished (or abandoned) request. */
    void finish(String requestId);

    /** Drops the state of all requests. */
    void reset();

    /** Number of requests with live state (for leak checks). */
    int openRequests();

    /** Starts the bookkeeping of one request on this policy. */
    default <T extends AutoCloseable> CacheRun<T> begin(String requestId, int totalSteps) {
        return new CacheRun<>(this, requestId, totalSteps);
    }
}
