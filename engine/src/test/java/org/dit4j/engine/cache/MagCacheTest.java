package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MagCache against literal Java transcriptions of MagCache4FLUX, MagCache4Wan2.1 and the ComfyUI-MagCache node
 * (written here, independently of the main code), and against step patterns produced by running the scripts' loops
 * in Python/numpy with the published tables.
 */
class MagCacheTest {

    // ---------------------------------------------------------------- reference transcriptions

    /** MagCache4FLUX / MagCache4Wan2.1 nearest_interp (np.round is round-half-even: Math.rint). */
    static double[] nearestInterp(double[] srcArray, int targetLength) {
        int srcLength = srcArray.length;
        if (targetLength == 1) return new double[] {srcArray[srcLength - 1]};
        double scale = (double) (srcLength - 1) / (targetLength - 1);
        double[] out = new double[targetLength];
        for (int i = 0; i < targetLength; i++) out[i] = srcArray[(int) Math.rint(i * scale)];
        return out;
    }

    record Ref(boolean[] skip, double[] err) {
        String pattern() {
            StringBuilder sb = new StringBuilder();
            for (boolean s : skip) sb.append(s ? '.' : '#');
            return sb.toString();
        }

        List<Integer> computed() {
            List<Integer> l = new ArrayList<>();
            for (int i = 0; i < skip.length; i++) if (!skip[i]) l.add(i);
            return l;
        }
    }

    /**
     * MagCache4FLUX/magcache_flux.py magcache_forward:
     * <pre>
     * if self.cnt>=int(self.retention_ratio*self.num_steps+0.5):
     *     cur_scale = self.mag_ratios[self.cnt]; ratio *= cur_scale; steps += 1; err += np.abs(1-ratio)
     *     if err&lt;=thresh and steps&lt;=K and np.round(self.cnt*((28-1)/(self.num_steps-1))).astype(int)!=11: skip
     *     else: ratio = 1.0; steps = 0; err = 0
     * </pre>
     */
    static Ref refMagCache4Flux(double[] table, int numSteps, double magcacheThresh, int k, double retentionRatio) {
        double[] magRatios = table.length != numSteps ? nearestInterp(table, numSteps) : table;
        double accumulatedRatio = 1, accumulatedErr = 0;
        int accumulatedSteps = 0;
        boolean[] skip = new boolean[numSteps];
        double[] errs = new double[numSteps];
        Arrays.fill(errs, Double.NaN);
        for (int cnt = 0; cnt < numSteps; cnt++) {
            boolean skipForward = false;
            if (cnt >= (int) (retentionRatio * numSteps + 0.5)) {
                double curScale = magRatios[cnt];
                accumulatedRatio = accumulatedRatio * curScale;
                accumulatedSteps += 1;
                accumulatedErr += Math.abs(1 - accumulatedRatio);
                errs[cnt] = accumulatedErr;
                if (accumulatedErr <= magcacheThresh && accumulatedSteps <= k
                        && (int) Math.rint(cnt * ((28 - 1) / (double) (numSteps - 1))) != 11) {
                    skipForward = true;
                } else {
                    accumulatedRatio = 1.0;
                    accumulatedSteps = 0;
                    accumulatedErr = 0;
                }
            }
            skip[cnt] = skipForward;
        }
        return new Ref(skip, errs);
    }

