package org.dit4j.server.sampling;

import java.util.ArrayList;
import java.util.List;

/**
 * ComfyUI's sampler loops ({@code KSAMPLER.sampler_function}) on host float32 arrays, driven by a denoiser: the model
 * wrapped as ComfyUI's samplers see it, {@code D(x, σ)} = the denoised prediction (CFG already applied). Every
 * expression follows ComfyUI's float32 tensor arithmetic operation by operation (one rounding per operation,
 * Python scalars rounded to float32), so results agree with ComfyUI's CPU evaluation to a few ulps (log/exp and the
 * small linear solves may differ by an ulp).
 * <ul>
 *   <li>{@code euler} ({@code k_diffusion.sampling.sample_euler}, churn 0): d = (x − D)/σᵢ; x += d·(σᵢ₊₁ − σᵢ).</li>
 *   <li>{@code uni_pc}, {@code uni_pc_bh2} ({@code comfy/extra_samplers/uni_pc.py}: {@code sample_unipc} with
 *       variant B(h) = h resp. eʰ − 1): UniPC multistep, data prediction, order min(3, steps − 1), lower order at
 *       the end, predictor–corrector. The σ-space model is converted to a VP noise predictor
 *       ({@code SigmaConvert}: α = 1/√(1+σ²), std = σ/√(1+σ²), λ = log α − log std): x enters scaled by
 *       1/√(1+σ₀²); each evaluation scales by √(1+σ²), calls D and returns ε = (x_ve − D)/σ, then
 *       x₀ = (x − std·ε)/α. A final σ of 0 is replaced by 0.001, in ComfyUI's sigmas tensor itself (a view):
 *       the result is divided by α(0.001) and then by (1 − 0.001) in the flow model's inverse noise scaling, which
 *       {@link Result#finalSigma()} reports.</li>
 * </ul>
 * Model calls: one per step, at σ₀ … σ_{steps−1} (UniPC evaluates at the predicted point and never at the last σ).
 */
public final class KSamplers {

    private KSamplers() {}

    /** The sampler names dit4j implements, in ComfyUI's order. */
    public static final List<String> NAMES = List.of("euler", "uni_pc", "uni_pc_bh2");

    /** The model as the sampler sees it: the denoised prediction for x at σ = sigmas[step]. */
    @FunctionalInterface
    public interface Denoiser {
        float[] denoise(float[] x, int step, float sigma);
    }

    /** ComfyUI's sampler callback: step i of {@code steps} done; {@code denoised} the last model prediction. */
    @FunctionalInterface
    public interface StepListener {
        void stepDone(int step, int steps, float[] denoised);
    }

    /**
     * @param x          the sampler output (before the model's inverse noise scaling)
     * @param denoised   the last denoised prediction (the callback's x0, SamplerCustomAdvanced's second output)
     * @param finalSigma σ_last as the model's inverse noise scaling sees it afterwards (UniPC: 0.001 when it was 0)
     */
    public record Result(float[] x, float[] denoised, float finalSigma) {}

    /**
     * Runs sampler {@code name} from {@code x} (already noise-scaled: σ₀·ε + (1 − σ₀)·latent for flow models) over
     * {@code sigmas} (at least two). {@code x} is not modified.
     */
    public static Result sample(String name, Denoiser model, float[] x, float[] sigmas, StepListener listener) {
        if (sigmas.length < 2) throw new IllegalArgumentException("a sampler needs at least 2 sigmas, got " + sigmas.length);
        return switch (name) {
            case "euler" -> euler(model, x, sigmas, listener);
            case "uni_pc" -> uniPc(model, x, sigmas, listener, false);
            case "uni_pc_bh2" -> uniPc(model, x, sigmas, listener, true);
            default -> throw new IllegalArgumentException("sampler '" + name + "' is not implemented by dit4j; use one of " + NAMES);
        };
    }

    // ------------------------------------------------------------------------------------------------ euler

    static Result euler(Denoiser model, float[] x0, float[] sigmas, StepListener listener) {
        float[] x = x0.clone();
        float[] denoised = null;
        int steps = sigmas.length - 1;
        for (int i = 0; i < steps; i++) {
            float sigma = sigmas[i];
            denoised = model.denoise(x, i, sigma);
            float dt = sigmas[i + 1] - sigma;
            for (int j = 0; j < x.length; j++) {
                float d = (x[j] - denoised[j]) / sigma;
                x[j] = x[j] + d * dt;
            }
            listener.stepDone(i, steps, denoised);
        }
        return new Result(x, denoised, sigmas[steps]);
    }

