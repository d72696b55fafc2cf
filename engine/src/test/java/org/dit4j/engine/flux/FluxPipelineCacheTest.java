package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.cache.Branch;
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
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Step caches in the whole Flux pipeline (CPU, the tiny random dev pipeline of {@link TinyFlux}): threshold 0 gives
 * the uncached latent bit for bit; with a threshold the computed/skipped pattern is the policy's on the signals the
 * model produced; true CFG keeps two branches; state does not leak between requests; calibration records a γ table.
 */
class FluxPipelineCacheTest {
    static final int STEPS = 8;

    @TempDir static Path tmp;
    static Ops ops;
    static FluxPipeline pipe;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        Path dev = TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11);
        pipe = new FluxPipeline(ops, FluxModelResolver.fromDiffusersFolder(dev), FluxPipeline.Settings.defaults(ops));
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

    static FluxRequest request() {
        return FluxRequest.of("a photo of a cat", 42).withSize(96, 64).withSteps(STEPS).withT5Length(32);
    }

    static FluxRequest cfgRequest() { return request().withNegative("blurry, low quality", 4f); }

    static TeaCache tea(double t) { return new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(t)); }

    static MagCache mag(double t) { return new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(t)); }

    @Test void thresholdZeroReproducesTheUncachedLatentBitForBit() {
        for (FluxRequest req : List.of(request(), cfgRequest())) {
            for (StepCache p : new StepCache[] {tea(0), mag(0), FirstBlockCache.of(0)}) {
                Repeatable.check(() -> {
                    FluxPipeline.Result base = pipe.generate(req, FluxProgress.NONE);
                    assertNull(base.cache(), "no cache, no report");
                    FluxPipeline.Result r = pipe.generate(req, FluxProgress.NONE, p);
                    assertNotNull(r.cache());
                    for (Branch b : r.cache().summary().branches()) assertEquals(STEPS, r.cache().summary().computed(b), p.describe());
                    assertEquals(req.trueCfg() ? 2 : 1, r.cache().summary().branches().size());
                    assertArrayEquals(base.latents(), r.latents(), 0f, p.describe() + (req.trueCfg() ? " with true CFG" : "")
                            + ": the staged transformer must give the uncached latent");
                });
            }
        }
    }

    @Test void skippedStepsAreThePolicysDecisionsOnTheMeasuredSignals() {
        FluxPipeline.Result base = pipe.generate(request(), FluxProgress.NONE);
        for (StepCache p : new StepCache[] {tea(TEA_THRESHOLD), FirstBlockCache.of(FB_THRESHOLD), mag(MAG_THRESHOLD)}) {
            FluxPipeline.Result r = pipe.generate(request(), FluxProgress.NONE, p);
            RunSummary s = r.cache().summary();
            assertTrue(s.skipped(Branch.COND) > 0 && s.computed(Branch.COND) > 2, "must both compute and skip: " + s);
            StepCache fresh = switch (p) {
                case TeaCache t -> new TeaCache(t.config());
                case FirstBlockCache f -> new FirstBlockCache(f.config());
                case MagCache m -> new MagCache(m.config());
                default -> throw new AssertionError(p);
            };
            assertEquals(s.pattern(Branch.COND), r.cache().trace().replay(fresh, STEPS).pattern(Branch.COND), p.describe());
            // measured signals exactly where the policy needs them, with the element count of the image tokens × D
            for (CacheTrace.Call c : r.cache().trace().calls()) {
                if (c.signals() instanceof Signals.RelL1 rel) assertEquals(4L * 6 * 128, rel.diffCount(), "B·N·D of the signal");
                if (p instanceof MagCache) assertEquals(Signals.NONE, c.signals());
            }
            // skipping changed the result, and the result is still a finite latent
            assertTrue(maxAbsDiff(base.latents(), r.latents()) > 0, p.describe() + " skipped steps but the latent is unchanged");
            for (float v : r.latents()) assertTrue(Float.isFinite(v));
            assertTrue(r.cache().policy().startsWith(p.name()));
        }
    }

    @Test void trueCfgKeepsTheConditionalAndUnconditionalBranchesApart() {
        TeaCache p = tea(TEA_THRESHOLD);
        FluxPipeline.Result r = pipe.generate(cfgRequest(), FluxProgress.NONE, p);
        RunSummary s = r.cache().summary();
        assertEquals(List.of(Branch.COND, Branch.UNCOND), s.branches());
        for (Branch b : Branch.values()) {
            assertEquals(STEPS, s.entries(b).size());
            assertTrue(s.skipped(b) > 0 && s.computed(b) > 2, b.label() + " must both compute and skip: " + s);
            // each branch's calls alone, through a fresh policy, decide the same: no state shared between the branches
            CacheTrace only = new CacheTrace();
            for (CacheTrace.Call c : r.cache().trace().calls(b)) only.record(c.step(), c.branch(), c.signals(), c.decision());
            assertEquals(s.pattern(b), only.replay(tea(TEA_THRESHOLD), STEPS).pattern(b), b.label());
        }
        Signals.RelL1 c = (Signals.RelL1) r.cache().trace().calls(Branch.COND).get(1).signals();
        Signals.RelL1 u = (Signals.RelL1) r.cache().trace().calls(Branch.UNCOND).get(1).signals();
        assertTrue(c.absDiffSum() != u.absDiffSum(), "the branches measure their own signals (different prompts)");
        assertTrue(s.toString().contains("cond") && s.toString().contains("uncond"), s.toString());
    }

    @Test void stateIsResetBetweenRequests() {
        TeaCache p = tea(TEA_THRESHOLD);
        Repeatable.check(() -> {
            FluxPipeline.Result a = pipe.generate(request(), FluxProgress.NONE, p);
            assertEquals(0, p.openRequests(), "a finished request leaves no state behind");
            pipe.generate(request().withNegative("x", 3f), FluxProgress.NONE, p);            // another request in between
            FluxPipeline.Result b = pipe.generate(request(), FluxProgress.NONE, p);
            assertEquals(a.cache().summary().pattern(Branch.COND), b.cache().summary().pattern(Branch.COND));
            assertArrayEquals(a.latents(), b.latents(), 0f, "the same request with the same policy instance gives the same latent");
            assertEquals(0, p.openRequests());
            assertTrue(!a.cache().summary().requestId().equals(b.cache().summary().requestId()), "every generation is its own request");
        });
    }

    @Test void calibrationRecordsAGammaTableOfTheRunsLength() throws Exception {
        for (FluxRequest req : List.of(request(), cfgRequest())) {
            MagCacheCalibration cal = pipe.magCacheCalibration(req);
            int branches = req.trueCfg() ? 2 : 1;
            assertEquals(STEPS, cal.totalSteps());
            assertEquals(branches, cal.branches());
            FluxPipeline.Result r = pipe.generate(req, FluxProgress.NONE, NoCache.INSTANCE, cal);
            assertTrue(cal.complete());
            assertEquals(cal, r.cache().calibration());
            MagCache.Table t = cal.table();
            assertEquals(STEPS, t.steps());
            assertEquals(STEPS * branches, t.interleaved().length);
            for (int b = 0; b < branches; b++) assertEquals(1.0, t.interleaved()[b], "step 0 is the padding 1.0");
            // the calibration run is the uncached run
            Repeatable.check(() -> assertArrayEquals(pipe.generate(req, FluxProgress.NONE).latents(),
                    pipe.generate(req, FluxProgress.NONE, NoCache.INSTANCE, pipe.magCacheCalibration(req)).latents(), 0f));
            Path json = tmp.resolve("gamma-" + branches + ".json");
            cal.writeJson(json);
            MagCache.Table back = MagCache.Table.fromJson(Files.readString(json));
            assertArrayEquals(t.interleaved(), back.interleaved(), 0.0);
            assertEquals("flux-dev-" + STEPS, back.id());
            // the recorded table drives MagCache for this step count
            MagCache m = new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withTable(back));
            assertEquals(STEPS * branches, pipe.generate(req, FluxProgress.NONE, m).cache().trace().calls().size());
        }
        assertThrows(IllegalArgumentException.class, () -> pipe.generate(request(), FluxProgress.NONE, tea(0.4),
                pipe.magCacheCalibration(request())), "calibration with a skipping policy");
    }

    @Test void cacheSpecsBuildTheFluxPolicies() {
        assertEquals(TeaCache.FLUX, ((TeaCache) pipe.stepCache(CacheSpec.parse("teacache"))).config().preset());
        assertEquals(0.25, ((TeaCache) pipe.stepCache(CacheSpec.parse("teacache:0.25"))).config().threshold());
        assertEquals(MagCache.FLUX_DEV_28, ((MagCache) pipe.stepCache(CacheSpec.parse("magcache:0.1,3"))).config().table());
        assertEquals(FirstBlockCache.FLUX_THRESHOLD, ((FirstBlockCache) pipe.stepCache(CacheSpec.parse("fbcache"))).config().threshold());
        assertThrows(IllegalArgumentException.class, () -> pipe.generate(request(), FluxProgress.NONE, TeaCache.of(TeaCache.COGVIDEOX_5B)));
    }

    /** Thresholds at which the tiny model both computes and skips in 8 steps (checked by the tests above). */
    static final double TEA_THRESHOLD = 0.5, FB_THRESHOLD = 0.5, MAG_THRESHOLD = 0.1;

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