    /**
     * MagCache4Wan2.1/magcache_generate.py magcache_forward; cnt counts cond, uncond calls; num_steps = sample_steps*2;
     * the interleaved table is split with [0::2] / [1::2], interpolated and re-interleaved when its length ≠ 2N.
     */
    static Ref[] refMagCache4Wan(double[] table, int sampleSteps, double magcacheThresh, int k, double retentionRatio) {
        double[] magRatios = table;
        if (magRatios.length != sampleSteps * 2) {
            double[] con = new double[table.length / 2], ucon = new double[table.length / 2];
            for (int j = 0; j < con.length; j++) {
                con[j] = table[2 * j];
                ucon[j] = table[2 * j + 1];
            }
            double[] c = nearestInterp(con, sampleSteps), u = nearestInterp(ucon, sampleSteps);
            magRatios = new double[2 * sampleSteps];
            for (int j = 0; j < sampleSteps; j++) {
                magRatios[2 * j] = c[j];
                magRatios[2 * j + 1] = u[j];
            }
        }
        int numSteps = sampleSteps * 2;
        double[] accumulatedRatio = {1.0, 1.0}, accumulatedErr = {0.0, 0.0};
        int[] accumulatedSteps = {0, 0};
        boolean[][] skip = new boolean[2][sampleSteps];
        double[][] errs = new double[2][sampleSteps];
        for (double[] e : errs) Arrays.fill(e, Double.NaN);
        for (int cnt = 0; cnt < numSteps; cnt++) {
            boolean skipForward = false;
            if (cnt >= (int) (numSteps * retentionRatio)) {
                double curMagRatio = magRatios[cnt];
                accumulatedRatio[cnt % 2] = accumulatedRatio[cnt % 2] * curMagRatio;
                accumulatedSteps[cnt % 2] += 1;
                double curSkipErr = Math.abs(1 - accumulatedRatio[cnt % 2]);
                accumulatedErr[cnt % 2] += curSkipErr;
                errs[cnt % 2][cnt / 2] = accumulatedErr[cnt % 2];
                if (accumulatedErr[cnt % 2] < magcacheThresh && accumulatedSteps[cnt % 2] <= k) {
                    skipForward = true;
                } else {
                    accumulatedErr[cnt % 2] = 0;
                    accumulatedSteps[cnt % 2] = 0;
                    accumulatedRatio[cnt % 2] = 1.0;
                }
            }
            skip[cnt % 2][cnt / 2] = skipForward;
        }
        return new Ref[] {new Ref(skip[0], errs[0]), new Ref(skip[1], errs[1])};
    }

    /** ComfyUI-MagCache unet_wrapper_function: current_step for the forward. */
    static int comfyCurrentStep(int currentStepIndex, int totalInferSteps, int calibrationLen) {
        return totalInferSteps == calibrationLen ? currentStepIndex
                : (int) (currentStepIndex * ((calibrationLen - 1) / (double) (totalInferSteps - 1)));
    }

    /** ComfyUI-MagCache wrapper: enable_magcache. */
    static boolean comfyEnable(int currentStepIndex, int totalInferSteps, double retentionRatio, int startStep, int endStep) {
        if (endStep < 0) endStep = totalInferSteps + endStep;
        return currentStepIndex >= (int) (totalInferSteps * retentionRatio) && startStep <= currentStepIndex && currentStepIndex <= endStep;
    }

    /**
     * ComfyUI-MagCache magcache_flux_forward (mag_ratios as a float32 tensor, so the accumulators are float32 tensors):
     * <pre>
     * if enable_magcache and cur_step not in [11]:
     *     ratio = ratio*mag_ratios[cur_step]; steps += 1; err += np.abs(1-ratio)
     *     if err&lt;magcache_thresh and steps&lt;=magcache_K: skip else: err = 0; steps = 0; ratio = 1.0
     * </pre>
     */
    static Ref refComfyFlux(double[] table, int steps, double thresh, double retention, int k, int startStep, int endStep) {
        boolean[] skip = new boolean[steps];
        double[] errs = new double[steps];
        Arrays.fill(errs, Double.NaN);
        if (thresh == 0) return new Ref(skip, errs);           // apply_magcache: if magcache_thresh == 0: return (model,)
        float[] magRatios = new float[table.length];           // torch.from_numpy(mag_ratios).float()
        for (int j = 0; j < table.length; j++) magRatios[j] = (float) table[j];
        float accumulatedErr = 0, accumulatedRatio = 1;
        int accumulatedSteps = 0;
        for (int i = 0; i < steps; i++) {
            if (i == 0) { accumulatedErr = 0; accumulatedRatio = 1; accumulatedSteps = 0; }   // delattr at step 0
            boolean enable = comfyEnable(i, steps, retention, startStep, endStep);
            int curStep = comfyCurrentStep(i, steps, table.length);
            boolean skipForward = false;
            if (enable && curStep != 11) {
                float curMagRatio = magRatios[curStep];
                accumulatedRatio = accumulatedRatio * curMagRatio;
                accumulatedSteps += 1;
                float curSkipErr = Math.abs(1 - accumulatedRatio);
                accumulatedErr += curSkipErr;
                errs[i] = accumulatedErr;
                if (accumulatedErr < (float) thresh && accumulatedSteps <= k) {
                    skipForward = true;
                } else {
                    accumulatedErr = 0;
                    accumulatedSteps = 0;
                    accumulatedRatio = 1.0f;
                }
            }
            skip[i] = skipForward;
        }
        return new Ref(skip, errs);
    }

