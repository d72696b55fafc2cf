package org.dit4j.models.sampling;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * UniPC multistep sampling for flow-matching models (Wan2.1's default; models.md §2.9), as diffusers'
 * {@code UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, predict_x0=True)} computes
 * it: data prediction x̂₀ = x − σ·v, a B(h) predictor of order p (UniP) and a corrector (UniC) that refines each new
 * sample with the model output evaluated there.
 *
 * <p>With α = 1 − σ, λ = ln α − ln σ, step i from s₀ = σᵢ to t = σᵢ₊₁, h = λ_t − λ_s₀, m₀ = x̂₀ at step i and mₖ the
 * data predictions of the k previous steps, rₖ = (λ_{i−k} − λ_s₀)/h and Dₖ = (mₖ − m₀)/rₖ:
 * <pre>
 * predictor  x_t = (σ_t/σ_s₀)·x − α_t·φ₁·m₀ − α_t·B(h)·Σ ρₖ·Dₖ          φ₁ = expm1(−h); B(h) = expm1(−h) (bh2) or −h (bh1)
 * corrector  x_c = (σ_t/σ_s₀)·x_prev − α_t·φ₁·m₀ − α_t·B(h)·(Σ ρₖ·Dₖ + ρ_last·(x̂₀(x_t) − m₀))
 * </pre>
 * where ρ solves R·ρ = b with R_{jk} = rₖ^j and b_j = (j+1)!·φ_{j+1}(h)/B(h) (φ by the recurrence
 * φ_{k+1} = φ_k/(−h) − 1/(k+1)!), order-2 predictor ρ = ½ and order-1 corrector ρ = ½ as diffusers simplifies them.
 * The order of step i is min(p, steps − i) with lower-order-final (else p), limited during warm-up to the steps seen so
 * far; the corrector at step i uses the order of step i − 1 and is skipped at step 0 and at the steps listed as
 * disabled (diffusers' {@code disable_corrector}, which lists the index of the step whose prediction it would correct,
 * i.e. i − 1).
 *
 * <p>The coefficients are computed in double from the float32 σ of the schedule, and each update is one linear
 * combination of latents ({@link LatentAlgebra}). σ_t = 0 at the last step is handled explicitly: h is infinite there,
 * φ₁ = B(h) = −1, and the order-1 predictor returns x̂₀ exactly; no infinity enters the arithmetic. (A higher-order
 * predictor has no finite limit at σ = 0 — diffusers produces NaN there without lower-order-final — so the last step
 * always returns x̂₀.)
 *
 * @param <T> the latent representation
 */
public final class FlowUniPcSampler<T> implements FlowSampler<T> {

    /** The B(h) variant. */
    public enum Variant { BH1, BH2 }

    private final FlowShiftSchedule schedule;
    private final LatentAlgebra<T> algebra;
    private final int order;
    private final Variant variant;
    private final boolean lowerOrderFinal;
    private final Set<Integer> disableCorrector;

    private final List<T> history = new ArrayList<>();   // data predictions, oldest first, at most `order`
    private T lastSample;                                 // the (corrected) sample the previous predictor started from
    private int lastOrder;                                // the previous step's order
    private int warm;                                     // lower_order_nums
    private int next;

    /** Wan's configuration: order 2, bh2, lower-order final, corrector everywhere. */
    public FlowUniPcSampler(FlowShiftSchedule schedule, LatentAlgebra<T> algebra) {
        this(schedule, algebra, 2, Variant.BH2, true, Set.of());
    }

    /**
     * @param order            solver order p ≥ 1 (diffusers' {@code solver_order})
     * @param lowerOrderFinal  use order min(p, steps remaining) near the end (diffusers' {@code lower_order_final})
     * @param disableCorrector diffusers' {@code disable_corrector}: i − 1 for each step i whose corrector is skipped
     */
    public FlowUniPcSampler(FlowShiftSchedule schedule, LatentAlgebra<T> algebra, int order, Variant variant,
                            boolean lowerOrderFinal, Set<Integer> disableCorrector) {
        if (order < 1 || order > 4) throw new IllegalArgumentException("UniPC order must be 1 to 4, got " + order);
        this.schedule = schedule;
        this.algebra = algebra;
        this.order = order;
        this.variant = variant;
        this.lowerOrderFinal = lowerOrderFinal;
        this.disableCorrector = Set.copyOf(disableCorrector);
    }

