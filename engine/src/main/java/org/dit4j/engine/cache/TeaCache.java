package org.dit4j.engine.cache;

import java.util.Arrays;
import java.util.Objects;

/**
 * TeaCache (Liu et al., "Timestep Embedding Tells: It's Time to Cache for Video Diffusion Model", 2024).
 * <p>
 * Per branch, with accumulator {@code acc} (0 at the start of a run):
 * <pre>
 * forced step (i &lt; forcedLeadingSteps, or the last step when forceLastStep):  acc = 0; compute
 * otherwise:  δ = mean|x_i − x_{i−1}| / mean|x_{i−1}|          x = the preset's signal tensor at this call
 *             acc += rescale(δ)                                 rescale = the preset's polynomial
 *             acc &lt; threshold  → skip (output = input + cached residual)
 *             otherwise        → acc = 0; compute; residual = output − input
 * </pre>
 * The signal reference {@code x_{i−1}} is the previous call's signal, computed or skipped
 * ({@link Decision#updateSignalReference()} is always true).
 * <p>
 * Two variants of the published code are reproduced exactly (see {@link Config}):
 * <ul>
 *   <li>{@link Config#reference}: the ali-vilab/TeaCache scripts (TeaCache4FLUX, TeaCache4Wan2.1,
 *       TeaCache4CogVideoX1.5): forced first step(s) and last step, numpy {@code poly1d} evaluation.</li>
 *   <li>{@link Config#comfyUi}: the welltop-cn/ComfyUI-TeaCache node: nothing forced but the first call of a branch
 *       (it has no previous signal), a {@code start_percent ≤ i/N ≤ end_percent} window outside which the step is
 *       computed without resetting {@code acc}, the polynomial summed term by term, and for Flux
 *       {@code |rescale(δ)|}.</li>
 * </ul>
 * A threshold of 0 turns the policy off (every step computed), as the ComfyUI node does.
 */
public final class TeaCache implements StepCache {

    /**
     * A published coefficient set with the reference script's step rules.
     *
     * @param id                   preset name
     * @param signal               which tensor the pipeline measures δ on
     * @param coefficients         rescale polynomial, numpy {@code poly1d} order (highest power first)
     * @param forcedLeadingSteps   steps at the start that the reference always computes
     * @param forceLastStep        whether the reference always computes the last step
     * @param recommendedThreshold the published recommended {@code rel_l1_thresh}
     * @param source               where the constants are published
     */
    public record Preset(String id, String signal, double[] coefficients, int forcedLeadingSteps, boolean forceLastStep,
                         double recommendedThreshold, String source) {
        public Preset {
            Objects.requireNonNull(id, "id");
            coefficients = coefficients.clone();
            if (coefficients.length == 0) throw new IllegalArgumentException("TeaCache preset " + id + " has no coefficients");
            if (forcedLeadingSteps < 0) throw new IllegalArgumentException("forcedLeadingSteps must be ≥ 0, got " + forcedLeadingSteps);
        }

        @Override public double[] coefficients() { return coefficients.clone(); }

        @Override public String toString() { return "TeaCache.Preset[" + id + "]"; }
    }

    private static final String BLOCK0_MODULATED = "block-0 modulated image input: LayerNorm(img)·(1 + scale) + shift with "
            + "the first adaLN modulation of double block 0";
    private static final String WAN_E = "time embedding e = time_embedding(sinusoidal(t)), before time_projection";
    private static final String WAN_E0 = "projected time embedding e0 = time_projection(e) (\"ret mode\")";

    /** Flux.1-dev. Coefficients: TeaCache4FLUX/teacache_flux.py; threshold 0.4: ComfyUI-TeaCache README (~2×). */
    public static final Preset FLUX = new Preset("flux", BLOCK0_MODULATED,
            new double[] {4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01}, 1, true, 0.4,
            "ali-vilab/TeaCache TeaCache4FLUX/teacache_flux.py; threshold: welltop-cn/ComfyUI-TeaCache README");

    /** Wan2.1-T2V-1.3B. TeaCache4Wan2.1/teacache_generate.py (ret_steps 1, cutoff N−1); threshold 0.08 from its README. */
    public static final Preset WAN21_T2V_1_3B = new Preset("wan2.1-t2v-1.3b", WAN_E,
            new double[] {2.39676752e+03, -1.31110545e+03, 2.01331979e+02, -8.29855975e+00, 1.37887774e-01}, 1, true, 0.08,
            "ali-vilab/TeaCache TeaCache4Wan2.1/teacache_generate.py and README");

    /** Wan2.1-T2V-14B. TeaCache4Wan2.1/teacache_generate.py (ret_steps 1, cutoff N−1); threshold 0.2 from its README. */
    public static final Preset WAN21_T2V_14B = new Preset("wan2.1-t2v-14b", WAN_E,
            new double[] {-5784.54975374, 5449.50911966, -1811.16591783, 256.27178429, -13.02252404}, 1, true, 0.2,
            "ali-vilab/TeaCache TeaCache4Wan2.1/teacache_generate.py and README");

