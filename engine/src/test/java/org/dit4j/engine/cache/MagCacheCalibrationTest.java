package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The calibration recorder against a transcription of MagCache4Wan2.1's magcache_calibration (and MagCache4FLUX's,
 * its one-branch form), then used as the γ table of a MagCache run.
 */
class MagCacheCalibrationTest {

    /** Python round(x, 5): the exact binary value rounded to 5 decimals, ties to even. */
    static double pyRound5(double x) { return new BigDecimal(x).setScale(5, RoundingMode.HALF_EVEN).doubleValue(); }

    /**
     * MagCache4Wan2.1 magcache_calibration: for every call (cnt counts cond, uncond interleaved; with one branch every
     * call), residual_x = x − ori_x; if cnt ≥ branches: norm_ratio = mean over tokens of
     * ‖residual_x‖/‖residual_cache[cnt % 2]‖, appended rounded; residual_cache[cnt % 2] = residual_x.
     * The published table is then [1.0]·branches + norm_ratio.
     */
    static double[] refCalibration(float[][][] residuals, int hidden, int branches) {
        int steps = residuals[0].length;
        List<Double> normRatio = new ArrayList<>();
        float[][] residualCache = new float[2][];
        for (int cnt = 0; cnt < steps * branches; cnt++) {
            float[] residualX = residuals[cnt % branches][cnt / branches];
            if (cnt >= branches) {
                float[] prev = residualCache[cnt % branches];
                int tokens = residualX.length / hidden;
                double sum = 0;
                for (int t = 0; t < tokens; t++) {
                    double a = 0, b = 0;
                    for (int h = 0; h < hidden; h++) {
                        a += (double) residualX[t * hidden + h] * residualX[t * hidden + h];
                        b += (double) prev[t * hidden + h] * prev[t * hidden + h];
                    }
                    sum += Math.sqrt(a) / Math.sqrt(b);
                }
                normRatio.add(pyRound5(sum / tokens));
            }
            residualCache[cnt % branches] = residualX;
        }
        double[] table = new double[steps * branches];
        for (int b = 0; b < branches; b++) table[b] = 1.0;
        for (int j = 0; j < normRatio.size(); j++) table[branches + j] = normRatio.get(j);
        return table;
    }

    static float[][][] residuals(long seed, int steps, int tokens, int hidden, double decay) {
        Random rnd = new Random(seed);
        float[][][] r = new float[2][steps][tokens * hidden];
        for (int b = 0; b < 2; b++) {
            double[] cur = new double[tokens * hidden];
            for (int j = 0; j < cur.length; j++) cur[j] = rnd.nextGaussian();
            for (int i = 0; i < steps; i++) {
                double s = decay * (0.97 + 0.06 * rnd.nextDouble());
                for (int j = 0; j < cur.length; j++) {
                    cur[j] = cur[j] * s + 0.05 * rnd.nextGaussian();
                    r[b][i][j] = (float) cur[j];
                }
            }
        }
        return r;
    }

    static MagCacheCalibration record(float[][][] res, int hidden, int branches, String id) {
        int steps = res[0].length;
        MagCacheCalibration cal = new MagCacheCalibration(id, steps, branches);
        for (int i = 1; i < steps; i++)
            for (int b = 0; b < branches; b++)
                cal.record(i, Branch.values()[b], MagCacheCalibration.StepNorms.ofHost(res[b][i], res[b][i - 1], hidden));
        return cal;
    }

    @Test
    void roundsLikePython() {
        // expected values printed by Python 3's round(x, 5)
        double[][] cases = {{0.015625, 0.01562}, {1.015625, 1.01562}, {0.123455, 0.12345}, {1.234565, 1.23456},
                {0.999995, 0.99999}, {1.000005, 1.00001}, {0.9876549999, 0.98765}, {0.30000000000000004, 0.3},
                {2.5e-06, 0.0}, {7.5e-06, 1e-05}};
        for (double[] c : cases) assertEquals(c[1], MagCacheCalibration.round5(c[0]), 0.0, "round(" + c[0] + ", 5)");
        assertTrue(Double.isNaN(MagCacheCalibration.round5(Double.NaN)));
    }

