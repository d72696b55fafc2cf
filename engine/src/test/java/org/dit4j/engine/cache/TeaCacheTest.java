package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * TeaCache against literal Java transcriptions of the published loops (written here, independently of the main
 * code), and against patterns produced by running those loops in Python/numpy.
 */
class TeaCacheTest {

    // ---------------------------------------------------------------- reference transcriptions

    /** numpy.poly1d(c)(x): polyval — y = 0; for pv in p: y = y * x + pv. */
    static double npPolyval(double[] p, double x) {
        double y = 0;
        for (double pv : p) y = y * x + pv;
        return y;
    }

    /** ComfyUI-TeaCache nodes.py poly1d: result += coeff * x ** (len - 1 - i). */
    static double comfyPoly1d(double[] coefficients, double x) {
        double result = 0;
        for (int i = 0; i < coefficients.length; i++) result += coefficients[i] * Math.pow(x, coefficients.length - 1 - i);
        return result;
    }

    /** One output of a reference loop: should_calc per call and the accumulator value compared (NaN if none). */
    record Ref(boolean[] calc, double[] acc) {
        String pattern() {
            StringBuilder sb = new StringBuilder();
            for (boolean c : calc) sb.append(c ? '#' : '.');
            return sb.toString();
        }
    }

    /**
     * TeaCache4FLUX/teacache_flux.py forward (also TeaCache4CogVideoX1.5): the decision block, per call:
     * <pre>
     * if self.cnt == 0 or self.cnt == self.num_steps-1: should_calc = True; acc = 0
     * else: acc += rescale_func(rel_l1); if acc &lt; thresh: should_calc = False else: should_calc = True; acc = 0
     * self.previous_modulated_input = modulated_inp; self.cnt += 1; if self.cnt == self.num_steps: self.cnt = 0
     * </pre>
     */
    static Ref refTeaCache4Flux(double[] coefficients, double relL1Thresh, int numSteps, double[] delta) {
        boolean[] calc = new boolean[numSteps];
        double[] accs = new double[numSteps];
        Arrays.fill(accs, Double.NaN);
        int cnt = 0;
        double accumulated = 0;
        for (int call = 0; call < numSteps; call++) {
            boolean shouldCalc;
            if (cnt == 0 || cnt == numSteps - 1) {
                shouldCalc = true;
                accumulated = 0;
            } else {
                accumulated += npPolyval(coefficients, delta[cnt]);
                accs[call] = accumulated;
                if (accumulated < relL1Thresh) {
                    shouldCalc = false;
                } else {
                    shouldCalc = true;
                    accumulated = 0;
                }
            }
            calc[call] = shouldCalc;
            cnt += 1;
            if (cnt == numSteps) cnt = 0;
        }
        return new Ref(calc, accs);
    }

    /**
     * TeaCache4Wan2.1/teacache_generate.py teacache_forward: cnt counts calls cond, uncond, cond, …; num_steps =
     * sample_steps*2; ret mode: ret_steps = 5*2, cutoff = sample_steps*2; else ret_steps = 1*2, cutoff = sample_steps*2 - 2.
     * Returns [cond, uncond] results indexed by step.
     */
    static Ref[] refTeaCache4Wan(double[] coefficients, double teacacheThresh, int sampleSteps, boolean useRetSteps,
                                 double[] deltaCond, double[] deltaUncond) {
        int numSteps = sampleSteps * 2;
        int retSteps = useRetSteps ? 5 * 2 : 1 * 2;
        int cutoffSteps = useRetSteps ? sampleSteps * 2 : sampleSteps * 2 - 2;
        double accEven = 0, accOdd = 0;
        boolean[][] calc = new boolean[2][sampleSteps];
        double[][] accs = new double[2][sampleSteps];
        for (double[] a : accs) Arrays.fill(a, Double.NaN);
        int cnt = 0;
        for (int call = 0; call < numSteps; call++) {
            if (cnt % 2 == 0) {
                boolean shouldCalcEven;
                if (cnt < retSteps || cnt >= cutoffSteps) {
                    shouldCalcEven = true;
                    accEven = 0;
                } else {
                    accEven += npPolyval(coefficients, deltaCond[cnt / 2]);
                    accs[0][cnt / 2] = accEven;
                    if (accEven < teacacheThresh) shouldCalcEven = false;
                    else { shouldCalcEven = true; accEven = 0; }
                }
                calc[0][cnt / 2] = shouldCalcEven;
            } else {
                boolean shouldCalcOdd;
                if (cnt < retSteps || cnt >= cutoffSteps) {
                    shouldCalcOdd = true;
                    accOdd = 0;
                } else {
                    accOdd += npPolyval(coefficients, deltaUncond[cnt / 2]);
                    accs[1][cnt / 2] = accOdd;
                    if (accOdd < teacacheThresh) shouldCalcOdd = false;
                    else { shouldCalcOdd = true; accOdd = 0; }
                }
                calc[1][cnt / 2] = shouldCalcOdd;
            }
            cnt += 1;
            if (cnt >= numSteps) cnt = 0;
        }
        return new Ref[] {new Ref(calc[0], accs[0]), new Ref(calc[1], accs[1])};
    }