    @Override public FlowShiftSchedule schedule() { return schedule; }

    @Override public T step(T modelOutput, int i, T sample) {
        algebra.checkStep();
        requireOrder(i, next, schedule.steps());
        double sigma = schedule.sigma(i);
        T x0 = algebra.combine(new double[] {1, -sigma}, List.of(sample, modelOutput));
        T x = sample;
        boolean corrected = i > 0 && lastSample != null && !disableCorrector.contains(i - 1);
        if (corrected) x = correct(i, x0);
        history.add(x0);
        if (history.size() > order) algebra.release(history.removeFirst());
        int thisOrder = lowerOrderFinal ? Math.min(order, schedule.steps() - i) : order;
        thisOrder = Math.min(thisOrder, warm + 1);
        if (lastSample != null) algebra.release(lastSample);
        T out = predict(i, x, thisOrder);
        // the predictor's starting point is needed by the next corrector: keep it (a copy when it is the caller's)
        lastSample = corrected ? x : algebra.combine(new double[] {1}, List.of(sample));
        lastOrder = thisOrder;
        if (warm < order) warm++;
        next = i + 1;
        if (next == schedule.steps()) releaseState();
        return out;
    }

    @Override public void reset() {
        releaseState();
        warm = 0;
        lastOrder = 0;
        next = 0;
    }

    private void releaseState() {
        for (T t : history) algebra.release(t);
        history.clear();
        if (lastSample != null) algebra.release(lastSample);
        lastSample = null;
    }

    /** UniP from σᵢ to σᵢ₊₁ starting at x, with history m₀ = last, m₁, … (newest first). */
    private T predict(int i, T x, int p) {
        double sT = schedule.sigma(i + 1), s0 = schedule.sigma(i);
        T m0 = history.getLast();
        if (sT == 0) return algebra.combine(new double[] {1}, List.of(m0));        // h = ∞: x_t = x̂₀ exactly
        double h = lambda(sT) - lambda(s0), aT = 1 - sT;
        double[] r = new double[p - 1];
        for (int k = 1; k < p; k++) r[k - 1] = (lambda(schedule.sigma(i - k)) - lambda(s0)) / h;
        Coefficients c = coefficients(h, r, p);
        double[] rho;
        if (p == 1) rho = new double[0];
        else if (p == 2) rho = new double[] {0.5};
        else rho = solve(c.rMatrix(p - 1), Arrays.copyOf(c.b, p - 1));
        return combine(sT / s0, x, aT, c, r, rho, 0, null);
    }

    /** UniC at step i: refines the sample reached by the previous predictor with x̂₀ evaluated there. */
    private T correct(int i, T x0) {
        double sT = schedule.sigma(i), s0 = schedule.sigma(i - 1);
        int p = lastOrder;
        double h = lambda(sT) - lambda(s0), aT = 1 - sT;
        double[] r = new double[p - 1];
        for (int k = 1; k < p; k++) r[k - 1] = (lambda(schedule.sigma(i - 1 - k)) - lambda(s0)) / h;
        Coefficients c = coefficients(h, r, p);
        double[] rho = p == 1 ? new double[] {0.5} : solve(c.rMatrix(p), c.b);
        return combine(sT / s0, lastSample, aT, c, r, Arrays.copyOf(rho, p - 1), rho[p - 1], x0);
    }

