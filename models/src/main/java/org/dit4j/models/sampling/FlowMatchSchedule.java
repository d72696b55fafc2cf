package org.dit4j.models.sampling;

import java.util.Arrays;

/**
 * The noise levels σ₀ = 1 > σ₁ > … > σ_N = 0 of a flow-matching Euler run (models.md §1.12), computed in the same
 * float32 steps as diffusers' {@code FlowMatchEulerDiscreteScheduler.set_timesteps} called by {@code FluxPipeline}:
 * <ol>
 *   <li>base σ = numpy {@code linspace(1, 1/N, N)} in float64, cast to float32;</li>
 *   <li>dynamic shift (dev, Kontext): μ = {@link #mu}(image tokens) in float64, then in float32
 *       σ' = e^μ / (e^μ + (1/σ − 1)) with e^μ rounded to float32 ({@link #timeShift});
 *       or static shift s (schnell: s = 1, no change): σ' = s·σ / (1 + (s − 1)·σ);</li>
 *   <li>σ_N = 0 appended.</li>
 * </ol>
 * BFL's {@code get_schedule} gives the same values up to the last float32 bit (it takes torch's float32
 * {@code linspace(1, 0, N+1)} instead); schnell's 4-step schedule is 1, 0.75, 0.5, 0.25, 0 in both.
 *
 * <p>The transformer is called with t = {@link #modelTimestep}(i): diffusers passes {@code timesteps = σ·1000}
 * (float32) and the pipeline divides by 1000 again, so t = fl(fl(σ·1000)/1000), which differs from σ in the last
 * bit for some steps; this class reproduces it. The Euler step uses σ itself ({@link FlowMatchEuler}).
 */
public final class FlowMatchSchedule {
    /** diffusers' {@code num_train_timesteps} for Flux: the factor between σ and the scheduler's timesteps. */
    public static final int TRAIN_TIMESTEPS = 1000;
    /** Defaults of Flux's scheduler config (and BFL's get_schedule / ComfyUI's ModelSamplingFlux). */
    public static final int BASE_SEQ_LEN = 256, MAX_SEQ_LEN = 4096;
    public static final double BASE_SHIFT = 0.5, MAX_SHIFT = 1.15;

    private final float[] sigmas;       // steps + 1 values, the last 0
    private final double mu;            // NaN for a static shift
    private final double shift;         // NaN for a dynamic shift

    private FlowMatchSchedule(float[] sigmas, double mu, double shift) {
        this.sigmas = sigmas;
        this.mu = mu;
        this.shift = shift;
    }

    /**
     * μ for {@code imageTokens} packed image tokens: the line through (baseSeqLen, baseShift) and (maxSeqLen, maxShift),
     * in float64 as diffusers' {@code calculate_shift} (not clamped: above maxSeqLen μ grows further).
     */
    public static double mu(long imageTokens, int baseSeqLen, int maxSeqLen, double baseShift, double maxShift) {
        if (maxSeqLen == baseSeqLen)
            throw new IllegalArgumentException("max_image_seq_len must differ from base_image_seq_len, both are " + baseSeqLen);
        double m = (maxShift - baseShift) / (maxSeqLen - baseSeqLen);
        double b = baseShift - m * baseSeqLen;
        return imageTokens * m + b;
    }

    /** μ with Flux's defaults: 0.5 at 256 tokens (512²), 1.15 at 4096 tokens (1024²). */
    public static double mu(long imageTokens) { return mu(imageTokens, BASE_SEQ_LEN, MAX_SEQ_LEN, BASE_SHIFT, MAX_SHIFT); }

    /** Dev/Kontext: {@code steps} levels with the resolution-dependent shift for {@code imageTokens} target tokens. */
    public static FlowMatchSchedule forImageTokens(int steps, long imageTokens) { return dynamic(steps, mu(imageTokens)); }

    /** Dynamic (exponential) shift with a given μ. */
    public static FlowMatchSchedule dynamic(int steps, double mu) {
        float[] base = baseSigmas(steps);
        float[] s = new float[steps + 1];
        for (int i = 0; i < steps; i++) s[i] = timeShift(mu, base[i]);
        return new FlowMatchSchedule(s, mu, Double.NaN);
    }