    /**
     * ComfyUI-TeaCache nodes.py, Wan/Lumina/LTXV-style forward with the unet wrapper, CFG batched
     * (cond_or_uncond = [0, 1]): teacache_state per branch; update_cache_state; should_calc = OR over branches when
     * enabled, else True. Returns per-branch "should_calc" flags (before the OR) and the batch's decision.
     * {@code absPoly} selects the Flux forward's {@code .abs()}.
     */
    record ComfyRef(Ref[] perBranch, boolean[] batchCalc) {}

    static ComfyRef refComfyTeaCache(double[] coefficients, double relL1Thresh, double startPercent, double endPercent,
                                     int steps, boolean absPoly, double[][] delta) {
        boolean[][] calc = new boolean[2][steps];
        double[][] accs = new double[2][steps];
        for (double[] a : accs) Arrays.fill(a, Double.NaN);
        boolean[] batch = new boolean[steps];
        if (relL1Thresh == 0) {                      // apply_teacache: if rel_l1_thresh == 0: return (model,)
            for (boolean[] c : calc) Arrays.fill(c, true);
            Arrays.fill(batch, true);
            return new ComfyRef(new Ref[] {new Ref(calc[0], accs[0]), new Ref(calc[1], accs[1])}, batch);
        }
        // teacache_state = {k: {'should_calc': True, 'accumulated_rel_l1_distance': 0, 'previous_modulated_input': None}}
        boolean[] stShould = null;
        double[] stAcc = null;
        boolean[] stHasPrev = null;
        for (int currentStepIndex = 0; currentStepIndex < steps; currentStepIndex++) {
            if (currentStepIndex == 0 && stHasPrev != null && stHasPrev[0] && stHasPrev[1]) {
                stShould = null; stAcc = null; stHasPrev = null;       // delattr(diffusion_model, 'teacache_state')
            }
            double currentPercent = (double) currentStepIndex / steps;   // current_step_index / (len(sigmas) - 1)
            boolean enable = startPercent <= currentPercent && currentPercent <= endPercent;
            if (stShould == null) {
                stShould = new boolean[] {true, true};
                stAcc = new double[] {0, 0};
                stHasPrev = new boolean[] {false, false};
            }
            for (int k = 0; k < 2; k++) {
                if (stHasPrev[k]) {
                    double p = comfyPoly1d(coefficients, delta[k][currentStepIndex]);
                    stAcc[k] += absPoly ? Math.abs(p) : p;
                    accs[k][currentStepIndex] = stAcc[k];
                    if (stAcc[k] < relL1Thresh) stShould[k] = false;
                    else { stShould[k] = true; stAcc[k] = 0; }
                }
                stHasPrev[k] = true;
                calc[k][currentStepIndex] = stShould[k];
            }
            boolean shouldCalc;
            if (enable) {
                shouldCalc = false;
                for (int k = 0; k < 2; k++) shouldCalc = shouldCalc || stShould[k];
            } else {
                shouldCalc = true;
            }
            batch[currentStepIndex] = shouldCalc;
        }
        return new ComfyRef(new Ref[] {new Ref(calc[0], accs[0]), new Ref(calc[1], accs[1])}, batch);
    }