    /**
     * ComfyUI-MagCache magcache_wanmodel_forward with cond and uncond batched (cond_or_uncond = [0, 1]):
     * update_cache_state per branch with γ index cur_step*2+i, then skip_forward = OR of the branches' flags.
     * Returns the per-branch flags and, as a third Ref, the batch decision.
     */
    static Ref[] refComfyWan(double[] table, int steps, double thresh, double retention, int k, int startStep, int endStep) {
        boolean[][] flag = new boolean[3][steps];
        double[][] errs = new double[3][steps];
        for (double[] e : errs) Arrays.fill(e, Double.NaN);
        if (thresh == 0) return new Ref[] {new Ref(flag[0], errs[0]), new Ref(flag[1], errs[1]), new Ref(flag[2], errs[2])};
        float[] magRatios = new float[table.length];
        for (int j = 0; j < table.length; j++) magRatios[j] = (float) table[j];
        boolean[] stSkip = new boolean[2];
        float[] stRatio = new float[2], stErr = new float[2];
        int[] stSteps = new int[2];
        for (int i = 0; i < steps; i++) {
            if (i == 0) {                                       // delattr(diffusion_model, 'magcache_state')
                stSkip = new boolean[2];
                stRatio = new float[] {1, 1};
                stErr = new float[2];
                stSteps = new int[2];
            }
            boolean enable = comfyEnable(i, steps, retention, startStep, endStep);
            int curStep = comfyCurrentStep(i, steps, table.length / 2);
            for (int kk = 0; kk < 2; kk++) {
                if (enable) {
                    float curScale = magRatios[curStep * 2 + kk];
                    stRatio[kk] = stRatio[kk] * curScale;
                    stSteps[kk] = stSteps[kk] + 1;
                    stErr[kk] += Math.abs(1 - stRatio[kk]);
                    errs[kk][i] = stErr[kk];
                    if (stErr[kk] <= (float) thresh && stSteps[kk] <= k) {
                        stSkip[kk] = true;
                    } else {
                        stSkip[kk] = false;
                        stRatio[kk] = 1.0f;
                        stSteps[kk] = 0;
                        stErr[kk] = 0;
                    }
                }
                flag[kk][i] = enable && stSkip[kk];
            }
            boolean skipForward = false;
            if (enable) for (int kk = 0; kk < 2; kk++) skipForward = skipForward || stSkip[kk];
            flag[2][i] = skipForward;
        }
        return new Ref[] {new Ref(flag[0], errs[0]), new Ref(flag[1], errs[1]), new Ref(flag[2], errs[2])};
    }

    // ---------------------------------------------------------------- helpers

    static Decision[] run(StepCache p, String req, int n, Branch b) {
        Decision[] out = new Decision[n];
        for (int i = 0; i < n; i++) out[i] = p.decide(StepContext.of(req, i, n, b), Signals.NONE);
        return out;
    }

    static Decision[][] runCfg(StepCache p, String req, int n) {
        Decision[][] out = new Decision[2][n];
        for (int i = 0; i < n; i++)
            for (Branch b : Branch.values()) out[b.index()][i] = p.decide(StepContext.of(req, i, n, b), Signals.NONE);
        return out;
    }

    static String pattern(Decision[] d) {
        StringBuilder sb = new StringBuilder();
        for (Decision x : d) sb.append(x.compute() ? '#' : '.');
        return sb.toString();
    }

