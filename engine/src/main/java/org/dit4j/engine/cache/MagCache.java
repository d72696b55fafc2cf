package org.dit4j.engine.cache;

import org.dit4j.core.io.Json;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * MagCache (Ma et al., "MagCache: Fast Video Generation with Magnitude-Aware Cache", 2025).
 * <p>
 * A calibrated table γ gives, per step, the mean ratio of the residual's magnitude to the previous step's
 * ({@link MagCacheCalibration} records one). Per branch, with ratio = 1, steps = 0, err = 0 at the start:
 * <pre>
 * retention steps (before retention_ratio·N): compute, state untouched
 * otherwise:  ratio *= γ_i;  steps += 1;  err += |1 − ratio|
 *             err ≤ thresh (or &lt;, see below) and steps ≤ K → skip (output = input + cached residual)
 *             otherwise → ratio = 1, steps = 0, err = 0; compute
 * </pre>
 * The table is calibrated for one step count L and mapped to a run of N steps by nearest interpolation
 * ({@code index = round_half_even(i·(L−1)/(N−1))}, numpy's {@code nearest_interp}). No signal is measured at run
 * time, so decisions are rank-identical without any communication.
 * <p>
 * The published codes differ in details that move decisions at the boundary; each is reproduced exactly by
 * {@link Config#reference} (Zehong-Ma/MagCache scripts) or {@link Config#comfyUi} (Zehong-Ma/ComfyUI-MagCache node):
 * <ul>
 *   <li>comparison: MagCache4FLUX {@code err ≤ thresh}; MagCache4Wan2.1 {@code err < thresh}; the ComfyUI node the
 *       other way round (Flux {@code <}, Wan {@code ≤});</li>
 *   <li>retention: MagCache4FLUX {@code i ≥ int(r·N + 0.5)}; MagCache4Wan2.1 counts cond/uncond calls interleaved,
 *       {@code 2i + branch ≥ int(2N·r)}; ComfyUI {@code i ≥ int(N·r)};</li>
 *   <li>step mapping: scripts round half to even; ComfyUI truncates {@code int(i·(L−1)/(N−1))};</li>
 *   <li>Flux step 11 of the 28-step table is always computed: the script still accumulates it and then resets,
 *       ComfyUI leaves the state untouched;</li>
 *   <li>ComfyUI keeps γ as float32 and accumulates in float32; the scripts in float64.</li>
 * </ul>
 * A threshold of 0 turns the policy off, as the ComfyUI node does. A skip is never returned before the branch has
 * computed once (the scripts would fail there; ComfyUI would add nothing).
 */
public final class MagCache implements StepCache {

    /**
     * A calibrated γ table.
     *
     * @param id          name
     * @param branches    1 (one value per step) or 2 (cond, uncond interleaved per step)
     * @param interleaved the values, step-major: {@code [γ_0(cond), γ_0(uncond), γ_1(cond), …]}; the first step's
     *                    entries are the padding 1.0
     * @param source      where the values come from
     */
    public record Table(String id, int branches, double[] interleaved, String source) {
        public Table {
            Objects.requireNonNull(id, "id");
            if (branches != 1 && branches != 2)
                throw new IllegalArgumentException("MagCache table " + id + ": branches must be 1 or 2, got " + branches);
            interleaved = interleaved.clone();
            if (interleaved.length == 0 || interleaved.length % branches != 0)
                throw new IllegalArgumentException("MagCache table " + id + ": " + interleaved.length
                        + " values do not make whole steps of " + branches + " branch(es)");
            for (double v : interleaved)
                if (!(v > 0) || Double.isInfinite(v))
                    throw new IllegalArgumentException("MagCache table " + id + ": magnitude ratios must be finite and > 0, found " + v);
        }

        @Override public double[] interleaved() { return interleaved.clone(); }

        /** The step count the table was calibrated for. */
        public int steps() { return interleaved.length / branches; }

        /** γ of a branch at calibrated step j (branch-1 tables serve both branches). */
        public double gamma(Branch branch, int j) {
            int b = branches == 1 ? 0 : branch.index();
            return interleaved[j * branches + b];
        }

        /** One branch's values over the calibrated steps. */
        public double[] row(Branch branch) {
            double[] r = new double[steps()];
            for (int j = 0; j < r.length; j++) r[j] = gamma(branch, j);
            return r;
        }

        /** The table as JSON: {@code {"id", "branches", "steps", "mag_ratios", "source"}}. */
        public String toJson() { return MagCache.toJson(this, Map.of()); }

        /**
         * Reads a table written by {@link #toJson} or {@link MagCacheCalibration#toJson}. Other members are ignored.
         * Errors name the member and what was found.
         */
        public static Table fromJson(String json) {
            Object parsed = Json.parse(json);
            if (!(parsed instanceof Map<?, ?> m))
                throw new IllegalArgumentException("MagCache table JSON must be an object with \"mag_ratios\", found " + kind(parsed));
            Object ratios = m.get("mag_ratios");
            if (!(ratios instanceof List<?> list))
                throw new IllegalArgumentException("MagCache table JSON: \"mag_ratios\" must be an array of numbers, found " + kind(ratios));
            double[] v = new double[list.size()];
            for (int i = 0; i < v.length; i++) {
                if (!(list.get(i) instanceof Number n))
                    throw new IllegalArgumentException("MagCache table JSON: mag_ratios[" + i + "] must be a number, found " + kind(list.get(i)));
                v[i] = n.doubleValue();
            }
            int branches = m.get("branches") instanceof Number n ? n.intValue() : 1;
            String id = m.get("id") instanceof String s ? s : "calibrated";
            String source = m.get("source") instanceof String s ? s : "JSON";
            Table t = new Table(id, branches, v, source);
            if (m.get("steps") instanceof Number n && n.intValue() != t.steps())
                throw new IllegalArgumentException("MagCache table JSON " + id + ": \"steps\" says " + n + " but mag_ratios holds "
                        + t.steps() + " steps of " + branches + " branch(es)");
            return t;
        }

        @Override public String toString() { return "MagCache.Table[" + id + ", " + steps() + " steps × " + branches + "]"; }
    }

    /** Flux.1-dev, 28 steps. MagCache4FLUX/magcache_flux.py (same in ComfyUI-MagCache nodes.py "flux"). */
    public static final Table FLUX_DEV_28 = new Table("flux-dev-28", 1, new double[] {
            1.0, 1.21094, 1.11719, 1.07812, 1.0625, 1.03906, 1.03125, 1.03906, 1.02344, 1.03125,
            1.02344, 0.98047, 1.01562, 1.00781, 1.0, 1.00781, 1.0, 1.00781, 1.0, 1.0,
            0.99609, 0.99609, 0.98047, 0.98828, 0.96484, 0.95703, 0.93359, 0.89062},
            "Zehong-Ma/MagCache MagCache4FLUX/magcache_flux.py");

    /**
     * Wan2.1-T2V-1.3B, 50 steps, cond/uncond interleaved. MagCache4Wan2.1/magcache_generate.py ('T2V-1.3B'); identical
     * in ComfyUI-MagCache nodes.py "wan2.1_t2v_1.3B".
     */
    public static final Table WAN21_T2V_1_3B_50 = new Table("wan2.1-t2v-1.3b-50", 2, new double[] {
            1.0, 1.0, 1.0124, 1.02213, 1.00166, 1.0041, 0.99791, 1.00061, 0.99682, 0.99762,
            0.99634, 0.99685, 0.99567, 0.99586, 0.99416, 0.99422, 0.99578, 0.99575, 0.9957, 0.99563,
            0.99511, 0.99506, 0.99535, 0.99531, 0.99552, 0.99549, 0.99541, 0.99539, 0.9954, 0.99536,
            0.99489, 0.99485, 0.99518, 0.99514, 0.99484, 0.99478, 0.99481, 0.99479, 0.99415, 0.99413,
            0.99419, 0.99416, 0.99396, 0.99393, 0.99388, 0.99386, 0.99349, 0.99349, 0.99309, 0.99304,
            0.9927, 0.9927, 0.99228, 0.99226, 0.99171, 0.9917, 0.99137, 0.99135, 0.99068, 0.99063,
            0.99005, 0.99003, 0.98944, 0.98942, 0.98849, 0.98849, 0.98758, 0.98757, 0.98644, 0.98643,
            0.98504, 0.98503, 0.9836, 0.98359, 0.98202, 0.98201, 0.97977, 0.97978, 0.97717, 0.97718,
            0.9741, 0.97411, 0.97003, 0.97002, 0.96538, 0.96541, 0.9593, 0.95933, 0.95086, 0.95089,
            0.94013, 0.94019, 0.92402, 0.92414, 0.90241, 0.9026, 0.86821, 0.86868, 0.81838, 0.81939},
            "Zehong-Ma/MagCache MagCache4Wan2.1/magcache_generate.py");

    /**
     * Wan2.1-T2V-14B, 50 steps, cond/uncond interleaved. MagCache4Wan2.1/magcache_generate.py ('T2V-14B'); identical
     * in ComfyUI-MagCache nodes.py "wan2.1_t2v_14B".
     */
    public static final Table WAN21_T2V_14B_50 = new Table("wan2.1-t2v-14b-50", 2, new double[] {
            1.0, 1.0, 1.02504, 1.03017, 1.00025, 1.00251, 0.9985, 0.99962, 0.99779, 0.99771,
            0.9966, 0.99658, 0.99482, 0.99476, 0.99467, 0.99451, 0.99664, 0.99656, 0.99434, 0.99431,
            0.99533, 0.99545, 0.99468, 0.99465, 0.99438, 0.99434, 0.99516, 0.99517, 0.99384, 0.9938,
            0.99404, 0.99401, 0.99517, 0.99516, 0.99409, 0.99408, 0.99428, 0.99426, 0.99347, 0.99343,
            0.99418, 0.99416, 0.99271, 0.99269, 0.99313, 0.99311, 0.99215, 0.99215, 0.99218, 0.99215,
            0.99216, 0.99217, 0.99163, 0.99161, 0.99138, 0.99135, 0.98982, 0.9898, 0.98996, 0.98995,
            0.9887, 0.98866, 0.98772, 0.9877, 0.98767, 0.98765, 0.98573, 0.9857, 0.98501, 0.98498,
            0.9838, 0.98376, 0.98177, 0.98173, 0.98037, 0.98035, 0.97678, 0.97677, 0.97546, 0.97543,
            0.97184, 0.97183, 0.96711, 0.96708, 0.96349, 0.96345, 0.95629, 0.95625, 0.94926, 0.94929,
            0.93964, 0.93961, 0.92511, 0.92504, 0.90693, 0.90678, 0.8796, 0.87945, 0.86111, 0.86189},
            "Zehong-Ma/MagCache MagCache4Wan2.1/magcache_generate.py");

    /** Which steps at the start are always computed ("retention"). */
    public enum Retention {
        /** MagCache4FLUX: computed while {@code i < int(retention_ratio·N + 0.5)}. */
        ROUND_HALF_UP,
        /** ComfyUI-MagCache: computed while {@code i < int(N·retention_ratio)}. */
        FLOOR,
        /** MagCache4Wan2.1: calls counted cond/uncond interleaved, computed while {@code 2i + branch < int(2N·retention_ratio)}. */
        INTERLEAVED_FLOOR
    }

    /** How run step i maps to a calibrated step when N ≠ L. */
    public enum Interpolation {
        /** The scripts' {@code nearest_interp}: {@code round_half_even(i·(L−1)/(N−1))}; N = 1 takes the last entry. */
        NEAREST,
        /** ComfyUI-MagCache: {@code int(i·(L−1)/(N−1))} (truncation); N = 1 takes entry 0. */
        TRUNCATE
    }

    /**
     * A published configuration: a table with the script's constants.
     */
    public record Preset(String id, Table table, double threshold, int k, double retentionRatio, boolean inclusive,
                         Retention retention, int[] forcedCalibratedSteps, String source) {
        public Preset {
            forcedCalibratedSteps = forcedCalibratedSteps.clone();
        }

        @Override public int[] forcedCalibratedSteps() { return forcedCalibratedSteps.clone(); }

        @Override public String toString() { return "MagCache.Preset[" + id + "]"; }
    }

    /** Flux.1-dev: MagCache4FLUX/magcache_flux.py — thresh 0.24, K 5, retention 0.1, ≤, step 11 always computed. */
    public static final Preset FLUX_DEV = new Preset("flux-dev", FLUX_DEV_28, 0.24, 5, 0.1, true, Retention.ROUND_HALF_UP,
            new int[] {11}, "Zehong-Ma/MagCache MagCache4FLUX/magcache_flux.py");

    /** Wan2.1-T2V-1.3B: MagCache4Wan2.1 README command (E012K4R02) — thresh 0.12, K 4, retention 0.2, &lt;. */
    public static final Preset WAN21_T2V_1_3B = new Preset("wan2.1-t2v-1.3b", WAN21_T2V_1_3B_50, 0.12, 4, 0.2, false,
            Retention.INTERLEAVED_FLOOR, new int[0], "Zehong-Ma/MagCache MagCache4Wan2.1/magcache_generate.py and README");

    /** Wan2.1-T2V-14B: MagCache4Wan2.1 README command (E024K6R02) — thresh 0.24, K 6, retention 0.2, &lt;. */
    public static final Preset WAN21_T2V_14B = new Preset("wan2.1-t2v-14b", WAN21_T2V_14B_50, 0.24, 6, 0.2, false,
            Retention.INTERLEAVED_FLOOR, new int[0], "Zehong-Ma/MagCache MagCache4Wan2.1/magcache_generate.py and README");

    /**
     * A MagCache configuration.
     *
     * @param table                 calibrated γ table
     * @param threshold             {@code magcache_thresh}; 0 turns caching off
     * @param k                     {@code magcache_K}: most consecutive skips
     * @param retentionRatio        {@code retention_ratio}: leading fraction of steps always computed
     * @param inclusive             skip while {@code err ≤ thresh} (true) or {@code err < thresh} (false)
     * @param retention             how the retention boundary is computed
     * @param interpolation         how run steps map to calibrated steps
     * @param forcedCalibratedSteps calibrated step indices that are always computed
     * @param forcedStepResets      whether a forced step still accumulates and then resets the state (scripts) or
     *                              leaves the state untouched (ComfyUI)
     * @param float32               accumulate in float32 with float32 γ (ComfyUI) instead of float64
     * @param startStep             ComfyUI {@code start_step}: first step where caching may apply
     * @param endStep               ComfyUI {@code end_step}: last such step; negative counts from N ({@code -1} = N−1)
     */
    public record Config(Table table, double threshold, int k, double retentionRatio, boolean inclusive,
                         Retention retention, Interpolation interpolation, int[] forcedCalibratedSteps,
                         boolean forcedStepResets, boolean float32, int startStep, int endStep) {
        public Config {
            Objects.requireNonNull(table, "table");
            Objects.requireNonNull(retention, "retention");
            Objects.requireNonNull(interpolation, "interpolation");
            forcedCalibratedSteps = forcedCalibratedSteps.clone();
            if (!(threshold >= 0) || Double.isInfinite(threshold))
                throw new IllegalArgumentException("MagCache threshold (magcache_thresh) must be a finite number ≥ 0, got " + threshold);
            if (k < 0) throw new IllegalArgumentException("MagCache K (magcache_K, most consecutive skips) must be ≥ 0, got " + k);
            if (!(retentionRatio >= 0 && retentionRatio <= 1))
                throw new IllegalArgumentException("MagCache retention_ratio must lie in [0, 1], got " + retentionRatio);
            if (startStep < 0) throw new IllegalArgumentException("MagCache start_step must be ≥ 0, got " + startStep);
        }

        @Override public int[] forcedCalibratedSteps() { return forcedCalibratedSteps.clone(); }

        /** The Zehong-Ma/MagCache script of the preset with its constants. */
        public static Config reference(Preset p) {
            return new Config(p.table, p.threshold, p.k, p.retentionRatio, p.inclusive, p.retention, Interpolation.NEAREST,
                    p.forcedCalibratedSteps, true, false, 0, -1);
        }

        /**
         * The ComfyUI-MagCache node with one of its tables. {@code flux} selects the node's Flux forward ({@code <},
         * calibrated step 11 always computed) instead of its Wan forward ({@code ≤}).
         */
        public static Config comfyUi(Table table, boolean flux, double threshold, double retentionRatio, int k,
                                     int startStep, int endStep) {
            return new Config(table, threshold, k, retentionRatio, !flux, Retention.FLOOR, Interpolation.TRUNCATE,
                    flux ? new int[] {11} : new int[0], false, true, startStep, endStep);
        }

        public Config withThreshold(double t) {
            return new Config(table, t, k, retentionRatio, inclusive, retention, interpolation, forcedCalibratedSteps,
                    forcedStepResets, float32, startStep, endStep);
        }

        public Config withK(int newK) {
            return new Config(table, threshold, newK, retentionRatio, inclusive, retention, interpolation, forcedCalibratedSteps,
                    forcedStepResets, float32, startStep, endStep);
        }

        public Config withRetentionRatio(double r) {
            return new Config(table, threshold, k, r, inclusive, retention, interpolation, forcedCalibratedSteps,
                    forcedStepResets, float32, startStep, endStep);
        }

        public Config withTable(Table t) {
            return new Config(t, threshold, k, retentionRatio, inclusive, retention, interpolation, forcedCalibratedSteps,
                    forcedStepResets, float32, startStep, endStep);
        }

        /** The calibrated step that run step {@code i} of {@code n} uses. */
        public int calibratedStep(int i, int n) {
            int l = table.steps();
            if (n == l) return i;
            if (n == 1) return interpolation == Interpolation.NEAREST ? l - 1 : 0;
            double scale = (double) (l - 1) / (n - 1);
            return interpolation == Interpolation.NEAREST ? (int) Math.rint(i * scale) : (int) (i * scale);
        }

        /** Whether step {@code i} of {@code n} of {@code branch} lies in the retention phase. */
        public boolean retained(int i, int n, Branch branch) {
            return switch (retention) {
                case ROUND_HALF_UP -> i < (int) (retentionRatio * n + 0.5);
                case FLOOR -> i < (int) (n * retentionRatio);
                case INTERLEAVED_FLOOR -> 2 * i + branch.index() < (int) ((2 * n) * retentionRatio);
            };
        }

        boolean inWindow(int i, int n) {
            int end = endStep < 0 ? n + endStep : endStep;
            return startStep <= i && i <= end;
        }

        boolean forced(int calibrated) {
            for (int f : forcedCalibratedSteps) if (f == calibrated) return true;
            return false;
        }
    }

    private static final class State {
        double ratio = 1, err = 0;
        float ratioF = 1f, errF = 0f;
        int steps = 0;
        boolean hasResidual;

        void reset() {
            ratio = 1;
            err = 0;
            ratioF = 1f;
            errF = 0f;
            steps = 0;
        }
    }

    private final Config config;
    private final RequestStates<State> states = new RequestStates<>("magcache");

    public MagCache(Config config) { this.config = Objects.requireNonNull(config, "config"); }

    /** The reference script of a preset. */
    public static MagCache of(Preset preset) { return new MagCache(Config.reference(preset)); }

    public Config config() { return config; }

    @Override public String name() { return "magcache"; }

    @Override public String describe() {
        Config c = config;
        return "magcache " + c.table.id() + " thresh=" + c.threshold + (c.inclusive ? " (≤)" : " (<)")
                + (c.threshold == 0 ? " (off: every step computed)" : "")
                + " K=" + c.k + " retention=" + c.retentionRatio + " (" + c.retention.name().toLowerCase() + ")"
                + ", interpolation " + c.interpolation.name().toLowerCase()
                + (c.forcedCalibratedSteps.length > 0 ? ", always computed: calibrated step(s) " + Arrays.toString(c.forcedCalibratedSteps) : "")
                + (c.float32 ? ", float32 accumulation" : "")
                + (c.startStep != 0 || c.endStep != -1 ? ", steps [" + c.startStep + ", " + c.endStep + "]" : "");
    }

    @Override public boolean needsSignal(StepContext ctx) { return false; }

    @Override public Decision decide(StepContext ctx, Signals signals) {
        Objects.requireNonNull(signals, "signals (use Signals.NONE)");
        synchronized (states) {
            State s = states.advance(ctx, State::new);
            Decision d = step(s, ctx);
            if (d.compute()) s.hasResidual = true;
            return d;
        }
    }

    private Decision step(State s, StepContext ctx) {
        Config c = config;
        if (c.threshold == 0) return Decision.compute(Decision.Reason.DISABLED, Double.NaN, false);
        int i = ctx.step(), n = ctx.totalSteps();
        if (c.retained(i, n, ctx.branch())) return Decision.compute(Decision.Reason.RETENTION, Double.NaN, false);
        if (!c.inWindow(i, n)) return Decision.compute(Decision.Reason.OUTSIDE_WINDOW, Double.NaN, false);
        int j = c.calibratedStep(i, n);
        double gamma = c.table.gamma(ctx.branch(), j);
        boolean forced = c.forced(j);
        if (forced && !c.forcedStepResets) return Decision.compute(Decision.Reason.FORCED, Double.NaN, false);

        double err;
        boolean under;
        s.steps += 1;
        if (c.float32) {
            s.ratioF = s.ratioF * (float) gamma;
            s.errF = s.errF + Math.abs(1f - s.ratioF);
            err = s.errF;
            under = c.inclusive ? s.errF <= (float) c.threshold : s.errF < (float) c.threshold;
        } else {
            s.ratio = s.ratio * gamma;
            s.err += Math.abs(1 - s.ratio);
            err = s.err;
            under = c.inclusive ? s.err <= c.threshold : s.err < c.threshold;
        }
        boolean withinK = s.steps <= c.k;
        if (under && withinK && !forced) {
            if (s.hasResidual) return Decision.skip(err, false);
            s.reset();
            return Decision.compute(Decision.Reason.NO_RESIDUAL, err, false);
        }
        s.reset();
        Decision.Reason why = forced ? Decision.Reason.FORCED : !under ? Decision.Reason.THRESHOLD : Decision.Reason.K_LIMIT;
        return Decision.compute(why, err, false);
    }

    @Override public void finish(String requestId) { synchronized (states) { states.finish(requestId); } }

    @Override public void reset() { synchronized (states) { states.clear(); } }

    @Override public int openRequests() { synchronized (states) { return states.size(); } }

    @Override public String toString() { return describe(); }

    static String toJson(Table t, Map<String, double[]> extra) {
        StringBuilder sb = new StringBuilder("{\n");
        sb.append("  \"id\": ").append(Json.quote(t.id())).append(",\n");
        sb.append("  \"branches\": ").append(t.branches()).append(",\n");
        sb.append("  \"steps\": ").append(t.steps()).append(",\n");
        sb.append("  \"source\": ").append(Json.quote(t.source())).append(",\n");
        sb.append("  \"mag_ratios\": ").append(array(t.interleaved));
        for (Map.Entry<String, double[]> e : extra.entrySet())
            sb.append(",\n  ").append(Json.quote(e.getKey())).append(": ").append(array(e.getValue()));
        return sb.append("\n}\n").toString();
    }

    private static String array(double[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            if (i > 0) sb.append(", ");
            if (Double.isFinite(v[i])) sb.append(v[i]);
            else sb.append("null");      // JSON has no NaN (informational lists only; tables are validated finite)
        }
        return sb.append(']').toString();
    }

    private static String kind(Object o) {
        if (o == null) return "nothing";
        if (o instanceof Map) return "an object";
        if (o instanceof List) return "an array";
        if (o instanceof String s) return "the string \"" + s + "\"";
        return o.getClass().getSimpleName().toLowerCase() + " " + o;
    }
}