    @Test
    void tableMatchesTheScriptsCalibrationForCfgAndSingleBranch() {
        int hidden = 16, tokens = 24;
        float[][][] res = residuals(4, 20, tokens, hidden, 1.01);
        MagCacheCalibration cfg = record(res, hidden, 2, "test-cfg");
        assertTrue(cfg.complete());
        assertArrayEquals(refCalibration(res, hidden, 2), cfg.table().interleaved(), 0.0);
        MagCacheCalibration one = record(res, hidden, 1, "test-one");
        assertArrayEquals(refCalibration(res, hidden, 1), one.table().interleaved(), 0.0);
        assertEquals(20, cfg.table().steps());
        assertEquals(2, cfg.table().branches());
        assertEquals(1.0, cfg.table().gamma(Branch.UNCOND, 0));
        // informational statistics: unbiased std of the per-token ratios, mean cosine distance (one rounding unit)
        double[] std = cfg.ratioStd(Branch.UNCOND), cos = cfg.cosineDistance(Branch.COND);
        for (int i = 1; i < 20; i++) {
            double[] ratios = new double[tokens];
            double mean = 0, cd = 0;
            for (int t = 0; t < tokens; t++) {
                double a = 0, b = 0, ab = 0, c = 0, d = 0, cdd = 0;
                for (int h = 0; h < hidden; h++) {
                    double x = res[1][i][t * hidden + h], y = res[1][i - 1][t * hidden + h];
                    a += x * x;
                    b += y * y;
                    double u = res[0][i][t * hidden + h], v = res[0][i - 1][t * hidden + h];
                    c += u * u;
                    d += v * v;
                    cdd += u * v;
                }
                ratios[t] = Math.sqrt(a) / Math.sqrt(b);
                mean += ratios[t] / tokens;
                cd += (1 - cdd / (Math.sqrt(c) * Math.sqrt(d))) / tokens;
            }
            double var = 0;
            for (double r : ratios) var += (r - mean) * (r - mean) / (tokens - 1);
            assertEquals(Math.sqrt(var), std[i - 1], 1.01e-5, "std at step " + i);
            assertEquals(cd, cos[i - 1], 1.01e-5, "cos distance at step " + i);
        }
    }

    @Test
    void shardedSumsRecordTheSameTable() {
        int hidden = 8, tokens = 30;
        float[][][] res = residuals(5, 12, tokens, hidden, 0.98);
        MagCacheCalibration whole = record(res, hidden, 2, "w");
        MagCacheCalibration sharded = new MagCacheCalibration("s", 12, 2);
        int[] cuts = {0, 7, 19, 30};     // uneven token shards of 3 ranks
        for (int i = 1; i < 12; i++)
            for (Branch b : Branch.values()) {
                MagCacheCalibration.StepNorms sum = null;
                for (int r = 0; r < 3; r++) {
                    float[] c = java.util.Arrays.copyOfRange(res[b.index()][i], cuts[r] * hidden, cuts[r + 1] * hidden);
                    float[] p = java.util.Arrays.copyOfRange(res[b.index()][i - 1], cuts[r] * hidden, cuts[r + 1] * hidden);
                    MagCacheCalibration.StepNorms part = MagCacheCalibration.StepNorms.ofHost(c, p, hidden);
                    sum = sum == null ? part : sum.plus(part);
                }
                assertEquals(tokens, sum.tokens());
                sharded.record(i, b, sum);
            }
        // per-token ratios summed in another grouping: equal after rounding to 5 decimals unless a value sits on a
        // rounding edge, which these sequences do not
        assertArrayEquals(whole.table().interleaved(), sharded.table().interleaved(), 0.0);
    }