    // ---------------------------------------------------------------- helpers

    /** A signal whose relative L1 value is exactly δ. */
    static Signals.RelL1 exact(double delta) { return new Signals.RelL1(delta, 1, 1.0, 1); }

    static Decision[] run(StepCache p, String req, int n, Branch b, double[] delta) {
        Decision[] out = new Decision[n];
        for (int i = 0; i < n; i++) {
            StepContext ctx = StepContext.of(req, i, n, b);
            out[i] = p.decide(ctx, i == 0 ? Signals.NONE : exact(delta[i]));
        }
        return out;
    }

    static String pattern(Decision[] d) {
        StringBuilder sb = new StringBuilder();
        for (Decision x : d) sb.append(x.compute() ? '#' : '.');
        return sb.toString();
    }

    static void assertSame(Ref ref, Decision[] got, String what) {
        assertEquals(ref.pattern(), pattern(got), what + ": computed/skipped pattern");
        for (int i = 0; i < got.length; i++) {
            // accumulators are compared bit for bit: both sides evaluate the same double operations
            if (!Double.isNaN(ref.acc()[i]) || !Double.isNaN(got[i].metric()))
                assertEquals(ref.acc()[i], got[i].metric(), 0.0, what + ": accumulator at step " + i);
        }
    }

    static double[] fluxDeltas() {
        double[] d = new double[28];
        for (int i = 0; i < 28; i++) d[i] = 0.02 + ((i * 37) % 11) / 200.0;
        return d;
    }

    // ---------------------------------------------------------------- tests

    @Test
    void fluxMatchesNumpyRun() {
        // Expected values: the TeaCache4FLUX decision loop run in Python with numpy's poly1d on the same δ sequence.
        String python = "#..#..#..#..#..#..#..#..#..#";
        double[] pythonAcc = {Double.NaN, 0.18390552556256, 0.36516881658352, 0.5645646740253168, 0.18161367520650687,
                0.36448756516576375, 0.5571237040460737, 0.18050262494374997, 0.36564567913125995, 0.5531731132809168,
                0.18043059641130688, 0.38840888370746685, 0.5723144092700269, 0.18126329102096, 0.38065914846275684,
                0.5622728236692637, 0.18287388995925685, 0.37551002883956686, 0.5560126537833168, 0.18514305418750998,
                0.3726704883371668, 0.5531010847484736, 0.20797828729615997, 0.39188381285872, 0.57314710387968,
                0.19939585744179686, 0.38100953264830373, Double.NaN};
        Decision[] got = run(TeaCache.of(TeaCache.FLUX), "r", 28, Branch.COND, fluxDeltas());
        assertEquals(python, pattern(got));
        for (int i = 0; i < 28; i++) assertEquals(pythonAcc[i], got[i].metric(), 0.0, "acc at step " + i);
        assertEquals(Decision.Reason.FORCED, got[0].reason());
        assertEquals(Decision.Reason.FORCED, got[27].reason());
    }

    @Test
    void fluxAndCogVideoXMatchTranscriptionOnRandomSequences() {
        Random rnd = new Random(5);
        for (TeaCache.Preset preset : List.of(TeaCache.FLUX, TeaCache.COGVIDEOX_5B)) {
            for (int trial = 0; trial < 200; trial++) {
                int n = 1 + rnd.nextInt(60);
                double thresh = 0.05 + rnd.nextDouble() * 0.8;
                double[] d = new double[n];
                for (int i = 0; i < n; i++) d[i] = rnd.nextDouble() * (rnd.nextBoolean() ? 0.05 : 0.3);
                Ref ref = refTeaCache4Flux(preset.coefficients(), thresh, n, d);
                Decision[] got = run(new TeaCache(TeaCache.Config.reference(preset).withThreshold(thresh)), "r" + trial, n, Branch.COND, d);
                assertSame(ref, got, preset.id() + " n=" + n + " thresh=" + thresh);
            }
        }
    }