    /** Static shift s (diffusers {@code use_dynamic_shifting = false}); schnell uses s = 1, i.e. linear σ. */
    public static FlowMatchSchedule staticShift(int steps, double shift) {
        if (!(shift > 0)) throw new IllegalArgumentException("the sigma shift must be positive, got " + shift);
        float[] base = baseSigmas(steps);
        float[] s = new float[steps + 1];
        float sh = (float) shift, shm1 = (float) (shift - 1);
        for (int i = 0; i < steps; i++) s[i] = sh * base[i] / (1f + shm1 * base[i]);
        return new FlowMatchSchedule(s, Double.NaN, shift);
    }

    /** Schnell: linear σ = 1, (N−1)/N, …, 1/N, 0 (4 steps: 1, 0.75, 0.5, 0.25, 0). */
    public static FlowMatchSchedule linear(int steps) { return staticShift(steps, 1.0); }

    /** A schedule from given σ values (descending, each in (0, 1]); 0 is appended. */
    public static FlowMatchSchedule of(float... sigmas) {
        if (sigmas.length == 0) throw new IllegalArgumentException("a schedule needs at least one sigma");
        for (int i = 0; i < sigmas.length; i++) {
            if (!(sigmas[i] > 0 && sigmas[i] <= 1) || (i > 0 && sigmas[i] >= sigmas[i - 1]))
                throw new IllegalArgumentException("sigmas must descend within (0, 1], got " + Arrays.toString(sigmas));
        }
        return new FlowMatchSchedule(Arrays.copyOf(sigmas, sigmas.length + 1), Double.NaN, Double.NaN);
    }

    /**
     * σ' = e^μ/(e^μ + (1/σ − 1)) evaluated as numpy does on a float32 array with Python-float μ: e^μ computed in
     * float64 and rounded to float32, every arithmetic step in float32. σ = 1 maps to 1.
     */
    public static float timeShift(double mu, float sigma) {
        float e = (float) Math.exp(mu);
        float r = 1f / sigma - 1f;
        return e / (e + r);
    }

    /** numpy {@code linspace(1.0, 1/steps, steps)} in float64 (i·step + start, last value exactly the stop), as float32. */
    static float[] baseSigmas(int steps) {
        if (steps < 1) throw new IllegalArgumentException("the number of steps must be at least 1, got " + steps);
        float[] out = new float[steps];
        double start = 1.0, stop = 1.0 / steps;
        if (steps == 1) {
            out[0] = 1f;
            return out;
        }
        double step = (stop - start) / (steps - 1);
        for (int i = 0; i < steps; i++) out[i] = (float) (i * step + start);
        out[steps - 1] = (float) stop;
        return out;
    }

    /** Number of Euler steps (one transformer evaluation each, two with true CFG). */
    public int steps() { return sigmas.length - 1; }

    /** σ_i, i = 0..steps (σ_steps = 0). */
    public float sigma(int i) { return sigmas[i]; }

    /** All σ, steps + 1 values ending in 0. */
    public float[] sigmas() { return sigmas.clone(); }

    /** σ_{i+1} − σ_i in float32 (negative): the Euler step's factor. */
    public float dt(int i) { return sigmas[i + 1] - sigmas[i]; }

    /** The flow time handed to the transformer at step i: fl(fl(σ_i·1000)/1000), as diffusers' Flux pipelines do. */
    public float modelTimestep(int i) {
        float t = sigmas[i] * TRAIN_TIMESTEPS;
        return t / TRAIN_TIMESTEPS;
    }

    /** μ of a dynamic schedule, NaN otherwise. */
    public double mu() { return mu; }

    /** The static shift, NaN for a dynamic schedule. */
    public double shift() { return shift; }

    @Override public String toString() {
        String kind = !Double.isNaN(mu) ? "dynamic shift μ=" + (float) mu : !Double.isNaN(shift) ? "static shift " + shift : "custom";
        return "FlowMatchSchedule[" + steps() + " steps, " + kind + ", σ=" + Arrays.toString(sigmas) + "]";
    }
}