    // ------------------------------------------------------------------------------------------------ UniPC

    /** SigmaConvert: log α = ½·log(1/(σ² + 1)). */
    static float logAlpha(float s) {
        return 0.5f * (float) Math.log(1f / ((s * s) + 1f));
    }

    static float alpha(float s) { return (float) Math.exp(logAlpha(s)); }

    static float std(float s) { return (float) Math.sqrt(1f - (float) Math.exp(2f * logAlpha(s))); }

    static float lambda(float s) {
        float lm = logAlpha(s);
        return lm - 0.5f * (float) Math.log(1f - (float) Math.exp(2f * lm));
    }

    /** UniPC's data-prediction model: x₀ = (x − std·ε)/α with ε = (x·√(σ²+1) − D)/σ. */
    private static float[] dataPrediction(Denoiser model, float[] x, int step, float t) {
        float scale = (float) Math.sqrt((t * t) + 1f);
        float[] in = new float[x.length];
        for (int j = 0; j < x.length; j++) in[j] = x[j] * scale;
        float[] d = model.denoise(in, step, t);
        float a = alpha(t), s = std(t);
        float[] out = new float[x.length];
        for (int j = 0; j < x.length; j++) {
            float eps = (in[j] - d[j]) / t;
            out[j] = (x[j] - s * eps) / a;
        }
        return out;
    }

    static Result uniPc(Denoiser model, float[] xIn, float[] sigmas, StepListener listener, boolean bh2) {
        int steps = sigmas.length - 1;
        float[] ts = sigmas.clone();
        if (ts[steps] == 0f) ts[steps] = 0.001f;
        int order = Math.min(3, steps - 1);
        float start = (float) Math.sqrt((ts[0] * ts[0]) + 1f);
        float[] x = new float[xIn.length];
        for (int j = 0; j < x.length; j++) x[j] = xIn[j] / start;

        List<float[]> models = new ArrayList<>();
        List<Float> times = new ArrayList<>();
        for (int si = 0; si < steps; si++) {
            if (si == 0) {
                models.add(dataPrediction(model, x, 0, ts[0]));
                times.add(ts[0]);
            } else if (si < order) {
                Update u = update(model, x, models, times, ts[si], si, si, true, bh2);
                x = u.x;
                models.add(u.model);
                times.add(ts[si]);
            } else {
                int last = si == steps - 1 ? si + 1 : si;
                for (int step = si; step <= last; step++) {
                    int stepOrder = Math.min(order, steps + 1 - step);
                    boolean corrector = step != steps;
                    Update u = update(model, x, models, times, ts[step], step, stepOrder, corrector, bh2);
                    x = u.x;
                    for (int i = 0; i < order - 1; i++) {
                        times.set(i, times.get(i + 1));
                        models.set(i, models.get(i + 1));
                    }
                    times.set(times.size() - 1, ts[step]);
                    if (step < steps) models.set(models.size() - 1, u.model);
                }
            }
            listener.stepDone(si, steps, models.getLast());
        }
        float a = alpha(ts[steps]);
        for (int j = 0; j < x.length; j++) x[j] = x[j] / a;
        return new Result(x, models.getLast(), ts[steps]);
    }

    private record Update(float[] x, float[] model) {}

