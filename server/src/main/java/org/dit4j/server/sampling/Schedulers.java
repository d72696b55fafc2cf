package org.dit4j.server.sampling;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * ComfyUI's schedulers ({@code comfy/samplers.py} SCHEDULER_HANDLERS) and the sigma logic of KSampler,
 * KSamplerAdvanced and BasicScheduler. Results are float32 arrays, descending, ending in 0 (except where ComfyUI's
 * own scheduler does not append one).
 */
public final class Schedulers {

    private Schedulers() {}

    /** Scheduler names in ComfyUI's order (the combo list of KSampler and BasicScheduler). */
    public static final List<String> NAMES = List.of("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
            "normal", "linear_quadratic", "kl_optimal");

    /** Samplers for which KSampler computes one extra step and drops the penultimate sigma. */
    public static final Set<String> DISCARD_PENULTIMATE_SIGMA_SAMPLERS = Set.of("dpm_2", "dpm_2_ancestral", "uni_pc", "uni_pc_bh2");

    /** {@code calculate_sigmas(model_sampling, scheduler_name, steps)}. */
    public static float[] calculate(ModelSampling ms, String scheduler, int steps) {
        return switch (scheduler) {
            case "simple" -> simple(ms, steps);
            case "sgm_uniform" -> normal(ms, steps, true);
            case "karras" -> karras(steps, ms.sigmaMin(), ms.sigmaMax(), 7.0);
            case "exponential" -> exponential(steps, ms.sigmaMin(), ms.sigmaMax());
            case "ddim_uniform" -> ddimUniform(ms, steps);
            case "beta" -> beta(ms, steps, 0.6, 0.6);
            case "normal" -> normal(ms, steps, false);
            case "linear_quadratic" -> linearQuadratic(ms, steps, 0.025);
            case "kl_optimal" -> klOptimal(steps, ms.sigmaMin(), ms.sigmaMax());
            default -> throw new IllegalArgumentException("error invalid scheduler " + scheduler + "; expected one of " + NAMES);
        };
    }

    /**
     * KSampler's schedule ({@code KSampler.set_steps}): with denoise &lt; 1 ComfyUI computes {@code int(steps/denoise)}
     * steps and keeps the last {@code steps + 1} sigmas; denoise ≤ 0 gives an empty schedule.
     */
    public static float[] ksampler(ModelSampling ms, String scheduler, String sampler, int steps, double denoise) {
        if (denoise > 0.9999) return ksamplerCalculate(ms, scheduler, sampler, steps);
        if (denoise <= 0.0) return new float[0];
        int newSteps = (int) (steps / denoise);
        float[] sigmas = ksamplerCalculate(ms, scheduler, sampler, newSteps);
        return tail(sigmas, steps + 1);
    }

    private static float[] ksamplerCalculate(ModelSampling ms, String scheduler, String sampler, int steps) {
        boolean discard = DISCARD_PENULTIMATE_SIGMA_SAMPLERS.contains(sampler);
        float[] sigmas = calculate(ms, scheduler, discard ? steps + 1 : steps);
        if (!discard || sigmas.length < 2) return sigmas;
        float[] out = new float[sigmas.length - 1];
        System.arraycopy(sigmas, 0, out, 0, sigmas.length - 2);
        out[out.length - 1] = sigmas[sigmas.length - 1];
        return out;
    }

    /**
     * KSamplerAdvanced's cut of a KSampler schedule ({@code KSampler.sample} with start_step / last_step).
     * Returns null when start_step is at or past the end: ComfyUI then returns the input latent unchanged.
     */
    public static float[] advancedRange(float[] sigmas, int startStep, int lastStep, boolean forceFullDenoise) {
        float[] s = sigmas;
        if (lastStep < s.length - 1) {
            s = Arrays.copyOf(s, lastStep + 1);
            if (forceFullDenoise) s[s.length - 1] = 0f;
        }
        if (startStep < s.length - 1) return Arrays.copyOfRange(s, startStep, s.length);
        return null;
    }

    /** BasicScheduler: {@code int(steps/denoise)} steps for denoise &lt; 1, the last {@code steps + 1} sigmas kept. */
    public static float[] basic(ModelSampling ms, String scheduler, int steps, double denoise) {
        int total = steps;
        if (denoise < 1.0) {
            if (denoise <= 0.0) return new float[0];
            total = (int) (steps / denoise);
        }
        return tail(calculate(ms, scheduler, total), steps + 1);
    }

    private static float[] tail(float[] s, int n) {
        return n >= s.length ? s : Arrays.copyOfRange(s, s.length - n, s.length);
    }

    /** simple_scheduler: σ table entries at −(1 + int(x·len/steps)), then 0. */
    public static float[] simple(ModelSampling ms, int steps) {
        float[] table = ms.sigmaTable();
        double ss = (double) table.length / steps;
        float[] out = new float[steps + 1];
        for (int x = 0; x < steps; x++) out[x] = table[table.length - 1 - (int) (x * ss)];
        out[steps] = 0f;
        return out;
    }

