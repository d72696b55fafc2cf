package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

import java.util.function.Function;

/**
 * Classifier-free guidance across ranks: with a CFG group of 2, rank 0 of the group computes the conditional branch and
 * rank 1 the unconditional one, and both then hold both results (one all-gather); with a group of 1 the rank computes
 * both branches itself. Either way every rank ends with the same guided output, so the sampler's step (and the next
 * latent) stays identical on all ranks.
 */
public final class CfgParallel {
    /** Which prediction a forward produces. */
    public enum Branch { COND, UNCOND }

    /** Both predictions, in the caller's scope. */
    public record Pair(Tensor cond, Tensor uncond) {}

    private final Communicator cfg;

    /** @param cfg the rank's CFG group: size 1 or 2 */
    public CfgParallel(Communicator cfg) {
        if (cfg.size() > 2) throw new IllegalArgumentException("a CFG group has 1 or 2 ranks, got " + cfg.size());
        this.cfg = cfg;
    }

    public static CfgParallel of(MeshComms comms) { return new CfgParallel(comms.cfg()); }

    /** True when the two branches run on different ranks. */
    public boolean isParallel() { return cfg.size() == 2; }

    /** The branch this rank computes when parallel (COND on group rank 0). */
    public Branch branch() { return cfg.rank() == 0 ? Branch.COND : Branch.UNCOND; }

    /**
     * Runs this rank's branch(es) and returns both predictions on every rank. {@code forward} maps a branch to its
     * prediction (any shape, equal for both branches; on this rank's backend).
     */
    public Pair both(Function<Branch, Tensor> forward) {
        if (!isParallel()) return new Pair(forward.apply(Branch.COND), forward.apply(Branch.UNCOND));
        try (Scope s = Scope.open()) {
            Tensor mine = forward.apply(branch());
            long b = mine.dim(0);
            Tensor all = cfg.allGather(mine, 0);                            // [2B, ...]: cond then uncond
            Tensor cond = all.narrowOuter(0, b), uncond = all.narrowOuter(b, 2 * b);
            s.keep(all);
            return new Pair(cond, uncond);
        }
    }

    /** uncond + scale·(cond − uncond). */
    public static Tensor combine(Ops ops, Pair p, float scale) {
        try (Scope s = Scope.open()) {
            return s.keep(ops.add(p.uncond(), ops.scale(ops.sub(p.cond(), p.uncond()), scale)));
        }
    }

    /** Runs both branches (in parallel when the group has 2 ranks) and returns the guided prediction on every rank. */
    public Tensor guided(Ops ops, float scale, Function<Branch, Tensor> forward) {
        try (Scope s = Scope.open()) {
            return s.keep(combine(ops, both(forward), scale));
        }
    }
}
