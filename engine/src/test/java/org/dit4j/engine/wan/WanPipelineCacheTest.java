package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CacheModel;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.cache.CacheTrace;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.Signals;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.flux.Repeatable;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Step caches in the whole Wan pipeline (CPU, the tiny random pipeline of {@link TinyWan}): threshold 0 gives the
 * uncached latent bit for bit, with and without CFG; with a threshold the computed/skipped pattern is the policy's on
 * the signals the model produced; MagCache follows an independent transcription of MagCache4Wan2.1's decision loop
 * with its nearest interpolation of the published 50-step table; state does not leak between requests.
 */
class WanPipelineCacheTest {
    static final int STEPS = 10;

    @TempDir static Path tmp;
    static Ops ops;
    static WanPipeline pipe;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        pipe = new WanPipeline(ops, WanModelResolver.fromDiffusersFolder(TinyWan.writeDiffusers(tmp.resolve("tiny-wan"), 21)),
                WanPipeline.Settings.defaults(ops));
        // the CPU backend's first calls in a JVM round some sums differently from later ones (JIT): warm up, both paths
        for (int i = 0; i < 2; i++) {
            pipe.generate(request(), FluxProgress.NONE);
            pipe.generate(request(), FluxProgress.NONE, tea(0));
        }
    }

    @AfterAll static void tearDown() {
        pipe.close();
        ops.close();
    }

    static WanRequest request() {
        return WanRequest.of("a red fox in the snow", 7).withSize(48, 32).withFrames(9).withSteps(STEPS).withGuidance(5f);
    }

    static TeaCache tea(double t) { return new TeaCache(TeaCache.Config.reference(TeaCache.WAN21_T2V_1_3B).withThreshold(t)); }

    static TeaCache teaRet(double t) { return new TeaCache(TeaCache.Config.reference(TeaCache.WAN21_T2V_1_3B_RET).withThreshold(t)); }

    /**
     * TeaCache presets on Wan's two signals with the rescale polynomial δ ↦ δ: the tiny random model's time embedding
     * moves by δ ≈ 0.6–1.2 per step of a 10-step run, far outside the range the published polynomials were fitted on
     * (there TeaCache4Wan2.1's coefficients only compute, the ret-mode ones only skip). The step rules are the
     * published presets' (first step and last forced for e; first five forced for e0).
     */
    static final TeaCache.Preset TINY_E = new TeaCache.Preset("tiny-e", TeaCache.WAN21_T2V_1_3B.signal(), new double[] {1, 0},
            TeaCache.WAN21_T2V_1_3B.forcedLeadingSteps(), TeaCache.WAN21_T2V_1_3B.forceLastStep(), 1.5, "test");
    static final TeaCache.Preset TINY_E0 = new TeaCache.Preset("tiny-e0", TeaCache.WAN21_T2V_1_3B_RET.signal(), new double[] {1, 0},
            TeaCache.WAN21_T2V_1_3B_RET.forcedLeadingSteps(), TeaCache.WAN21_T2V_1_3B_RET.forceLastStep(), 1.2, "test");

    static TeaCache linearTea(TeaCache.Preset p) { return TeaCache.of(p); }

    static MagCache mag(double t) { return new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withThreshold(t)); }

    @Test void thresholdZeroReproducesTheUncachedLatentBitForBit() {
        for (WanRequest req : List.of(request(), request().withGuidance(1f))) {
            for (StepCache p : new StepCache[] {tea(0), teaRet(0), mag(0), FirstBlockCache.of(0)}) {
                Repeatable.check(() -> {
                    WanPipeline.Result base = pipe.generate(req, FluxProgress.NONE);
                    assertNull(base.cache(), "no cache, no report");
                    WanPipeline.Result r = pipe.generate(req, FluxProgress.NONE, p);
                    assertNotNull(r.cache());
                    assertEquals(req.cfg() ? 2 : 1, r.cache().summary().branches().size());
                    for (Branch b : r.cache().summary().branches()) assertEquals(STEPS, r.cache().summary().computed(b), p.describe());
                    assertArrayEquals(base.latents(), r.latents(), 0f, p.describe() + (req.cfg() ? " with CFG" : "")
                            + ": the staged transformer must give the uncached latent");
                });
            }
        }
    }

    @Test void skippedStepsAreThePolicysDecisionsOnTheMeasuredSignals() {
        WanPipeline.Result base = pipe.generate(request(), FluxProgress.NONE);
        for (StepCache p : new StepCache[] {linearTea(TINY_E), linearTea(TINY_E0), FirstBlockCache.of(FB_THRESHOLD), mag(MAG_THRESHOLD)}) {
            WanPipeline.Result r = pipe.generate(request(), FluxProgress.NONE, p);
            RunSummary s = r.cache().summary();
            assertEquals(List.of(Branch.COND, Branch.UNCOND), s.branches());
            StepCache fresh = switch (p) {
                case TeaCache t -> new TeaCache(t.config());
                case FirstBlockCache f -> new FirstBlockCache(f.config());
                case MagCache m -> new MagCache(m.config());
                default -> throw new AssertionError(p);
            };
            RunSummary replay = r.cache().trace().replay(fresh, STEPS);
            for (Branch b : Branch.values()) {
                assertTrue(s.skipped(b) > 0 && s.computed(b) > 2, p.describe() + ": " + b.label() + " must both compute and skip: " + s);
                assertEquals(s.pattern(b), replay.pattern(b), p.describe() + " " + b.label());
                // each branch's calls alone, through a fresh policy, decide the same: no state shared between the branches
                CacheTrace only = new CacheTrace();
                for (CacheTrace.Call c : r.cache().trace().calls(b)) only.record(c.step(), c.branch(), c.signals(), c.decision());
                StepCache fresh2 = p instanceof TeaCache t ? new TeaCache(t.config()) : p instanceof MagCache m ? new MagCache(m.config())
                        : new FirstBlockCache(((FirstBlockCache) p).config());
                assertEquals(s.pattern(b), only.replay(fresh2, STEPS).pattern(b), p.describe() + " " + b.label() + " alone");
            }
            for (CacheTrace.Call c : r.cache().trace().calls()) {
                if (p instanceof MagCache) assertEquals(Signals.NONE, c.signals());
                if (c.signals() instanceof Signals.RelL1 rel) {
                    long d = TinyWan.TRANSFORMER.dim();
                    long expected = p == null ? 0 : p instanceof FirstBlockCache ? 3L * 2 * 3 * d     // B·L·D: 3×2×3 tokens
                            : ((TeaCache) p).config().preset() == TINY_E ? d : 6 * d;
                    assertEquals(expected, rel.diffCount(), p.describe() + ": elements of the signal");
                }
            }
            assertTrue(maxAbsDiff(base.latents(), r.latents()) > 0, p.describe() + " skipped steps but the latent is unchanged");
            for (float v : r.latents()) assertTrue(Float.isFinite(v));
            assertTrue(r.cache().policy().startsWith(p.name()));
            assertTrue(s.toString().contains("uncond"), s.toString());
        }
    }

    /** MagCache4Wan2.1 {@code nearest_interp}: index round-half-even(i·(L−1)/(N−1)); N = 1 takes the last entry. */
    static double[] nearestInterp(double[] src, int n) {
        if (n == 1) return new double[] {src[src.length - 1]};
        double scale = (double) (src.length - 1) / (n - 1);
        double[] out = new double[n];
        for (int i = 0; i < n; i++) out[i] = src[(int) Math.rint(i * scale)];
        return out;
    }

    /**
     * MagCache4Wan2.1 {@code magcache_forward} transcribed: calls counted cond, uncond interleaved (cnt), the table
     * interpolated per branch when its length is not 2·N, retention {@code cnt ≥ int(2N·r)}, skip while
     * {@code err < thresh} and {@code steps ≤ K}. Returns the patterns of cond and uncond.
     */
    static String[] refMagCache4Wan(double[] interleaved, int n, double thresh, int k, double retention) {
        double[] mag = interleaved;
        if (mag.length != 2 * n) {
            double[] c = new double[mag.length / 2], u = new double[mag.length / 2];
            for (int j = 0; j < c.length; j++) {
                c[j] = mag[2 * j];
                u[j] = mag[2 * j + 1];
            }
            double[] ci = nearestInterp(c, n), ui = nearestInterp(u, n);
            mag = new double[2 * n];
            for (int j = 0; j < n; j++) {
                mag[2 * j] = ci[j];
                mag[2 * j + 1] = ui[j];
            }
        }
        double[] ratio = {1, 1}, err = {0, 0};
        int[] steps = {0, 0};
        StringBuilder[] p = {new StringBuilder(), new StringBuilder()};
        int numSteps = 2 * n;
        for (int cnt = 0; cnt < numSteps; cnt++) {
            int b = cnt % 2;
            boolean skip = false;
            if (cnt >= (int) (numSteps * retention)) {
                ratio[b] *= mag[cnt];
                steps[b] += 1;
                err[b] += Math.abs(1 - ratio[b]);
                if (err[b] < thresh && steps[b] <= k) skip = true;
                else {
                    err[b] = 0;
                    steps[b] = 0;
                    ratio[b] = 1.0;
                }
            }
            p[b].append(skip ? '.' : '#');
        }
        return new String[] {p[0].toString(), p[1].toString()};
    }

    @Test void magCacheInterpolatesThePublishedWanTablesAsMagCache4Wan() {
        for (int n : new int[] {STEPS, 13}) {
            for (MagCache.Preset preset : new MagCache.Preset[] {MagCache.WAN21_T2V_1_3B, MagCache.WAN21_T2V_14B}) {
                MagCache p = MagCache.of(preset);               // the README defaults: 0.12/K4/r0.2 and 0.24/K6/r0.2
                String[] ref = refMagCache4Wan(preset.table().interleaved(), n, preset.threshold(), preset.k(), preset.retentionRatio());
                WanPipeline.Result r = pipe.generate(request().withSteps(n), FluxProgress.NONE, p);
                RunSummary s = r.cache().summary();
                assertEquals(ref[0], s.pattern(Branch.COND), preset + " at " + n + " steps, cond");
                assertEquals(ref[1], s.pattern(Branch.UNCOND), preset + " at " + n + " steps, uncond");
                assertTrue(s.skipped(Branch.COND) > 0, preset + " at " + n + " steps skips: " + s);
            }
        }
        // the interpolation itself: 50 → 10 steps picks calibrated steps round-half-even(i·49/9)
        MagCache.Config c = MagCache.Config.reference(MagCache.WAN21_T2V_1_3B);
        int[] picked = new int[STEPS];
        for (int i = 0; i < STEPS; i++) picked[i] = c.calibratedStep(i, STEPS);
        assertArrayEquals(new int[] {0, 5, 11, 16, 22, 27, 33, 38, 44, 49}, picked);
    }

    @Test void stateIsResetBetweenRequests() {
        TeaCache p = linearTea(TINY_E);
        Repeatable.check(() -> {
            WanPipeline.Result a = pipe.generate(request(), FluxProgress.NONE, p);
            assertEquals(0, p.openRequests(), "a finished request leaves no state behind");
            pipe.generate(request().withGuidance(1f), FluxProgress.NONE, p);
            WanPipeline.Result b = pipe.generate(request(), FluxProgress.NONE, p);
            for (Branch br : Branch.values()) assertEquals(a.cache().summary().pattern(br), b.cache().summary().pattern(br));
            assertArrayEquals(a.latents(), b.latents(), 0f, "the same request with the same policy instance gives the same latent");
            assertTrue(!a.cache().summary().requestId().equals(b.cache().summary().requestId()), "every generation is its own request");
        });
    }

    @Test void calibrationRecordsAGammaTableOfTheRunsLength() {
        MagCacheCalibration cal = pipe.magCacheCalibration(request());
        assertEquals(STEPS, cal.totalSteps());
        assertEquals(2, cal.branches());
        WanPipeline.Result r = pipe.generate(request(), FluxProgress.NONE, NoCache.INSTANCE, cal);
        assertTrue(cal.complete());
        assertSame(cal, r.cache().calibration());
        assertEquals(2 * STEPS, cal.table().interleaved().length);
        Repeatable.check(() -> assertArrayEquals(pipe.generate(request(), FluxProgress.NONE).latents(),
                pipe.generate(request(), FluxProgress.NONE, NoCache.INSTANCE, pipe.magCacheCalibration(request())).latents(), 0f,
                "the calibration run is the uncached run"));
        assertThrows(IllegalArgumentException.class, () -> pipe.generate(request(), FluxProgress.NONE, tea(0.4),
                pipe.magCacheCalibration(request())), "calibration with a skipping policy");
    }

    @Test void cacheSpecsBuildTheWanPolicies() {
        assertEquals(CacheModel.WAN21_T2V_1_3B, pipe.cacheModel(), "non-standard sizes take the 1.3B constants");
        assertEquals(TeaCache.WAN21_T2V_1_3B, ((TeaCache) pipe.stepCache(CacheSpec.parse("teacache"))).config().preset());
        assertEquals(TeaCache.WAN21_T2V_1_3B_RET, ((TeaCache) pipe.stepCache(CacheSpec.parse("teacache-ret:0.2"))).config().preset());
        assertEquals(MagCache.WAN21_T2V_1_3B_50, ((MagCache) pipe.stepCache(CacheSpec.parse("magcache"))).config().table());
        assertEquals(0.1, ((FirstBlockCache) pipe.stepCache(CacheSpec.parse("fbcache:0.1"))).config().threshold());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> pipe.stepCache(CacheSpec.parse("fbcache")));
        assertTrue(e.getMessage().contains("threshold"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> pipe.generate(request(), FluxProgress.NONE, TeaCache.of(TeaCache.FLUX)));
    }

    /** Thresholds at which the tiny model both computes and skips in 10 steps with CFG (checked by the tests above). */
    static final double FB_THRESHOLD = 0.13, MAG_THRESHOLD = 0.12;

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