    /** normal_scheduler (sgm = sgm_uniform): σ at timesteps evenly spaced between timestep(σ_max) and timestep(σ_min). */
    public static float[] normal(ModelSampling ms, int steps, boolean sgm) {
        float start = ms.timestep(ms.sigmaMax());
        float end = ms.timestep(ms.sigmaMin());
        boolean appendZero = true;
        float[] timesteps;
        if (sgm) {
            timesteps = Arrays.copyOf(linspace(start, end, steps + 1), steps);
        } else {
            if (Math.abs(ms.sigma(end)) <= 0.00001) {
                steps += 1;
                appendZero = false;
            }
            timesteps = linspace(start, end, steps);
        }
        float[] out = new float[timesteps.length + (appendZero ? 1 : 0)];
        for (int i = 0; i < timesteps.length; i++) out[i] = ms.sigma(timesteps[i]);
        return out;
    }

    /** beta_scheduler (arXiv:2407.12173): table indices rint(beta.ppf(1 − i/steps, α, β)·(len − 1)), repeats dropped, then 0. */
    public static float[] beta(ModelSampling ms, int steps, double alpha, double beta) {
        float[] table = ms.sigmaTable();
        int total = table.length - 1;
        double step = 1.0 / steps;                                  // numpy.linspace(0, 1, steps, endpoint=False)
        List<Float> sigs = new ArrayList<>();
        double last = -1;
        for (int i = 0; i < steps; i++) {
            double ts = 1.0 - (i * step + 0.0);
            double t = Math.rint(BetaDistribution.ppf(ts, alpha, beta) * total);
            if (t != last) sigs.add(table[(int) t]);
            last = t;
        }
        float[] out = new float[sigs.size() + 1];
        for (int i = 0; i < sigs.size(); i++) out[i] = sigs.get(i);
        return out;
    }

    /** ddim_scheduler. */
    public static float[] ddimUniform(ModelSampling ms, int steps) {
        float[] table = ms.sigmaTable();
        List<Float> sigs = new ArrayList<>();
        int x = 1;
        if (Math.abs(table[x]) <= 0.00001) steps += 1;
        else sigs.add(0f);
        int ss = Math.max(table.length / steps, 1);
        while (x < table.length) {
            sigs.add(table[x]);
            x += ss;
        }
        float[] out = new float[sigs.size()];
        for (int i = 0; i < out.length; i++) out[i] = sigs.get(sigs.size() - 1 - i);
        return out;
    }

    /** get_sigmas_karras(n, σmin, σmax, ρ) followed by append_zero. */
    public static float[] karras(int n, float sigmaMin, float sigmaMax, double rho) {
        float[] ramp = linspace(0f, 1f, n);
        double minInv = Math.pow(sigmaMin, 1 / rho), maxInv = Math.pow(sigmaMax, 1 / rho);
        float[] out = new float[n + 1];
        for (int i = 0; i < n; i++) out[i] = (float) Math.pow((ramp[i] * (float) (minInv - maxInv)) + (float) maxInv, rho);
        return out;
    }

    /** get_sigmas_exponential: exp of a linspace between log σmax and log σmin, then 0. */
    public static float[] exponential(int n, float sigmaMin, float sigmaMax) {
        float[] l = linspace((float) Math.log(sigmaMax), (float) Math.log(sigmaMin), n);
        float[] out = new float[n + 1];
        for (int i = 0; i < n; i++) out[i] = (float) Math.exp(l[i]);
        return out;
    }

    /** linear_quadratic_schedule (Mochi) scaled by σmax. */
    public static float[] linearQuadratic(ModelSampling ms, int steps, double thresholdNoise) {
        double[] schedule;
        if (steps == 1) {
            schedule = new double[]{1.0, 0.0};
        } else {
            int linearSteps = steps / 2;
            double[] s = new double[steps + 1];
            for (int i = 0; i < linearSteps; i++) s[i] = i * thresholdNoise / linearSteps;
            double diff = linearSteps - thresholdNoise * steps;
            int quadraticSteps = steps - linearSteps;
            double quadCoef = diff / (linearSteps * Math.pow(quadraticSteps, 2));
            double linCoef = thresholdNoise / linearSteps - 2 * diff / Math.pow(quadraticSteps, 2);
            double konst = quadCoef * Math.pow(linearSteps, 2);
            for (int i = linearSteps; i < steps; i++) s[i] = quadCoef * ((double) i * i) + linCoef * i + konst;
            s[steps] = 1.0;
            for (int i = 0; i <= steps; i++) s[i] = 1.0 - s[i];
            schedule = s;
        }
        float max = ms.sigmaMax();
        float[] out = new float[schedule.length];
        for (int i = 0; i < out.length; i++) out[i] = (float) schedule[i] * max;
        return out;
    }

    /** kl_optimal_scheduler. */
    public static float[] klOptimal(int n, float sigmaMin, float sigmaMax) {
        float[] out = new float[n + 1];
        float aMin = (float) Math.atan(sigmaMin), aMax = (float) Math.atan(sigmaMax);
        for (int i = 0; i < n; i++) {
            float adj = (float) i / (float) (n - 1);
            out[i] = (float) Math.tan((adj * aMin) + ((1f - adj) * aMax));
        }
        return out;
    }

    /** torch.linspace(start, end, steps) in float32 as the scalar CPU kernel evaluates it (halves from both ends). */
    static float[] linspace(float start, float end, int steps) {
        float[] out = new float[steps];
        if (steps == 1) {
            out[0] = start;
            return out;
        }
        float step = (end - start) / (float) (steps - 1);
        int halfway = steps / 2;
        for (int i = 0; i < steps; i++) out[i] = i < halfway ? start + step * i : end - step * (steps - i - 1);
        return out;
    }
}
