package org.dit4j.models.sampling;

import java.util.Arrays;

/**
 * The noise levels and model timesteps of a flow-matching run with a static shift, as the multistep solvers of Wan
 * use them (models.md §2.9). Two variants:
 * <ul>
 *   <li>{@link #diffusers}: diffusers' {@code UniPCMultistepScheduler(use_flow_sigmas=True, flow_shift=s)}
 *       {@code .set_timesteps(N)}: σ = numpy {@code linspace(1, 1/1000, N+1)[:-1]} in float64, shifted
 *       σ' = s·σ/(1 + (s−1)·σ), σ'₀ nudged down by 1e-6 when it is within 1e-6 of 1 (so that log(1−σ) stays
 *       finite);</li>
 *   <li>{@link #wanOriginal}: the reference repository's {@code FlowUniPCMultistepScheduler(shift=1)}
 *       {@code .set_timesteps(N, shift=s)}: σ = {@code linspace(σ_max, 0, N+1)[:-1]} with σ_max = float32(0.999), shifted
 *       the same way, no nudge.</li>
 * </ul>
 * In both, the model timestep of step i is int64(1000·σ'ᵢ) (truncated, from the float64 σ'), the solver uses σ'
 * rounded to float32, and σ_N = 0 is appended.
 */
public final class FlowShiftSchedule {
    /** diffusers' {@code num_train_timesteps}: the factor between σ and the model timestep. */
    public static final int TRAIN_TIMESTEPS = 1000;

    /** Wan2.1's default shift for text-to-video. */
    public static final double WAN_T2V_SHIFT = 5.0;

    private final float[] sigmas;      // steps + 1, the last 0
    private final long[] timesteps;    // steps
    private final double shift;
    private final String variant;

    private FlowShiftSchedule(float[] sigmas, long[] timesteps, double shift, String variant) {
        this.sigmas = sigmas;
        this.timesteps = timesteps;
        this.shift = shift;
        this.variant = variant;
    }

    /** diffusers' flow-sigma schedule (see the class comment). */
    public static FlowShiftSchedule diffusers(int steps, double shift) {
        double[] base = linspaceWithoutEnd(1.0, 1.0 / TRAIN_TIMESTEPS, steps);
        double[] s = shifted(base, shift);
        if (Math.abs(s[0] - 1) < 1e-6) s[0] -= 1e-6;
        return of(s, shift, "diffusers");
    }

    /** The Wan reference repository's schedule (see the class comment). */
    public static FlowShiftSchedule wanOriginal(int steps, double shift) {
        double sigmaMax = (float) (1.0 - 1.0 / TRAIN_TIMESTEPS);
        return of(shifted(linspaceWithoutEnd(sigmaMax, 0.0, steps), shift), shift, "Wan reference");
    }

    /**
     * A schedule given value by value (e.g. another program's σ table, to run the same steps): {@code sigmas} has
     * steps + 1 values ending in 0, {@code timesteps} steps values.
     */
    public static FlowShiftSchedule custom(float[] sigmas, long[] timesteps, double shift) {
        if (sigmas.length < 2 || timesteps.length != sigmas.length - 1)
            throw new IllegalArgumentException("a schedule needs steps + 1 sigmas and steps timesteps, got " + sigmas.length + " and "
                    + timesteps.length);
        return new FlowShiftSchedule(sigmas.clone(), timesteps.clone(), shift, "custom");
    }

    private static FlowShiftSchedule of(double[] s, double shift, String variant) {
        float[] sig = new float[s.length + 1];
        long[] ts = new long[s.length];
        for (int i = 0; i < s.length; i++) {
            sig[i] = (float) s[i];
            ts[i] = (long) (s[i] * TRAIN_TIMESTEPS);
        }
        return new FlowShiftSchedule(sig, ts, shift, variant);
    }

    /** numpy {@code linspace(start, stop, steps + 1)[:-1]} in float64: i·((stop − start)/steps) + start. */
    static double[] linspaceWithoutEnd(double start, double stop, int steps) {
        if (steps < 1) throw new IllegalArgumentException("the number of steps must be at least 1, got " + steps);
        double step = (stop - start) / steps;
        double[] out = new double[steps];
        for (int i = 0; i < steps; i++) out[i] = i * step + start;
        return out;
    }

    private static double[] shifted(double[] s, double shift) {
        if (!(shift > 0)) throw new IllegalArgumentException("the flow shift must be positive, got " + shift);
        double[] out = new double[s.length];
        for (int i = 0; i < s.length; i++) out[i] = shift * s[i] / (1 + (shift - 1) * s[i]);
        return out;
    }

    /** Number of steps (model evaluations per CFG branch). */
    public int steps() { return timesteps.length; }

    /** σᵢ as the solver uses it (float32), i = 0..steps; σ_steps = 0. */
    public float sigma(int i) { return sigmas[i]; }

    /** All σ, steps + 1 values ending in 0. */
    public float[] sigmas() { return sigmas.clone(); }

    /** The timestep handed to the transformer at step i (0..999 scale, integer). */
    public long timestep(int i) { return timesteps[i]; }

    /** All model timesteps. */
    public long[] timesteps() { return timesteps.clone(); }

    public double shift() { return shift; }

    @Override public String toString() {
        return "FlowShiftSchedule[" + variant + ", " + steps() + " steps, shift " + shift + ", t=" + Arrays.toString(timesteps) + "]";
    }
}
