package org.dit4j.engine.cache;

import java.util.EnumMap;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Per-request, per-branch state of a policy. A branch's state starts fresh at step 0 (a new run under the same id, as
 * the ComfyUI nodes reset at step index 0) and must then see increasing step indices with an unchanged step count.
 * Callers synchronise on this object.
 */
final class RequestStates<S> {
    private static final class Slot<S> {
        final S state;
        final int totalSteps;
        int lastStep = -1;

        Slot(S state, int totalSteps) {
            this.state = state;
            this.totalSteps = totalSteps;
        }
    }

    private final String policy;
    private final Map<String, EnumMap<Branch, Slot<S>>> requests = new HashMap<>();

    RequestStates(String policy) { this.policy = policy; }

    /** The state of ctx's request and branch, advanced to ctx's step. */
    S advance(StepContext ctx, Supplier<S> fresh) {
        EnumMap<Branch, Slot<S>> branches = requests.computeIfAbsent(ctx.requestId(), k -> new EnumMap<>(Branch.class));
        Slot<S> slot = branches.get(ctx.branch());
        if (slot == null || ctx.step() == 0) {
            slot = new Slot<>(fresh.get(), ctx.totalSteps());
            branches.put(ctx.branch(), slot);
        } else if (slot.totalSteps != ctx.totalSteps()) {
            throw new IllegalStateException(policy + ": " + ctx + ": the run started with " + slot.totalSteps
                    + " steps; a different step count needs a new run (start at step 0 or call finish(\"" + ctx.requestId() + "\"))");
        } else if (ctx.step() <= slot.lastStep) {
            throw new IllegalStateException(policy + ": " + ctx + " comes after step " + slot.lastStep
                    + " of the same branch; steps must increase within a run (start at step 0 or call finish(\"" + ctx.requestId() + "\"))");
        }
        slot.lastStep = ctx.step();
        return slot.state;
    }

    void finish(String requestId) { requests.remove(requestId); }

    void clear() { requests.clear(); }

    int size() { return requests.size(); }
}
