package org.dit4j.engine.cache;

import java.util.Objects;

/**
 * First-Block Cache (chengzeyi/ParaAttention {@code first_block_cache}).
 * <p>
 * Every call runs block 0; its residual {@code r = out₀ − in} is compared with the reference {@code r_ref}, the
 * block-0 residual of the branch's last computed call:
 * <pre>
 * diff = mean|r_ref − r| / mean|r_ref|
 * diff &lt; threshold → hit: output = out₀ + cached (final − out₀); r_ref stays as it is
 * otherwise        → run the remaining blocks; cache final − out₀; r_ref = r
 * </pre>
 * No hit during the first {@code warmupSteps} steps, without a reference, or with a threshold ≤ 0 (ParaAttention's
 * {@code get_can_use_cache}). The pipeline reduces {@link Signals.RelL1} over the sequence-parallel group, which
 * replaces ParaAttention's average of per-rank means (equal only for equal shards) by the exact global means.
 * {@link Decision#updateSignalReference()} is true exactly on computed calls.
 */
public final class FirstBlockCache implements StepCache {

    /** Flux.1-dev default {@code residual_diff_threshold}: ParaAttention doc/fastest_flux.md ("the default value for FLUX models"). */
    public static final double FLUX_THRESHOLD = 0.08;
    /** Flux.1-dev with fp8 dynamic quantisation: ParaAttention doc/fastest_flux.md. */
    public static final double FLUX_FP8_THRESHOLD = 0.12;

    /**
     * @param threshold   {@code residual_diff_threshold}; ≤ 0 never hits
     * @param warmupSteps steps at the start without hits (ParaAttention {@code warmup_steps}, default 0)
     * @param rounding    rounding of the means (see {@link ScalarRounding})
     */
    public record Config(double threshold, int warmupSteps, ScalarRounding rounding) {
        public Config {
            Objects.requireNonNull(rounding, "rounding");
            if (!(threshold >= 0) || Double.isInfinite(threshold))
                throw new IllegalArgumentException("First-Block Cache residual_diff_threshold must be a finite number ≥ 0, got " + threshold);
            if (warmupSteps < 0) throw new IllegalArgumentException("First-Block Cache warmup_steps must be ≥ 0, got " + warmupSteps);
        }

        public static Config of(double threshold) { return new Config(threshold, 0, ScalarRounding.NONE); }

        public Config withWarmup(int steps) { return new Config(threshold, steps, rounding); }

        public Config withRounding(ScalarRounding r) { return new Config(threshold, warmupSteps, r); }
    }

    private static final class State {
        boolean hasResidual;
    }

    private final Config config;
    private final RequestStates<State> states = new RequestStates<>("fbcache");

    public FirstBlockCache(Config config) { this.config = Objects.requireNonNull(config, "config"); }

    public static FirstBlockCache of(double threshold) { return new FirstBlockCache(Config.of(threshold)); }

    public Config config() { return config; }

    @Override public String name() { return "fbcache"; }

    @Override public String describe() {
        return "fbcache residual_diff_threshold=" + config.threshold
                + (config.threshold == 0 ? " (off: every step computed)" : "")
                + (config.warmupSteps > 0 ? " warmup=" + config.warmupSteps : "")
                + (config.rounding == ScalarRounding.NONE ? "" : ", means rounded " + config.rounding);
    }

    @Override public boolean needsSignal(StepContext ctx) {
        return config.threshold > 0 && ctx.step() >= config.warmupSteps;
    }

    @Override public Decision decide(StepContext ctx, Signals signals) {
        Objects.requireNonNull(signals, "signals (use Signals.NONE)");
        synchronized (states) {
            State s = states.advance(ctx, State::new);
            Decision d = step(s, ctx, signals);
            if (d.compute()) s.hasResidual = true;
            return d;
        }
    }

    private Decision step(State s, StepContext ctx, Signals signals) {
        if (config.threshold <= 0) return Decision.compute(Decision.Reason.DISABLED, Double.NaN, false);
        if (ctx.step() < config.warmupSteps) return Decision.compute(Decision.Reason.WARMUP, Double.NaN, true);
        if (!(signals instanceof Signals.RelL1 r)) return Decision.compute(Decision.Reason.NO_SIGNAL, Double.NaN, true);
        double diff = r.value(config.rounding);
        if (!(diff < config.threshold)) return Decision.compute(Decision.Reason.THRESHOLD, diff, true);
        if (!s.hasResidual) return Decision.compute(Decision.Reason.NO_RESIDUAL, diff, true);
        return Decision.skip(diff, false);
    }

    @Override public void finish(String requestId) { synchronized (states) { states.finish(requestId); } }

    @Override public void reset() { synchronized (states) { states.clear(); } }

    @Override public int openRequests() { synchronized (states) { return states.size(); } }

    @Override public String toString() { return describe(); }
}