    @Test
    void wanMatchesNumpyRunsAndTranscription() {
        double[] dc = new double[50], du = new double[50], dc2 = new double[50], du2 = new double[50];
        for (int i = 0; i < 50; i++) {
            dc[i] = 0.13 + ((i * 13) % 9) / 200.0;
            du[i] = 0.135 + ((i * 7) % 5) / 150.0;
            dc2[i] = 0.01 + ((i * 13) % 9) / 200.0;
            du2[i] = 0.015 + ((i * 7) % 5) / 150.0;
        }
        // From the TeaCache4Wan2.1 loop run in Python/numpy on these sequences.
        String[] python14 = {"#.#.#.#...#.#.#..#..#.#.#...#.#.#..#..#.#.#...#.##", "#.#.#..#.#..#.#..#.#..#.#..#.#..#.#..#.#..#.#..#.#"};
        String[] python13ret = {"#####.#.#.##.#.#.#.##.#.#.#.##.#.#.#.##.#.#.#.##.#", "#####.##.#.##.#.##.#.##.#.##.#.##.#.##.#.##.#.##.#"};

        TeaCache w14 = TeaCache.of(TeaCache.WAN21_T2V_14B);
        TeaCache w13r = TeaCache.of(TeaCache.WAN21_T2V_1_3B_RET);
        Decision[][] got14 = interleaved(w14, "a", 50, dc, du);
        Decision[][] got13 = interleaved(w13r, "b", 50, dc2, du2);
        assertEquals(python14[0], pattern(got14[0]));
        assertEquals(python14[1], pattern(got14[1]));
        assertEquals(python13ret[0], pattern(got13[0]));
        assertEquals(python13ret[1], pattern(got13[1]));

        Ref[] ref14 = refTeaCache4Wan(TeaCache.WAN21_T2V_14B.coefficients(), 0.2, 50, false, dc, du);
        Ref[] ref13 = refTeaCache4Wan(TeaCache.WAN21_T2V_1_3B_RET.coefficients(), 0.10, 50, true, dc2, du2);
        for (Branch b : Branch.values()) {
            assertSame(ref14[b.index()], got14[b.index()], "wan 14B " + b);
            assertSame(ref13[b.index()], got13[b.index()], "wan 1.3B ret " + b);
        }
        // ret mode: first 5 steps forced, last step not forced
        for (int i = 0; i < 5; i++) assertEquals(Decision.Reason.FORCED, got13[0][i].reason());
        assertNotEquals(Decision.Reason.FORCED, got13[0][49].reason());
        assertEquals(Decision.Reason.FORCED, got14[1][49].reason());
    }

    @Test
    void wanRandomSequencesMatchTranscription() {
        Random rnd = new Random(11);
        List<TeaCache.Preset> presets = List.of(TeaCache.WAN21_T2V_1_3B, TeaCache.WAN21_T2V_14B,
                TeaCache.WAN21_T2V_1_3B_RET, TeaCache.WAN21_T2V_14B_RET);
        for (int trial = 0; trial < 200; trial++) {
            TeaCache.Preset p = presets.get(trial % presets.size());
            int n = 2 + rnd.nextInt(50);
            double thresh = 0.02 + rnd.nextDouble() * 0.4;
            double[] dc = new double[n], du = new double[n];
            for (int i = 0; i < n; i++) {
                dc[i] = rnd.nextDouble() * 0.2;
                du[i] = rnd.nextDouble() * 0.2;
            }
            Ref[] ref = refTeaCache4Wan(p.coefficients(), thresh, n, p.forcedLeadingSteps() == 5, dc, du);
            Decision[][] got = interleaved(new TeaCache(TeaCache.Config.reference(p).withThreshold(thresh)), "t", n, dc, du);
            for (Branch b : Branch.values()) assertSame(ref[b.index()], got[b.index()], p.id() + " trial " + trial + " " + b);
        }
    }

    /** cond and uncond calls interleaved per step, as Wan2.1's generate loop makes them. */
    static Decision[][] interleaved(StepCache p, String req, int n, double[] dc, double[] du) {
        Decision[][] out = new Decision[2][n];
        for (int i = 0; i < n; i++) {
            out[0][i] = p.decide(StepContext.of(req, i, n, Branch.COND), i == 0 ? Signals.NONE : exact(dc[i]));
            out[1][i] = p.decide(StepContext.of(req, i, n, Branch.UNCOND), i == 0 ? Signals.NONE : exact(du[i]));
        }
        return out;
    }