    /**
     * Wan2.1-T2V-1.3B "ret mode" ({@code --use_ret_steps}): signal e0, first 5 steps forced, last step not forced
     * (cutoff = N). Threshold 0.10: the README's "fast" setting for use_ret_steps.
     */
    public static final Preset WAN21_T2V_1_3B_RET = new Preset("wan2.1-t2v-1.3b-ret", WAN_E0,
            new double[] {-5.21862437e+04, 9.23041404e+03, -5.28275948e+02, 1.36987616e+01, -4.99875664e-02}, 5, false, 0.10,
            "ali-vilab/TeaCache TeaCache4Wan2.1/teacache_generate.py (use_ret_steps) and README");

    /**
     * Wan2.1-T2V-14B "ret mode": signal e0, first 5 steps forced, last step not forced. Threshold 0.20: the README's
     * "fast" setting for use_ret_steps.
     */
    public static final Preset WAN21_T2V_14B_RET = new Preset("wan2.1-t2v-14b-ret", WAN_E0,
            new double[] {-3.03318725e+05, 4.90537029e+04, -2.65530556e+03, 5.87365115e+01, -3.15583525e-01}, 5, false, 0.20,
            "ali-vilab/TeaCache TeaCache4Wan2.1/teacache_generate.py (use_ret_steps) and README");

    /**
     * CogVideoX-5B (also used for 5B-I2V). Signal: the time embedding {@code emb}; CFG is batched in that script with
     * one state for both halves — to reproduce it, decide once per step as {@link Branch#COND} on the batched signal
     * and cache the residuals of both halves (and, as the script does, of the text stream: {@link CacheRun.Slot#ENCODER}). Threshold 0.3: ComfyUI-TeaCache README (~2×); the script's comment gives 0.3 ≈ 2.1×.
     */
    public static final Preset COGVIDEOX_5B = new Preset("cogvideox-5b", "time embedding emb = time_embedding(time_proj(t))",
            new double[] {-1.53880483e+03, 8.43202495e+02, -1.34363087e+02, 7.97131516e+00, -5.23162339e-02}, 1, true, 0.3,
            "ali-vilab/TeaCache TeaCache4CogVideoX1.5/teacache_sample_video.py (\"CogVideoX-5b\"), "
                    + "eval/teacache/experiments/cogvideox.py; threshold: welltop-cn/ComfyUI-TeaCache README");

    /** How the rescale polynomial is evaluated; the two published codes round differently. */
    public enum Polynomial {
        /** numpy {@code poly1d}: Horner from the highest power, {@code y = y·δ + c}, starting at 0. */
        HORNER,
        /** ComfyUI-TeaCache's {@code poly1d}: {@code Σ c_k · δ^(n−1−k)}, term by term in list order. */
        POWER_SUM
    }