    @Test
    void jsonRoundTripAndUseAsMagCacheTable(@TempDir Path dir) throws Exception {
        int hidden = 8;
        float[][][] res = residuals(6, 30, 10, hidden, 0.995);
        MagCacheCalibration cal = record(res, hidden, 2, "wan-custom-30");
        Path file = dir.resolve("gammas.json");
        cal.writeJson(file);
        String json = Files.readString(file);
        assertTrue(json.contains("\"norm_std\"") && json.contains("\"cos_dis\""), json);
        MagCache.Table back = MagCache.Table.fromJson(json);
        assertArrayEquals(cal.table().interleaved(), back.interleaved(), 0.0);
        assertEquals("wan-custom-30", back.id());
        assertEquals(2, back.branches());
        assertEquals(30, back.steps());
        // the published tables survive the same round trip
        for (MagCache.Table t : List.of(MagCache.FLUX_DEV_28, MagCache.WAN21_T2V_14B_50))
            assertArrayEquals(t.interleaved(), MagCache.Table.fromJson(t.toJson()).interleaved(), 0.0);

        // decisions with the calibrated table equal the Wan script run with it, at its own and other step counts
        for (int n : new int[] {30, 20, 45}) {
            MagCache mc = new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withTable(back).withThreshold(0.05));
            MagCacheTest.Ref[] ref = MagCacheTest.refMagCache4Wan(back.interleaved(), n, 0.05, 4, 0.2);
            Decision[][] got = MagCacheTest.runCfg(mc, "c", n);
            for (Branch b : Branch.values()) MagCacheTest.assertSame(ref[b.index()], got[b.index()], "n=" + n + " " + b);
        }
    }

    @Test
    void errorsSayWhatIsMissing() {
        MagCacheCalibration cal = new MagCacheCalibration("x", 5, 2);
        IllegalArgumentException step0 = assertThrows(IllegalArgumentException.class,
                () -> cal.record(0, Branch.COND, new MagCacheCalibration.StepNorms(1, 1, 0, 1)));
        assertTrue(step0.getMessage().contains("no previous residual"), step0.getMessage());
        cal.record(1, Branch.COND, new MagCacheCalibration.StepNorms(1, 1, 0, 1));
        IllegalStateException twice = assertThrows(IllegalStateException.class,
                () -> cal.record(1, Branch.COND, new MagCacheCalibration.StepNorms(1, 1, 0, 1)));
        assertTrue(twice.getMessage().contains("already recorded"), twice.getMessage());
        assertFalse(cal.complete());
        IllegalStateException incomplete = assertThrows(IllegalStateException.class, cal::table);
        assertTrue(incomplete.getMessage().contains("step 1 uncond was not recorded"), incomplete.getMessage());
        MagCacheCalibration single = new MagCacheCalibration("y", 5, 1);
        IllegalArgumentException branch = assertThrows(IllegalArgumentException.class,
                () -> single.record(1, Branch.UNCOND, new MagCacheCalibration.StepNorms(1, 1, 0, 1)));
        assertTrue(branch.getMessage().contains("branches = 2"), branch.getMessage());
        IllegalArgumentException json = assertThrows(IllegalArgumentException.class,
                () -> MagCache.Table.fromJson("{\"mag_ratios\": [1.0, \"x\"]}"));
        assertTrue(json.getMessage().contains("mag_ratios[1]"), json.getMessage());
        IllegalArgumentException steps = assertThrows(IllegalArgumentException.class,
                () -> MagCache.Table.fromJson("{\"branches\": 2, \"steps\": 3, \"mag_ratios\": [1.0, 1.0, 1.1, 1.1]}"));
        assertTrue(steps.getMessage().contains("\"steps\" says 3"), steps.getMessage());
        assertThrows(IllegalArgumentException.class, () -> MagCacheCalibration.StepNorms.ofHost(new float[6], new float[6], 4));
    }
}
