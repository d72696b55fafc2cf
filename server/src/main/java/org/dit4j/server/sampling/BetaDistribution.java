package org.dit4j.server.sampling;

/**
 * The regularized incomplete beta function I_x(a, b) and its inverse (SciPy's {@code beta.cdf} / {@code beta.ppf}),
 * in double precision: I_x by the continued fraction of Numerical Recipes §6.4 (modified Lentz), the inverse by
 * safeguarded Newton steps inside a shrinking bracket. Accurate to ~1e-14 absolute, enough for ComfyUI's beta
 * scheduler, which rounds ppf·(table length − 1) to an integer index.
 */
public final class BetaDistribution {

    private BetaDistribution() {}

    /** I_x(a, b) for a, b > 0 and x in [0, 1]. */
    public static double cdf(double x, double a, double b) {
        if (!(a > 0 && b > 0)) throw new IllegalArgumentException("beta parameters must be > 0, got a=" + a + " b=" + b);
        if (x <= 0) return 0;
        if (x >= 1) return 1;
        double lnFront = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
        double front = Math.exp(lnFront);
        if (x < (a + 1) / (a + b + 2)) return front * continuedFraction(x, a, b) / a;
        return 1 - front * continuedFraction(1 - x, b, a) / b;
    }

    /** x with I_x(a, b) = p (the quantile function), p in [0, 1]. */
    public static double ppf(double p, double a, double b) {
        if (!(p >= 0 && p <= 1)) throw new IllegalArgumentException("probability must lie in [0, 1], got " + p);
        if (p == 0) return 0;
        if (p == 1) return 1;
        double lo = 0, hi = 1, x = 0.5;
        double lnBeta = lnGamma(a) + lnGamma(b) - lnGamma(a + b);
        for (int i = 0; i < 200; i++) {
            double f = cdf(x, a, b) - p;
            if (f == 0) return x;
            if (f < 0) lo = x; else hi = x;
            double pdf = Math.exp((a - 1) * Math.log(x) + (b - 1) * Math.log1p(-x) - lnBeta);
            double next = x - f / pdf;
            if (!(next > lo && next < hi) || !Double.isFinite(next)) next = 0.5 * (lo + hi);
            if (Math.abs(next - x) <= 1e-16 * Math.max(1, Math.abs(x)) || hi - lo <= 1e-17) return next;
            x = next;
        }
        return x;
    }

    private static double continuedFraction(double x, double a, double b) {
        final double tiny = 1e-300;
        double qab = a + b, qap = a + 1, qam = a - 1;
        double c = 1, d = 1 - qab * x / qap;
        if (Math.abs(d) < tiny) d = tiny;
        d = 1 / d;
        double h = d;
        for (int m = 1; m <= 10000; m++) {
            int m2 = 2 * m;
            double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
            d = 1 + aa * d;
            if (Math.abs(d) < tiny) d = tiny;
            c = 1 + aa / c;
            if (Math.abs(c) < tiny) c = tiny;
            d = 1 / d;
            h *= d * c;
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
            d = 1 + aa * d;
            if (Math.abs(d) < tiny) d = tiny;
            c = 1 + aa / c;
            if (Math.abs(c) < tiny) c = tiny;
            d = 1 / d;
            double del = d * c;
            h *= del;
            if (Math.abs(del - 1) < 1e-16) return h;
        }
        return h;
    }

    /** ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; relative error below 1e-15). */
    static double lnGamma(double x) {
        if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
        double[] g = {0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
                -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};
        x -= 1;
        double a = g[0];
        double t = x + 7.5;
        for (int i = 1; i < 9; i++) a += g[i] / (x + i);
        return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
    }
}