    /**
     * A TeaCache configuration.
     *
     * @param preset             coefficients and signal
     * @param threshold          {@code rel_l1_thresh}; 0 turns caching off
     * @param forcedLeadingSteps steps at the start always computed (accumulator reset)
     * @param forceLastStep      whether the last step is always computed (accumulator reset)
     * @param startPercent       ComfyUI window start: caching applies where {@code startPercent ≤ step/N}
     * @param endPercent         ComfyUI window end: caching applies where {@code step/N ≤ endPercent}
     * @param polynomial         evaluation order of the rescale polynomial
     * @param absRescaled        accumulate {@code |rescale(δ)|} (ComfyUI's Flux forward) instead of {@code rescale(δ)}
     * @param rounding           rounding of the δ means (see {@link ScalarRounding})
     */
    public record Config(Preset preset, double threshold, int forcedLeadingSteps, boolean forceLastStep,
                         double startPercent, double endPercent, Polynomial polynomial, boolean absRescaled,
                         ScalarRounding rounding) {
        public Config {
            Objects.requireNonNull(preset, "preset");
            Objects.requireNonNull(polynomial, "polynomial");
            Objects.requireNonNull(rounding, "rounding");
            if (!(threshold >= 0) || Double.isInfinite(threshold))
                throw new IllegalArgumentException("TeaCache threshold (rel_l1_thresh) must be a finite number ≥ 0, got " + threshold);
            if (forcedLeadingSteps < 0)
                throw new IllegalArgumentException("TeaCache forcedLeadingSteps must be ≥ 0, got " + forcedLeadingSteps);
            if (!(startPercent >= 0 && startPercent <= 1) || !(endPercent >= 0 && endPercent <= 1))
                throw new IllegalArgumentException("TeaCache start_percent and end_percent must lie in [0, 1], got "
                        + startPercent + " and " + endPercent);
        }

        /** The ali-vilab/TeaCache script of the preset, at its recommended threshold. */
        public static Config reference(Preset preset) {
            return new Config(preset, preset.recommendedThreshold(), preset.forcedLeadingSteps(), preset.forceLastStep(),
                    0.0, 1.0, Polynomial.HORNER, false, ScalarRounding.NONE);
        }

        /**
         * The ComfyUI-TeaCache node ({@code apply_teacache}) with the preset's coefficients: no forced steps besides
         * the first call of a branch, the start/end window, term-by-term polynomial, {@code |·|} for Flux.
         */
        public static Config comfyUi(Preset preset, double threshold, double startPercent, double endPercent) {
            return new Config(preset, threshold, 0, false, startPercent, endPercent, Polynomial.POWER_SUM,
                    preset == FLUX, ScalarRounding.NONE);
        }

        public Config withThreshold(double t) {
            return new Config(preset, t, forcedLeadingSteps, forceLastStep, startPercent, endPercent, polynomial, absRescaled, rounding);
        }

        public Config withWindow(double start, double end) {
            return new Config(preset, threshold, forcedLeadingSteps, forceLastStep, start, end, polynomial, absRescaled, rounding);
        }

        public Config withRounding(ScalarRounding r) {
            return new Config(preset, threshold, forcedLeadingSteps, forceLastStep, startPercent, endPercent, polynomial, absRescaled, r);
        }

        /** The rescale polynomial at δ, evaluated as configured. */
        public double rescale(double delta) {
            double[] c = preset.coefficients;
            double y = 0;
            if (polynomial == Polynomial.HORNER) {
                for (double ck : c) y = y * delta + ck;
            } else {
                for (int k = 0; k < c.length; k++) y += c[k] * Math.pow(delta, c.length - 1 - k);
            }
            return absRescaled ? Math.abs(y) : y;
        }
    }

    private static final class State {
        double acc;
        boolean hasResidual;
    }

    private final Config config;
    private final RequestStates<State> states = new RequestStates<>("teacache");

    public TeaCache(Config config) { this.config = Objects.requireNonNull(config, "config"); }

    /** The reference script of a preset at its recommended threshold. */
    public static TeaCache of(Preset preset) { return new TeaCache(Config.reference(preset)); }

    public Config config() { return config; }

    @Override public String name() { return "teacache"; }

    @Override public String describe() {
        Config c = config;
        return "teacache " + c.preset.id() + " rel_l1_thresh=" + c.threshold
                + (c.threshold == 0 ? " (off: every step computed)" : "")
                + " forced: first " + c.forcedLeadingSteps + (c.forceLastStep ? " + last" : "")
                + ", window [" + c.startPercent + ", " + c.endPercent + "]"
                + ", poly " + c.polynomial.name().toLowerCase() + (c.absRescaled ? " |·|" : "")
                + " " + Arrays.toString(c.preset.coefficients)
                + (c.rounding == ScalarRounding.NONE ? "" : ", δ rounded " + c.rounding);
    }

    @Override public boolean needsSignal(StepContext ctx) {
        return config.threshold > 0 && !forced(ctx);
    }

    private boolean forced(StepContext ctx) {
        return ctx.step() < config.forcedLeadingSteps || (config.forceLastStep && ctx.isLast());
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
        Config c = config;
        if (c.threshold == 0) return Decision.compute(Decision.Reason.DISABLED, Double.NaN, false);
        if (forced(ctx)) {
            s.acc = 0;
            return Decision.compute(Decision.Reason.FORCED, Double.NaN, true);
        }
        if (!(signals instanceof Signals.RelL1 r)) {
            s.acc = 0;
            return Decision.compute(Decision.Reason.NO_SIGNAL, Double.NaN, true);
        }
        s.acc += c.rescale(r.value(c.rounding));
        double metric = s.acc;
        boolean under = s.acc < c.threshold;     // NaN compares false: computed, as in the reference
        if (!under) s.acc = 0;
        double p = ctx.percent();
        if (!(c.startPercent <= p && p <= c.endPercent))
            return Decision.compute(Decision.Reason.OUTSIDE_WINDOW, metric, true);
        if (!under) return Decision.compute(Decision.Reason.THRESHOLD, metric, true);
        if (!s.hasResidual) {
            s.acc = 0;
            return Decision.compute(Decision.Reason.NO_RESIDUAL, metric, true);
        }
        return Decision.skip(metric, true);
    }

    @Override public void finish(String requestId) { synchronized (states) { states.finish(requestId); } }

    @Override public void reset() { synchronized (states) { states.clear(); } }

    @Override public int openRequests() { synchronized (states) { return states.size(); } }

    @Override public String toString() { return describe(); }
}