    /** One multistep UniPC B(h) update to time t (predictor, then the corrector unless it is the final step). */
    private static Update update(Denoiser model, float[] x, List<float[]> models, List<Float> times, float t, int step, int order,
                                 boolean corrector, boolean bh2) {
        int n = x.length;
        float tPrev = times.getLast();
        float[] mPrev = models.getLast();
        float lambdaPrev = lambda(tPrev), lambdaT = lambda(t);
        float sigmaPrev = std(tPrev), sigmaT = std(t);
        float alphaT = (float) Math.exp(logAlpha(t));
        float h = lambdaT - lambdaPrev;

        float[] rks = new float[order];
        List<float[]> d1s = new ArrayList<>();
        for (int i = 1; i < order; i++) {
            float ti = times.get(times.size() - 1 - i);
            float[] mi = models.get(models.size() - 1 - i);
            float rk = (lambda(ti) - lambdaPrev) / h;
            rks[i - 1] = rk;
            float[] d = new float[n];
            for (int j = 0; j < n; j++) d[j] = (mi[j] - mPrev[j]) / rk;
            d1s.add(d);
        }
        rks[order - 1] = 1f;

        float hh = -h;
        float hPhi1 = (float) Math.expm1(hh);
        float hPhiK = hPhi1 / hh - 1f;
        float bH = bh2 ? (float) Math.expm1(hh) : hh;
        float[][] r = new float[order][order];
        float[] b = new float[order];
        long factorial = 1;
        for (int i = 1; i <= order; i++) {
            for (int k = 0; k < order; k++) r[i - 1][k] = pow(rks[k], i - 1);
            b[i - 1] = (hPhiK * (float) factorial) / bH;
            factorial *= (i + 1);
            hPhiK = hPhiK / hh - (float) (1.0 / factorial);
        }

        float[] rhosP = null;
        if (!d1s.isEmpty()) rhosP = order == 2 ? new float[] {0.5f} : solve(r, b, order - 1);
        float[] rhosC = null;
        if (corrector) rhosC = order == 1 ? new float[] {0.5f} : solve(r, b, order);

        float c1 = sigmaT / sigmaPrev, c2 = alphaT * hPhi1, cb = alphaT * bH;
        float[] xBase = new float[n];
        for (int j = 0; j < n; j++) xBase[j] = (c1 * x[j]) - (c2 * mPrev[j]);
        float[] xt = new float[n];
        for (int j = 0; j < n; j++) {
            float res = rhosP == null ? 0f : combine(rhosP, d1s, j, rhosP.length);
            xt[j] = rhosP == null ? xBase[j] : xBase[j] - cb * res;
        }
        float[] mT = null;
        if (corrector) {
            mT = dataPrediction(model, xt, step, t);
            float last = rhosC[rhosC.length - 1];
            for (int j = 0; j < n; j++) {
                float d1t = mT[j] - mPrev[j];
                float term = last * d1t;
                if (!d1s.isEmpty()) term = combine(rhosC, d1s, j, d1s.size()) + term;
                xt[j] = xBase[j] - cb * term;
            }
        }
        return new Update(xt, mT);
    }

    /** einsum('k,bk...->b...', rhos[:k], D1s) at element j: Σ rhos[k]·D1s[k][j] in k order. */
    private static float combine(float[] rhos, List<float[]> d1s, int j, int k) {
        float s = rhos[0] * d1s.get(0)[j];
        for (int i = 1; i < k; i++) s = s + rhos[i] * d1s.get(i)[j];
        return s;
    }

    /** torch.pow(x, e) for the small integer exponents UniPC uses (0 → 1, 1 → x, 2 → x·x). */
    private static float pow(float v, int e) {
        float p = 1f;
        for (int i = 0; i < e; i++) p = i == 0 ? v : p * v;
        return p;
    }

    /**
     * Solves the leading m×m block of {@code a} against {@code b[0..m)} in float32 by LU with partial pivoting (LAPACK
     * getrf/getrs order: multipliers by the reciprocal pivot, unit-lower forward then upper backward substitution).
     */
    static float[] solve(float[][] a, float[] b, int m) {
        float[][] lu = new float[m][m];
        for (int i = 0; i < m; i++) lu[i] = java.util.Arrays.copyOf(a[i], m);
        float[] y = java.util.Arrays.copyOf(b, m);
        for (int c = 0; c < m; c++) {
            int p = c;
            for (int i = c + 1; i < m; i++) if (Math.abs(lu[i][c]) > Math.abs(lu[p][c])) p = i;
            if (lu[p][c] == 0f) throw new ArithmeticException("UniPC coefficient matrix is singular (repeated sigmas?)");
            if (p != c) {
                float[] t = lu[p];
                lu[p] = lu[c];
                lu[c] = t;
                float tb = y[p];
                y[p] = y[c];
                y[c] = tb;
            }
            float inv = 1f / lu[c][c];
            for (int i = c + 1; i < m; i++) {
                float l = lu[i][c] * inv;
                lu[i][c] = l;
                for (int k = c + 1; k < m; k++) lu[i][k] = lu[i][k] - l * lu[c][k];
            }
        }
        for (int i = 0; i < m; i++) for (int k = 0; k < i; k++) y[i] = y[i] - lu[i][k] * y[k];
        for (int i = m - 1; i >= 0; i--) {
            for (int k = i + 1; k < m; k++) y[i] = y[i] - lu[i][k] * y[k];
            y[i] = y[i] / lu[i][i];
        }
        return y;
    }
}