    @Test
    void comfyUiNodeMatchesTranscriptionWithWindowAndAbs() {
        Random rnd = new Random(3);
        for (int trial = 0; trial < 300; trial++) {
            TeaCache.Preset p = trial % 3 == 0 ? TeaCache.FLUX : trial % 3 == 1 ? TeaCache.WAN21_T2V_1_3B : TeaCache.WAN21_T2V_14B_RET;
            int n = 1 + rnd.nextInt(40);
            double thresh = trial % 17 == 0 ? 0 : rnd.nextDouble() * 0.6;
            double start = rnd.nextInt(4) == 0 ? 0 : Math.floor(rnd.nextDouble() * 50) / 100;
            double end = rnd.nextInt(4) == 0 ? 1 : Math.max(start, Math.floor(rnd.nextDouble() * 100) / 100);
            double[][] d = new double[2][n];
            for (double[] row : d) for (int i = 0; i < n; i++) row[i] = rnd.nextDouble() * 0.25;
            boolean abs = p == TeaCache.FLUX;
            ComfyRef ref = refComfyTeaCache(p.coefficients(), thresh, start, end, n, abs, d);

            // per-branch decisions of one instance; the batch decision through CacheRun.decideJointly of another
            TeaCache tc = new TeaCache(TeaCache.Config.comfyUi(p, thresh, start, end));
            TeaCache joint = new TeaCache(TeaCache.Config.comfyUi(p, thresh, start, end));
            CacheRun<AutoCloseable> run = joint.begin("c" + trial, n);
            for (int i = 0; i < n; i++) {
                double pct = (double) i / n;
                boolean enable = start <= pct && pct <= end;
                boolean anyCompute = false;
                java.util.Map<Branch, Signals> s = new java.util.EnumMap<>(Branch.class);
                for (Branch b : Branch.values()) {
                    Signals sig = i == 0 ? Signals.NONE : exact(d[b.index()][i]);
                    s.put(b, sig);
                    Decision own = tc.decide(StepContext.of("c" + trial, i, n, b), sig);
                    boolean expected = thresh == 0 || !enable || ref.perBranch()[b.index()].calc()[i];
                    assertEquals(expected, own.compute(), "trial " + trial + " step " + i + " " + b + " branch decision");
                    double refAcc = ref.perBranch()[b.index()].acc()[i];
                    if (!Double.isNaN(refAcc) || !Double.isNaN(own.metric()))
                        assertEquals(refAcc, own.metric(), 0.0, "trial " + trial + " step " + i + " " + b + " acc");
                    anyCompute |= own.compute();
                }
                assertEquals(ref.batchCalc()[i], anyCompute, "trial " + trial + " step " + i + " batch = OR of branches");
                java.util.Map<Branch, Decision> batched = run.decideJointly(i, s, CacheRun.Joint.ANY_COMPUTE);
                for (Branch b : Branch.values()) {
                    Decision got = batched.get(b);
                    assertEquals(ref.batchCalc()[i], got.compute(), "trial " + trial + " step " + i + " " + b + " batched");
                    if (got.compute()) run.storeResidual(b, CacheRun.Slot.HIDDEN, () -> {});
                    if (got.updateSignalReference()) run.storeReference(b, () -> {});
                }
            }
            run.close();
            assertEquals(0, joint.openRequests(), "closing the run drops the policy's state");
            assertEquals(1, tc.openRequests());
            tc.finish("c" + trial);
            assertEquals(0, tc.openRequests());
        }
    }