    static List<Integer> computed(Decision[] d) {
        List<Integer> l = new ArrayList<>();
        for (int i = 0; i < d.length; i++) if (d[i].compute()) l.add(i);
        return l;
    }

    /**
     * Compares a run with a transcription. Where the script would skip before its branch ever computed, Python fails
     * (it adds a residual that is None); the comparison stops there and the policy must have computed instead.
     */
    static void assertSame(Ref ref, Decision[] got, String what) {
        int firstCompute = ref.computed().isEmpty() ? ref.skip().length : ref.computed().get(0);
        if (firstCompute > 0) {
            assertEquals(Decision.Reason.NO_RESIDUAL, got[0].reason(), what + ": the script fails at step 0 (no residual yet)");
            return;
        }
        assertEquals(ref.pattern(), pattern(got), what + ": computed/skipped pattern");
        for (int i = 0; i < got.length; i++)
            if (!Double.isNaN(ref.err()[i]) || !Double.isNaN(got[i].metric()))
                assertEquals(ref.err()[i], got[i].metric(), 0.0, what + ": accumulated error at step " + i);
    }

    // ---------------------------------------------------------------- tests

    @Test
    void publishedDefaultsGiveThePatternsOfThePythonScripts() {
        // Computed steps from the MagCache4FLUX / MagCache4Wan2.1 decision loops run in Python/numpy with the
        // published tables and defaults (FLUX 0.24/K5/r0.1; Wan 1.3B 0.12/K4/r0.2; Wan 14B 0.24/K6/r0.2).
        assertEquals(List.of(0, 1, 2, 5, 9, 11, 17, 23, 26), computed(run(MagCache.of(MagCache.FLUX_DEV), "f", 28, Branch.COND)));
        assertEquals(List.of(0, 1, 4, 8, 14, 19), computed(run(MagCache.of(MagCache.FLUX_DEV), "f", 20, Branch.COND)));
        assertEquals(List.of(0, 1, 2, 3, 4, 6, 9, 13, 17, 20, 26, 32, 38, 44, 47),
                computed(run(MagCache.of(MagCache.FLUX_DEV), "f", 50, Branch.COND)));
        Map<String, List<Integer>> wan = Map.of(
                "1.3b/50", List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14, 19, 24, 29, 34, 38, 41, 44, 46, 48, 49),
                "14b/50", List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 16, 23, 30, 36, 41, 44, 47, 49),
                "1.3b/30", List.of(0, 1, 2, 3, 4, 5, 10, 15, 20, 24, 27, 29),
                "14b/40", List.of(0, 1, 2, 3, 4, 5, 6, 7, 14, 21, 28, 33, 36, 38));
        for (Map.Entry<String, List<Integer>> e : wan.entrySet()) {
            MagCache.Preset p = e.getKey().startsWith("1.3b") ? MagCache.WAN21_T2V_1_3B : MagCache.WAN21_T2V_14B;
            int n = Integer.parseInt(e.getKey().substring(e.getKey().indexOf('/') + 1));
            Decision[][] got = runCfg(MagCache.of(p), "w", n);
            assertEquals(e.getValue(), computed(got[0]), e.getKey() + " cond");
            assertEquals(e.getValue(), computed(got[1]), e.getKey() + " uncond");
        }
    }

    @Test
    void fluxMatchesTranscriptionForManyStepCountsAndSettings() {
        Random rnd = new Random(7);
        double[] table = MagCache.FLUX_DEV_28.interleaved();
        for (int n = 2; n <= 80; n++) {
            for (int trial = 0; trial < 6; trial++) {
                double thresh = trial == 0 ? 0.24 : 0.02 + rnd.nextDouble() * 0.5;
                int k = trial == 0 ? 5 : rnd.nextInt(8);
                double r = trial == 0 ? 0.1 : rnd.nextDouble() * 0.4;
                Ref ref = refMagCache4Flux(table, n, thresh, k, r);
                MagCache mc = new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(thresh).withK(k).withRetentionRatio(r));
                assertSame(ref, run(mc, "f", n, Branch.COND), "n=" + n + " thresh=" + thresh + " K=" + k + " r=" + r);
            }
        }
    }

    @Test
    void wanMatchesTranscriptionForManyStepCountsAndSettings() {
        Random rnd = new Random(9);
        for (MagCache.Preset p : List.of(MagCache.WAN21_T2V_1_3B, MagCache.WAN21_T2V_14B)) {
            double[] table = p.table().interleaved();
            for (int n = 2; n <= 70; n++) {
                for (int trial = 0; trial < 4; trial++) {
                    double thresh = trial == 0 ? p.threshold() : 0.01 + rnd.nextDouble() * 0.4;
                    int k = trial == 0 ? p.k() : rnd.nextInt(8);
                    double r = trial == 0 ? p.retentionRatio() : rnd.nextDouble() * 0.5;
                    Ref[] ref = refMagCache4Wan(table, n, thresh, k, r);
                    MagCache mc = new MagCache(MagCache.Config.reference(p).withThreshold(thresh).withK(k).withRetentionRatio(r));
                    Decision[][] got = runCfg(mc, "w", n);
                    for (Branch b : Branch.values())
                        assertSame(ref[b.index()], got[b.index()], p.id() + " n=" + n + " " + b + " thresh=" + thresh + " K=" + k + " r=" + r);
                }
            }
        }
    }

    @Test
    void comfyUiNodeMatchesTranscription() {
        Random rnd = new Random(13);
        for (int trial = 0; trial < 400; trial++) {
            boolean flux = trial % 2 == 0;
            MagCache.Table table = flux ? MagCache.FLUX_DEV_28 : (trial % 4 == 1 ? MagCache.WAN21_T2V_1_3B_50 : MagCache.WAN21_T2V_14B_50);
            int n = 10 + rnd.nextInt(50);
            double thresh = trial % 23 == 0 ? 0 : rnd.nextDouble() * 0.3;
            double r = 0.1 + rnd.nextDouble() * 0.2;                 // the node's range [0.1, 0.3]
            int k = rnd.nextInt(7);
            int start = rnd.nextInt(3) == 0 ? rnd.nextInt(10) : 0;
            int end = rnd.nextInt(3) == 0 ? -1 - rnd.nextInt(5) : (rnd.nextBoolean() ? -1 : n - 1 - rnd.nextInt(5));
            MagCache.Config c = MagCache.Config.comfyUi(table, flux, thresh, r, k, start, end);
            String what = "trial " + trial + " " + table.id() + " n=" + n + " thresh=" + thresh + " r=" + r + " K=" + k + " [" + start + "," + end + "]";
            if (flux) {
                Ref ref = refComfyFlux(table.interleaved(), n, thresh, r, k, start, end);
                assertSame(ref, run(new MagCache(c), "c", n, Branch.COND), what);
            } else {
                Ref[] ref = refComfyWan(table.interleaved(), n, thresh, r, k, start, end);
                MagCache own = new MagCache(c);
                MagCache batched = new MagCache(c);
                try (CacheRun<AutoCloseable> run = batched.begin("c", n)) {
                    for (int i = 0; i < n; i++) {
                        Map<Branch, Signals> s = new EnumMap<>(Branch.class);
                        for (Branch b : Branch.values()) {
                            s.put(b, Signals.NONE);
                            Decision d = own.decide(StepContext.of("c", i, n, b), Signals.NONE);
                            assertEquals(ref[b.index()].skip()[i], d.skip(), what + " step " + i + " " + b);
                            double e = ref[b.index()].err()[i];
                            if (!Double.isNaN(e) || !Double.isNaN(d.metric())) assertEquals(e, d.metric(), 0.0, what + " err step " + i);
                        }
                        Map<Branch, Decision> joint = run.decideJointly(i, s, CacheRun.Joint.ANY_SKIP);
                        for (Branch b : Branch.values()) {
                            assertEquals(ref[2].skip()[i], joint.get(b).skip(), what + " batch step " + i);
                            if (joint.get(b).compute()) run.storeResidual(b, CacheRun.Slot.HIDDEN, () -> {});
                        }
                    }
                }
            }
        }
    }

    @Test
    void nearestInterpolationIsTheScriptsRoundHalfEven() {
        for (MagCache.Table t : List.of(MagCache.FLUX_DEV_28, MagCache.WAN21_T2V_1_3B_50, MagCache.WAN21_T2V_14B_50)) {
            MagCache.Config c = MagCache.Config.reference(t == MagCache.FLUX_DEV_28 ? MagCache.FLUX_DEV : MagCache.WAN21_T2V_14B);
            for (Branch b : t.branches() == 1 ? List.of(Branch.COND) : List.of(Branch.values())) {
                double[] row = t.row(b);
                for (int n = 1; n <= 120; n++) {
                    double[] expected = nearestInterp(row, n);
                    for (int i = 0; i < n; i++)
                        assertEquals(expected[i], t.gamma(b, c.calibratedStep(i, n)), 0.0, t.id() + " n=" + n + " i=" + i);
                }
            }
        }
        // a half-way case: L = 28, N = 19 → scale 1.5, i = 1 → 1.5 → 2 (even), i = 3 → 4.5 → 4 (even)
        MagCache.Config flux = MagCache.Config.reference(MagCache.FLUX_DEV);
        assertEquals(2, flux.calibratedStep(1, 19));
        assertEquals(4, flux.calibratedStep(3, 19));
        assertEquals(27, flux.calibratedStep(0, 1), "a 1-step run takes the last entry, as nearest_interp");
        MagCache.Config comfy = MagCache.Config.comfyUi(MagCache.FLUX_DEV_28, true, 0.2, 0.2, 2, 0, -1);
        assertEquals(1, comfy.calibratedStep(1, 19), "ComfyUI truncates");
        assertEquals(4, comfy.calibratedStep(3, 19));
    }

    @Test
    void boundaryInclusiveForFluxScriptExclusiveForWanScript() {
        // γ = 1.5 then 1.0…: ratio 1.5, err 0.5 exactly at the first non-retained step
        double[] g = {1.0, 1.5, 1.0, 1.0, 1.0};
        MagCache.Table one = new MagCache.Table("t1", 1, g, "test");
        double[] gi = new double[10];
        for (int j = 0; j < 5; j++) gi[2 * j] = gi[2 * j + 1] = g[j];
        MagCache.Table two = new MagCache.Table("t2", 2, gi, "test");
        MagCache.Preset fluxLike = new MagCache.Preset("fl", one, 0.5, 5, 0.0, true, MagCache.Retention.ROUND_HALF_UP, new int[0], "test");
        MagCache.Preset wanLike = new MagCache.Preset("wl", two, 0.5, 5, 0.0, false, MagCache.Retention.INTERLEAVED_FLOOR, new int[0], "test");
        for (double thresh : new double[] {0.5, Math.nextDown(0.5), Math.nextUp(0.5), 1.0, 1.5, Math.nextDown(1.5)}) {
            Decision[] f = run(new MagCache(MagCache.Config.reference(fluxLike).withThreshold(thresh)), "b", 5, Branch.COND);
            Decision[][] w = runCfg(new MagCache(MagCache.Config.reference(wanLike).withThreshold(thresh)), "b", 5);
            // retention 0 would let step 0 skip with no residual in the scripts; the policy computes it
            assertEquals(Decision.Reason.NO_RESIDUAL, f[0].reason());
            for (int i = 1; i < 5; i++) {
                assertEquals(refMagCache4Flux(g, 5, thresh, 5, 0.0).skip()[i], f[i].skip(), "flux thresh " + thresh + " step " + i);
                assertEquals(refMagCache4Wan(gi, 5, thresh, 5, 0.0)[0].skip()[i], w[0][i].skip(), "wan thresh " + thresh + " step " + i);
            }
        }
        // at exactly err == thresh: ≤ skips, < computes
        assertTrue(run(new MagCache(MagCache.Config.reference(fluxLike)), "b", 5, Branch.COND)[1].skip());
        assertTrue(runCfg(new MagCache(MagCache.Config.reference(wanLike)), "b", 5)[0][1].compute());
    }

    @Test
    void kLimitsConsecutiveSkips() {
        double[] ones = new double[12];
        Arrays.fill(ones, 1.0);
        MagCache.Table t = new MagCache.Table("ones", 1, ones, "test");
        MagCache.Preset p = new MagCache.Preset("k", t, 0.1, 3, 0.1, true, MagCache.Retention.ROUND_HALF_UP, new int[0], "test");
        Decision[] d = run(MagCache.of(p), "k", 12, Branch.COND);
        assertEquals("#...#...#...", pattern(d));
        assertEquals(Decision.Reason.RETENTION, d[0].reason());
        assertEquals(Decision.Reason.K_LIMIT, d[4].reason());
        assertEquals(Decision.Reason.K_LIMIT, d[8].reason());
        assertEquals("############", pattern(run(new MagCache(MagCache.Config.reference(p).withK(0)), "k", 12, Branch.COND)));
        assertEquals("#...........", pattern(run(new MagCache(MagCache.Config.reference(p).withK(100)), "k", 12, Branch.COND)));
    }

    @Test
    void retentionRulesOfTheThreeCodes() {
        MagCache flux = MagCache.of(MagCache.FLUX_DEV);                 // int(0.1·28 + 0.5) = 3
        Decision[] f = run(flux, "r", 28, Branch.COND);
        for (int i = 0; i < 3; i++) assertEquals(Decision.Reason.RETENTION, f[i].reason(), "flux step " + i);
        assertNotEquals(Decision.Reason.RETENTION, f[3].reason());

        // MagCache4Wan2.1 counts calls: int(56·0.2) = 11 → cond steps 0..5 retained, uncond only 0..4
        Decision[][] w = runCfg(MagCache.of(MagCache.WAN21_T2V_14B), "r", 28);
        assertEquals(Decision.Reason.RETENTION, w[0][5].reason());
        assertNotEquals(Decision.Reason.RETENTION, w[1][5].reason());
        assertEquals(Decision.Reason.RETENTION, w[1][4].reason());

        // ComfyUI: int(28·0.2) = 5 for both branches
        Decision[][] c = runCfg(new MagCache(MagCache.Config.comfyUi(MagCache.WAN21_T2V_14B_50, false, 0.24, 0.2, 6, 0, -1)), "r", 28);
        for (Branch b : Branch.values()) {
            assertEquals(Decision.Reason.RETENTION, c[b.index()][4].reason());
            assertNotEquals(Decision.Reason.RETENTION, c[b.index()][5].reason());
        }
    }

    @Test
    void fluxStepElevenIsAlwaysComputed() {
        // thresh large and K large: only the forced calibrated step 11 (and retention) compute
        MagCache mc = new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(100).withK(100));
        Decision[] d = run(mc, "e", 28, Branch.COND);
        assertEquals(List.of(0, 1, 2, 11), computed(d));
        assertEquals(Decision.Reason.FORCED, d[11].reason());
        // the script accumulates step 11 before resetting: its metric is the error including γ_11
        assertFalse(Double.isNaN(d[11].metric()));
        // ComfyUI leaves the state untouched at step 11: the error keeps growing across it
        MagCache comfy = new MagCache(MagCache.Config.comfyUi(MagCache.FLUX_DEV_28, true, 100, 0.1, 100, 0, -1));
        Decision[] c = run(comfy, "e", 28, Branch.COND);
        assertEquals(List.of(0, 1, 11), computed(c));
        assertTrue(Double.isNaN(c[11].metric()));
        assertTrue(c[12].metric() > c[10].metric());
        // with 20 steps the forced calibrated step 11 is run step 8 (round(8·27/19) = 11)
        assertEquals(Decision.Reason.FORCED, run(new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(100).withK(100)), "e", 20, Branch.COND)[8].reason());
    }

    @Test
    void thresholdZeroComputesEveryStep() {
        double[] ones = new double[10];
        Arrays.fill(ones, 1.0);       // err stays exactly 0: "err ≤ 0" would skip in the raw loop
        MagCache.Table t = new MagCache.Table("ones", 1, ones, "test");
        for (MagCache.Config c : List.of(
                MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0).withTable(t),
                MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withThreshold(0),
                MagCache.Config.comfyUi(t, false, 0, 0.1, 6, 0, -1))) {
            Decision[][] d = runCfg(new MagCache(c), "z", 10);
            for (Decision[] row : d) {
                assertEquals("##########", pattern(row));
                for (Decision x : row) assertEquals(Decision.Reason.DISABLED, x.reason());
            }
        }
    }

    @Test
    void condAndUncondAreSeparateAndRequestsReset() {
        MagCache mc = MagCache.of(MagCache.WAN21_T2V_1_3B);
        Decision[][] both = runCfg(mc, "a", 50);
        Decision[] condAlone = run(MagCache.of(MagCache.WAN21_T2V_1_3B), "a", 50, Branch.COND);
        assertEquals(pattern(both[0]), pattern(condAlone));
        for (int i = 0; i < 50; i++) assertEquals(both[0][i].metric(), condAlone[i].metric(), 0.0);
        // the uncond accumulators differ from the cond ones: the branches use their own γ columns
        boolean differ = false;
        for (int i = 0; i < 50; i++) differ |= Double.compare(both[0][i].metric(), both[1][i].metric()) != 0;
        assertTrue(differ);
        // a second run under the same id from step 0 equals the first
        Decision[][] again = runCfg(mc, "a", 50);
        for (Branch b : Branch.values()) assertEquals(pattern(both[b.index()]), pattern(again[b.index()]));
        mc.finish("a");
        assertEquals(0, mc.openRequests());
        assertFalse(mc.needsSignal(StepContext.of("a", 20, 50, Branch.COND)));
    }

    @Test
    void publishedTables() {
        assertEquals(28, MagCache.FLUX_DEV_28.steps());
        assertEquals(50, MagCache.WAN21_T2V_1_3B_50.steps());
        assertEquals(50, MagCache.WAN21_T2V_14B_50.steps());
        assertEquals(1.21094, MagCache.FLUX_DEV_28.gamma(Branch.COND, 1));
        assertEquals(0.89062, MagCache.FLUX_DEV_28.gamma(Branch.UNCOND, 27), "1-branch tables serve both branches");
        assertEquals(1.0124, MagCache.WAN21_T2V_1_3B_50.gamma(Branch.COND, 1));
        assertEquals(1.02213, MagCache.WAN21_T2V_1_3B_50.gamma(Branch.UNCOND, 1));
        assertEquals(0.81939, MagCache.WAN21_T2V_1_3B_50.gamma(Branch.UNCOND, 49));
        assertEquals(1.02504, MagCache.WAN21_T2V_14B_50.gamma(Branch.COND, 1));
        assertEquals(0.86189, MagCache.WAN21_T2V_14B_50.gamma(Branch.UNCOND, 49));
        assertEquals(1.0, MagCache.WAN21_T2V_14B_50.gamma(Branch.UNCOND, 0));
        // a few sums as a checksum of the transcribed values
        // (sums of the script's lists computed in Python; tolerance covers summation order only)
        assertEquals(28.38278, Arrays.stream(MagCache.FLUX_DEV_28.interleaved()).sum(), 1e-9);
        assertEquals(97.99135, Arrays.stream(MagCache.WAN21_T2V_1_3B_50.interleaved()).sum(), 1e-9);
        assertEquals(98.0394, Arrays.stream(MagCache.WAN21_T2V_14B_50.interleaved()).sum(), 1e-9);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new MagCache.Table("bad", 2, new double[] {1, 1, 1}, "x"));
        assertTrue(e.getMessage().contains("whole steps"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new MagCache.Table("bad", 1, new double[] {1, -1}, "x"));
        assertThrows(IllegalArgumentException.class, () -> MagCache.Config.reference(MagCache.FLUX_DEV).withK(-1));
        assertThrows(IllegalArgumentException.class, () -> MagCache.Config.reference(MagCache.FLUX_DEV).withRetentionRatio(1.5));
    }
}