    /**
     * ratio·x − α_t·φ₁·m₀ − α_t·B·(Σₖ ρₖ·(mₖ − m₀)/rₖ + ρ_last·(x0t − m₀)) as one linear combination
     * (x0t null: no last term).
     */
    private T combine(double ratio, T x, double aT, Coefficients c, double[] r, double[] rho, double rhoLast, T x0t) {
        List<T> terms = new ArrayList<>();
        List<Double> coef = new ArrayList<>();
        terms.add(x);
        coef.add(ratio);
        double onM0 = -aT * c.phi1;
        int n = history.size();
        T m0 = history.get(n - 1);
        for (int k = 0; k < rho.length; k++) {
            double w = aT * c.bh * rho[k] / r[k];
            onM0 += w;
            terms.add(history.get(n - 2 - k));
            coef.add(-w);
        }
        if (x0t != null) {
            onM0 += aT * c.bh * rhoLast;
            terms.add(x0t);
            coef.add(-aT * c.bh * rhoLast);
        }
        terms.add(m0);
        coef.add(onM0);
        double[] cs = new double[coef.size()];
        for (int k = 0; k < cs.length; k++) cs[k] = coef.get(k);
        return algebra.combine(cs, terms);
    }

    /** φ₁, B(h), the powers of r (with a final 1) and b, for order p. */
    private record Coefficients(double phi1, double bh, double[] rks, double[] b) {
        /** The leading n×n block of R, R[j][k] = rks[k]^j. */
        double[][] rMatrix(int n) {
            double[][] m = new double[n][n];
            for (int j = 0; j < n; j++)
                for (int k = 0; k < n; k++) m[j][k] = Math.pow(rks[k], j);
            return m;
        }
    }

    private Coefficients coefficients(double h, double[] r, int p) {
        double hh = -h;
        double phi1 = Math.expm1(hh);
        double bh = variant == Variant.BH2 ? Math.expm1(hh) : hh;
        double[] rks = Arrays.copyOf(r, p);
        rks[p - 1] = 1;
        double[] b = new double[p];
        double phiK = phi1 / hh - 1, factorial = 1;
        for (int j = 1; j <= p; j++) {
            b[j - 1] = phiK * factorial / bh;
            factorial *= j + 1;
            phiK = phiK / hh - 1 / factorial;
        }
        return new Coefficients(phi1, bh, rks, b);
    }

    /** λ(σ) = ln(1 − σ) − ln σ for 0 < σ < 1. */
    private static double lambda(double sigma) {
        if (!(sigma > 0 && sigma < 1))
            throw new IllegalStateException("UniPC needs 0 < σ < 1 before the last step, got σ = " + sigma
                    + "; schedules that start at σ = 1 must be nudged below it (FlowShiftSchedule does)");
        return Math.log1p(-sigma) - Math.log(sigma);
    }

    /** Solves a small dense system by Gaussian elimination with partial pivoting. */
    static double[] solve(double[][] a, double[] b) {
        int n = b.length;
        double[][] m = new double[n][];
        for (int j = 0; j < n; j++) m[j] = Arrays.copyOf(a[j], n);
        double[] y = b.clone();
        for (int col = 0; col < n; col++) {
            int piv = col;
            for (int row = col + 1; row < n; row++) if (Math.abs(m[row][col]) > Math.abs(m[piv][col])) piv = row;
            if (m[piv][col] == 0) throw new IllegalStateException("UniPC: singular order conditions (repeated σ in the schedule?)");
            double[] tr = m[col]; m[col] = m[piv]; m[piv] = tr;
            double ty = y[col]; y[col] = y[piv]; y[piv] = ty;
            for (int row = col + 1; row < n; row++) {
                double f = m[row][col] / m[col][col];
                for (int k = col; k < n; k++) m[row][k] -= f * m[col][k];
                y[row] -= f * y[col];
            }
        }
        double[] x = new double[n];
        for (int row = n - 1; row >= 0; row--) {
            double s = y[row];
            for (int k = row + 1; k < n; k++) s -= m[row][k] * x[k];
            x[row] = s / m[row][row];
        }
        return x;
    }

    static void requireOrder(int i, int expected, int steps) {
        if (i < 0 || i >= steps)
            throw new IllegalArgumentException("step index " + i + " is outside the schedule's " + steps + " steps");
        if (i != expected)
            throw new IllegalStateException("samplers step in order: expected step " + expected + ", got " + i
                    + (i == 0 ? " (call reset() to start a new run)" : ""));
    }
}