    @Test
    void thresholdBoundaryIsStrict() {
        // rescale(δ) = δ makes the accumulator an exact sum of dyadic numbers
        TeaCache.Preset identity = new TeaCache.Preset("identity", "test", new double[] {1, 0}, 1, true, 0.5, "test");
        double[] d = {0, 0.25, 0.125, 0.125, 0.25, 0.25, 0};
        // acc: step1 0.25, step2 0.375, step3 0.5, (reset) step4 0.25, step5 0.5
        for (double thresh : new double[] {0.5, Math.nextUp(0.5), Math.nextDown(0.5)}) {
            Ref ref = refTeaCache4Flux(identity.coefficients(), thresh, 7, d);
            Decision[] got = run(new TeaCache(TeaCache.Config.reference(identity).withThreshold(thresh)), "b", 7, Branch.COND, d);
            assertSame(ref, got, "thresh " + thresh);
        }
        Decision[] at = run(new TeaCache(TeaCache.Config.reference(identity).withThreshold(0.5)), "b", 7, Branch.COND, d);
        assertEquals("#..#.##", pattern(at), "acc == thresh computes");
        assertEquals(0.5, at[3].metric(), 0.0);
        Decision[] above = run(new TeaCache(TeaCache.Config.reference(identity).withThreshold(Math.nextUp(0.5))), "b", 7, Branch.COND, d);
        assertEquals("#...#.#", pattern(above), "acc one ulp under thresh skips");
        assertTrue(above[3].skip());
        assertEquals(0.5, above[3].metric(), 0.0);
        assertEquals(0.75, above[4].metric(), 0.0);

        // the same with the real Flux polynomial: set the threshold exactly to an accumulated value
        double[] fd = fluxDeltas();
        Decision[] base = run(TeaCache.of(TeaCache.FLUX), "f", 28, Branch.COND, fd);
        double accAt3 = base[3].metric();                // 0.5645646740253168, computed at thresh 0.4
        Decision[] eq = run(new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(accAt3)), "f", 28, Branch.COND, fd);
        assertTrue(eq[3].compute(), "acc == thresh at step 3 computes");
        Decision[] up = run(new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(Math.nextUp(accAt3))), "f", 28, Branch.COND, fd);
        assertTrue(up[3].skip(), "thresh one ulp above acc skips");
        assertSame(refTeaCache4Flux(TeaCache.FLUX.coefficients(), Math.nextUp(accAt3), 28, fd), up, "ulp above");
    }

    @Test
    void thresholdZeroComputesEveryStepEvenWithNegativeRescale() {
        // Wan 14B's polynomial is negative for small δ: with rel_l1_thresh 0 the raw loop would skip; the policy is off.
        double[] d = new double[30];
        Arrays.fill(d, 0.001);
        assertTrue(npPolyval(TeaCache.WAN21_T2V_14B.coefficients(), 0.001) < 0);
        for (TeaCache.Config c : List.of(TeaCache.Config.reference(TeaCache.WAN21_T2V_14B).withThreshold(0),
                TeaCache.Config.comfyUi(TeaCache.FLUX, 0, 0, 1))) {
            TeaCache tc = new TeaCache(c);
            Decision[] got = run(tc, "z", 30, Branch.COND, d);
            assertEquals("#".repeat(30), pattern(got));
            for (Decision x : got) {
                assertEquals(Decision.Reason.DISABLED, x.reason());
                assertFalse(x.updateSignalReference());
            }
            assertFalse(tc.needsSignal(StepContext.of("z", 5, 30, Branch.COND)));
        }
    }

    @Test
    void condAndUncondKeepSeparateAccumulators() {
        TeaCache.Preset identity = new TeaCache.Preset("identity", "test", new double[] {1, 0}, 1, true, 0.3, "test");
        TeaCache tc = new TeaCache(TeaCache.Config.reference(identity));
        double[] small = {0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0};
        double[] large = {0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0};
        Decision[][] got = interleaved(tc, "cfg", 8, small, large);
        assertEquals("#..#..##", pattern(got[0]));    // 0.1, 0.2 skip; 0.30000000000000004 ≥ 0.3 computes
        assertEquals("########", pattern(got[1]));
        // the same cond sequence alone gives the same cond pattern: uncond did not touch cond's state
        assertEquals(pattern(got[0]), pattern(run(new TeaCache(TeaCache.Config.reference(identity)), "solo", 8, Branch.COND, small)));
    }

    @Test
    void windowOutsideComputesWithoutResettingAccumulator() {
        TeaCache.Preset identity = new TeaCache.Preset("identity", "test", new double[] {1, 0}, 0, false, 1.0, "test");
        // 10 steps, window [0.3, 1]: steps 0..2 computed; acc keeps growing through them
        TeaCache tc = new TeaCache(TeaCache.Config.comfyUi(identity, 1.0, 0.3, 1.0));
        double[] d = {0, 0.25, 0.25, 0.25, 0.125, 0.5, 0.5, 0.5, 0.5, 0.5};
        Decision[] got = run(tc, "w", 10, Branch.COND, d);
        assertEquals(Decision.Reason.NO_SIGNAL, got[0].reason());
        assertEquals(Decision.Reason.OUTSIDE_WINDOW, got[1].reason());
        assertEquals(Decision.Reason.OUTSIDE_WINDOW, got[2].reason());
        assertEquals(0.5, got[2].metric(), 0.0);
        assertTrue(got[3].skip(), "step 3 (30%) is inside the window");
        assertEquals(0.75, got[3].metric(), 0.0, "accumulator was not reset by the forced window steps");
        assertEquals(0.875, got[4].metric(), 0.0);
        assertEquals(Decision.Reason.THRESHOLD, got[5].reason());
        assertEquals(1.375, got[5].metric(), 0.0);
        // end_percent: the last step 9/10 = 0.9 is outside [0, 0.85]
        TeaCache tc2 = new TeaCache(TeaCache.Config.comfyUi(identity, 10.0, 0.0, 0.85));
        Decision[] got2 = run(tc2, "w", 10, Branch.COND, d);
        assertTrue(got2[8].skip());
        assertEquals(Decision.Reason.OUTSIDE_WINDOW, got2[9].reason());
    }

    @Test
    void stateResetsBetweenRequestsAndAtStepZero() {
        TeaCache tc = TeaCache.of(TeaCache.FLUX);
        double[] d = fluxDeltas();
        Decision[] first = run(tc, "same", 28, Branch.COND, d);
        // same id again from step 0: identical to a fresh policy
        Decision[] again = run(tc, "same", 28, Branch.COND, d);
        assertEquals(pattern(first), pattern(again));
        for (int i = 0; i < 28; i++) assertEquals(first[i].metric(), again[i].metric(), 0.0);
        // interleaved requests keep separate state
        TeaCache shared = TeaCache.of(TeaCache.FLUX);
        Decision[] a = new Decision[28], b = new Decision[28];
        double[] other = new double[28];
        Arrays.fill(other, 0.3);
        for (int i = 0; i < 28; i++) {
            a[i] = shared.decide(StepContext.of("A", i, 28, Branch.COND), i == 0 ? Signals.NONE : exact(d[i]));
            b[i] = shared.decide(StepContext.of("B", i, 28, Branch.COND), i == 0 ? Signals.NONE : exact(other[i]));
        }
        assertEquals(pattern(first), pattern(a));
        assertEquals(2, shared.openRequests());
        shared.finish("A");
        shared.finish("B");
        assertEquals(0, shared.openRequests());
        // steps out of order within a run are refused with an actionable message
        TeaCache t = TeaCache.of(TeaCache.FLUX);
        t.decide(StepContext.of("x", 0, 28, Branch.COND), Signals.NONE);
        t.decide(StepContext.of("x", 3, 28, Branch.COND), exact(0.1));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> t.decide(StepContext.of("x", 2, 28, Branch.COND), exact(0.1)));
        assertTrue(e.getMessage().contains("after step 3"), e.getMessage());
        IllegalStateException e2 = assertThrows(IllegalStateException.class, () -> t.decide(StepContext.of("x", 5, 30, Branch.COND), exact(0.1)));
        assertTrue(e2.getMessage().contains("28 steps"), e2.getMessage());
    }

    @Test
    void nonFiniteSignalComputesAndResets() {
        TeaCache tc = TeaCache.of(TeaCache.FLUX);
        assertTrue(tc.decide(StepContext.of("n", 0, 10, Branch.COND), Signals.NONE).compute());
        assertTrue(tc.decide(StepContext.of("n", 1, 10, Branch.COND), exact(0.01)).skip());
        Decision d = tc.decide(StepContext.of("n", 2, 10, Branch.COND), new Signals.RelL1(1, 4, 0, 4));  // reference all zero
        assertTrue(d.compute());
        assertEquals(Decision.Reason.THRESHOLD, d.reason());
        Decision next = tc.decide(StepContext.of("n", 3, 10, Branch.COND), exact(0.01));
        assertEquals(npPolyval(TeaCache.FLUX.coefficients(), 0.01), next.metric(), 0.0, "accumulator restarted from 0");
    }

    @Test
    void bf16RoundingOfTheScalarMeans() {
        // mean|Δ| = 0.0100001, mean|ref| = 1: bf16 rounds the mean to 0.010009765625 and the quotient stays that
        Signals.RelL1 s = new Signals.RelL1(0.0100001 * 8, 8, 8, 8);
        assertEquals(0.0100001, s.value(ScalarRounding.NONE), 1e-17);
        assertEquals(0.010009765625, s.value(ScalarRounding.BF16), 0.0);
        assertEquals((double) (float) 0.0100001, s.value(ScalarRounding.F32), 0.0);
        TeaCache.Config c = TeaCache.Config.reference(TeaCache.FLUX).withRounding(ScalarRounding.BF16);
        TeaCache tc = new TeaCache(c);
        tc.decide(StepContext.of("r", 0, 5, Branch.COND), Signals.NONE);
        assertEquals(npPolyval(TeaCache.FLUX.coefficients(), 0.010009765625),
                tc.decide(StepContext.of("r", 1, 5, Branch.COND), s).metric(), 0.0);
    }

    @Test
    void needsSignalOnlyWhereTheDecisionReadsIt() {
        TeaCache ret = TeaCache.of(TeaCache.WAN21_T2V_1_3B_RET);
        List<Integer> needed = new ArrayList<>();
        for (int i = 0; i < 10; i++) if (ret.needsSignal(StepContext.of("s", i, 10, Branch.UNCOND))) needed.add(i);
        assertEquals(List.of(5, 6, 7, 8, 9), needed);
        TeaCache flux = TeaCache.of(TeaCache.FLUX);
        assertFalse(flux.needsSignal(StepContext.of("s", 0, 10, Branch.COND)));
        assertTrue(flux.needsSignal(StepContext.of("s", 1, 10, Branch.COND)));
        assertFalse(flux.needsSignal(StepContext.of("s", 9, 10, Branch.COND)));
    }

    @Test
    void publishedCoefficientsAreTheNamedConstants() {
        assertArrayEquals(new double[] {4.98651651e+02, -2.83781631e+02, 5.58554382e+01, -3.82021401e+00, 2.64230861e-01},
                TeaCache.FLUX.coefficients(), 0.0);
        assertArrayEquals(new double[] {-1.53880483e+03, 8.43202495e+02, -1.34363087e+02, 7.97131516e+00, -5.23162339e-02},
                TeaCache.COGVIDEOX_5B.coefficients(), 0.0);
        assertEquals(0.4, TeaCache.FLUX.recommendedThreshold());
        assertEquals(0.08, TeaCache.WAN21_T2V_1_3B.recommendedThreshold());
        assertEquals(0.2, TeaCache.WAN21_T2V_14B.recommendedThreshold());
        assertEquals(0.3, TeaCache.COGVIDEOX_5B.recommendedThreshold());
        assertEquals(5, TeaCache.WAN21_T2V_14B_RET.forcedLeadingSteps());
        assertFalse(TeaCache.WAN21_T2V_14B_RET.forceLastStep());
        // the preset's array cannot be changed from outside
        TeaCache.FLUX.coefficients()[0] = 0;
        assertEquals(4.98651651e+02, TeaCache.FLUX.coefficients()[0]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TeaCache.Config.reference(TeaCache.FLUX).withThreshold(-0.1));
        assertTrue(e.getMessage().contains("rel_l1_thresh"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TeaCache.Config.comfyUi(TeaCache.FLUX, 0.4, 0.5, 1.5));
    }
}
