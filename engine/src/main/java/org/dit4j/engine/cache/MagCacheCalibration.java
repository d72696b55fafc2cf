package org.dit4j.engine.cache;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * Records a MagCache γ table for a model and step count, as the MagCache scripts' {@code magcache_calibration}
 * forwards do: run without caching and, for every step i ≥ 1 of each branch, take the residual
 * {@code r_i = transformer output − transformer input} (hidden states after the last block minus before the first,
 * image/video tokens only) and the same branch's {@code r_{i−1}}:
 * <pre>
 * γ_i     = mean over tokens t of ‖r_i[t]‖ / ‖r_{i−1}[t]‖          (norms over the hidden dimension)
 * std_i   = unbiased standard deviation of the same per-token ratios
 * cos_i   = mean over tokens of 1 − cos(r_i[t], r_{i−1}[t])
 * </pre>
 * each rounded to 5 decimals (Python's {@code round(x, 5)}). The table is {@code [1.0]·branches} for step 0 followed
 * by the per-step values, cond/uncond interleaved when there are two branches — the layout of the published tables.
 * <p>
 * The pipeline passes {@link StepNorms}: sums over its tokens plus the token count, so that sequence-parallel ranks
 * add their partial sums before recording.
 */
public final class MagCacheCalibration {

    /**
     * Per-token sums of one step of one branch.
     *
     * @param ratioSum       Σ_t ‖r_i[t]‖ / ‖r_{i−1}[t]‖
     * @param ratioSquareSum Σ_t (‖r_i[t]‖ / ‖r_{i−1}[t]‖)²
     * @param cosDistanceSum Σ_t (1 − cos(r_i[t], r_{i−1}[t]))
     * @param tokens         number of tokens summed
     */
    public record StepNorms(double ratioSum, double ratioSquareSum, double cosDistanceSum, long tokens) {
        public StepNorms {
            if (tokens <= 0) throw new IllegalArgumentException("calibration norms need a positive token count, got " + tokens);
        }

        /** The sums of two disjoint token shards. */
        public StepNorms plus(StepNorms o) {
            return new StepNorms(ratioSum + o.ratioSum, ratioSquareSum + o.ratioSquareSum,
                    cosDistanceSum + o.cosDistanceSum, tokens + o.tokens);
        }

        /**
         * The sums for host residuals laid out {@code [tokens, hidden]} (row-major, any leading batch dims folded
         * into tokens). Cosine as {@code torch.nn.functional.cosine_similarity(eps=1e-8)}.
         */
        public static StepNorms ofHost(float[] current, float[] previous, int hidden) {
            if (current.length != previous.length)
                throw new IllegalArgumentException("current and previous residuals must have the same length, got "
                        + current.length + " and " + previous.length);
            if (hidden <= 0 || current.length % hidden != 0)
                throw new IllegalArgumentException("residual length " + current.length + " is not a whole number of tokens of hidden size " + hidden);
            long tokens = current.length / hidden;
            double sum = 0, sq = 0, cos = 0;
            for (int t = 0; t < tokens; t++) {
                double cc = 0, pp = 0, cp = 0;
                for (int h = 0, o = t * hidden; h < hidden; h++, o++) {
                    double c = current[o], p = previous[o];
                    cc += c * c;
                    pp += p * p;
                    cp += c * p;
                }
                double nc = Math.sqrt(cc), np = Math.sqrt(pp);
                double ratio = nc / np;
                sum += ratio;
                sq += ratio * ratio;
                cos += 1 - cp / Math.max(nc * np, 1e-8);
            }
            return new StepNorms(sum, sq, cos, tokens);
        }
    }

    private final String id;
    private final int totalSteps;
    private final int branches;
    private final StepNorms[][] recorded;   // [branch][step], step 0 unused

    /**
     * @param id         name of the table to produce (e.g. "wan2.1-t2v-1.3b-30")
     * @param totalSteps the run's step count (the table's length per branch)
     * @param branches   1 (no CFG) or 2 (cond and uncond)
     */
    public MagCacheCalibration(String id, int totalSteps, int branches) {
        this.id = Objects.requireNonNull(id, "id");
        if (totalSteps < 2) throw new IllegalArgumentException("calibration needs at least 2 steps, got " + totalSteps);
        if (branches != 1 && branches != 2) throw new IllegalArgumentException("branches must be 1 or 2, got " + branches);
        this.totalSteps = totalSteps;
        this.branches = branches;
        this.recorded = new StepNorms[branches][totalSteps];
    }

    /** The name of the table this calibration produces. */
    public String id() { return id; }

    /** The step count of the run being recorded (the table's length per branch). */
    public int totalSteps() { return totalSteps; }

    /** 1 (no CFG) or 2 (cond and uncond). */
    public int branches() { return branches; }

    /** Records step {@code step ≥ 1} of a branch (its residual against the same branch's previous step). */
    public synchronized void record(int step, Branch branch, StepNorms norms) {
        Objects.requireNonNull(norms, "norms");
        if (step < 1 || step >= totalSteps)
            throw new IllegalArgumentException("calibration " + id + ": step must be in [1, " + totalSteps
                    + ") (step 0 has no previous residual), got " + step);
        if (branch.index() >= branches)
            throw new IllegalArgumentException("calibration " + id + " was created for 1 branch; got " + branch
                    + " (create it with branches = 2 for CFG runs)");
        if (recorded[branch.index()][step] != null)
            throw new IllegalStateException("calibration " + id + ": step " + step + " " + branch.label() + " was already recorded");
        recorded[branch.index()][step] = norms;
    }

    /** Whether every step ≥ 1 of every branch has been recorded. */
    public synchronized boolean complete() {
        for (StepNorms[] row : recorded)
            for (int i = 1; i < totalSteps; i++) if (row[i] == null) return false;
        return true;
    }

    /** γ of a branch for steps 1 … N−1 (rounded to 5 decimals). */
    public double[] ratios(Branch branch) { return column(branch, 0); }

    /** Unbiased std of the per-token ratios for steps 1 … N−1 (rounded; informational). */
    public double[] ratioStd(Branch branch) { return column(branch, 1); }

    /** Mean cosine distance for steps 1 … N−1 (rounded; informational). */
    public double[] cosineDistance(Branch branch) { return column(branch, 2); }

    private synchronized double[] column(Branch branch, int what) {
        requireComplete();
        if (branch.index() >= branches) throw new IllegalArgumentException("calibration " + id + " has 1 branch; no " + branch);
        double[] out = new double[totalSteps - 1];
        for (int i = 1; i < totalSteps; i++) {
            StepNorms s = recorded[branch.index()][i];
            double n = s.tokens;
            double v = switch (what) {
                case 0 -> s.ratioSum / n;
                case 1 -> n > 1 ? Math.sqrt(Math.max(0, (s.ratioSquareSum - s.ratioSum * s.ratioSum / n) / (n - 1))) : Double.NaN;
                default -> s.cosDistanceSum / n;
            };
            out[i - 1] = round5(v);
        }
        return out;
    }

    /** The γ table: {@code [1.0]·branches} then the rounded ratios, interleaved per step. */
    public MagCache.Table table() {
        double[] v = new double[totalSteps * branches];
        double[][] rows = new double[branches][];
        for (Branch b : Branch.values()) if (b.index() < branches) rows[b.index()] = ratios(b);
        for (int b = 0; b < branches; b++) v[b] = 1.0;
        for (int i = 1; i < totalSteps; i++)
            for (int b = 0; b < branches; b++) v[i * branches + b] = rows[b][i - 1];
        return new MagCache.Table(id, branches, v, "dit4j MagCacheCalibration (" + totalSteps + " steps)");
    }

    /**
     * The table as JSON ({@link MagCache.Table#fromJson} reads it back), with the informational {@code norm_std}
     * and {@code cos_dis} lists for steps ≥ 1, interleaved like the table but without the step-0 padding.
     */
    public String toJson() {
        Map<String, double[]> extra = new LinkedHashMap<>();
        extra.put("norm_std", interleave(1));
        extra.put("cos_dis", interleave(2));
        return MagCache.toJson(table(), extra);
    }

    /** Writes {@link #toJson} to a file (UTF-8). */
    public void writeJson(Path file) {
        try {
            Files.writeString(file, toJson(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the MagCache calibration " + id + " to " + file + ": " + e.getMessage(), e);
        }
    }

    private double[] interleave(int what) {
        double[] out = new double[(totalSteps - 1) * branches];
        for (Branch b : Branch.values()) {
            if (b.index() >= branches) continue;
            double[] col = column(b, what);
            for (int i = 0; i < col.length; i++) out[i * branches + b.index()] = col[i];
        }
        return out;
    }

    private void requireComplete() {
        for (int i = 1; i < totalSteps; i++)
            for (int b = 0; b < branches; b++)
                if (recorded[b][i] == null)
                    throw new IllegalStateException("calibration " + id + " is incomplete: step " + i + " "
                            + Branch.values()[b].label() + " was not recorded (record every step ≥ 1 of every branch)");
    }

    /** Python's {@code round(x, 5)}: the exact binary value rounded half-even to 5 decimals. NaN and ±∞ pass through. */
    static double round5(double x) {
        if (!Double.isFinite(x)) return x;
        return new BigDecimal(x).setScale(5, RoundingMode.HALF_EVEN).doubleValue();
    }
}
