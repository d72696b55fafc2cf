package org.dit4j.engine.cache;

/**
 * What the pipeline does with one transformer call.
 *
 * @param action                 run the transformer ({@link Action#COMPUTE}) or reuse the cached residual
 *                               ({@link Action#SKIP})
 * @param reason                 why; shown in the run summary
 * @param metric                 the value compared with the threshold at this step (TeaCache: the accumulated
 *                               rescaled distance; MagCache: the accumulated error; First-Block Cache: the relative
 *                               residual difference), {@code NaN} when no comparison was made
 * @param updateSignalReference  whether the pipeline must store this call's signal tensor as the new reference for
 *                               the next call of the branch (TeaCache: always; First-Block Cache: on computed steps;
 *                               MagCache: never, it measures nothing at run time)
 */
public record Decision(Action action, Reason reason, double metric, boolean updateSignalReference) {

    /** The two things a pipeline can do with a transformer call. */
    public enum Action {
        /** Run the transformer (or its remaining blocks) and store the new residual. */
        COMPUTE,
        /** Add the cached residual of this branch instead of running the transformer. */
        SKIP
    }

    /** Why a decision came out the way it did. */
    public enum Reason {
        /** The policy is off (threshold 0 or {@link NoCache}). */
        DISABLED,
        /** A step the algorithm always computes (first/last step, TeaCache's retention steps, MagCache's fixed steps). */
        FORCED,
        /** Before MagCache's retention_ratio·N steps. */
        RETENTION,
        /** First-Block Cache warm-up steps. */
        WARMUP,
        /** Outside the start/end window (ComfyUI nodes). */
        OUTSIDE_WINDOW,
        /** No measurement to compare with yet (first call of the branch). */
        NO_SIGNAL,
        /** The branch has no cached residual to reuse yet. */
        NO_RESIDUAL,
        /** The metric reached the threshold. */
        THRESHOLD,
        /** MagCache: K consecutive skips already. */
        K_LIMIT,
        /** The metric stayed under the threshold: the cached residual is reused. */
        CACHED,
        /** This branch could have skipped, but the call is batched with a branch that computes (ComfyUI CFG batching). */
        BATCHED_WITH_COMPUTE,
        /** This branch wanted to compute, but the call is batched with a branch that skips (ComfyUI-MagCache CFG batching). */
        BATCHED_WITH_SKIP
    }

    public boolean skip() { return action == Action.SKIP; }

    public boolean compute() { return action == Action.COMPUTE; }

    static Decision compute(Reason reason, double metric, boolean updateReference) {
        return new Decision(Action.COMPUTE, reason, metric, updateReference);
    }

    static Decision skip(double metric, boolean updateReference) {
        return new Decision(Action.SKIP, Reason.CACHED, metric, updateReference);
    }
}
