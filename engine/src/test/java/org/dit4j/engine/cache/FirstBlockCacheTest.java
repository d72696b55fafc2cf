package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** First-Block Cache against a literal transcription of ParaAttention's first_block_cache (utils.py). */
class FirstBlockCacheTest {

    /** A host array as a cacheable value. */
    record Arr(float[] v) implements AutoCloseable {
        @Override public void close() {}
    }

    /**
     * ParaAttention CacheContext + CachedTransformerBlocks.forward, decision part. Calls alternate cond, uncond when
     * {@code enableAlterCache} (the Wan adapter's default), else all calls are one branch.
     */
    static final class ParaAttentionRef {
        final double residualDiffThreshold;
        final int warmupSteps;
        final boolean enableAlterCache;
        int executedSteps = 0;
        boolean isAlterCache = true;
        final Map<String, float[]> buffers = new HashMap<>();
        final List<Double> diffs = new ArrayList<>();

        ParaAttentionRef(double threshold, int warmupSteps, boolean enableAlterCache) {
            this.residualDiffThreshold = threshold;
            this.warmupSteps = warmupSteps;
            this.enableAlterCache = enableAlterCache;
        }

        void markStepBegin() {
            if (!enableAlterCache) {
                executedSteps += 1;
            } else {
                isAlterCache = !isAlterCache;
                if (!isAlterCache) executedSteps += 1;
            }
        }

        String name(String n) { return enableAlterCache && isAlterCache ? n + "_alter" : n; }

        boolean isInWarmup() { return executedSteps - 1 < warmupSteps; }

        /** are_two_tensors_similar(t1, t2, threshold): (t1 - t2).abs().mean() / t1.abs().mean() < threshold. */
        boolean areTwoTensorsSimilar(float[] t1, float[] t2, double threshold) {
            if (threshold <= 0.0) return false;
            if (t1.length != t2.length) return false;
            double sd = 0, s1 = 0;
            for (int i = 0; i < t1.length; i++) sd += Math.abs((double) t1[i] - t2[i]);
            for (float x : t1) s1 += Math.abs((double) x);
            double meanDiff = sd / t1.length, meanT1 = s1 / t1.length;
            double diff = meanDiff / meanT1;
            diffs.add(diff);
            return diff < threshold;
        }

        /** One forward: returns can_use_cache. */
        boolean forward(float[] firstHiddenStatesResidual) {
            markStepBegin();
            boolean canUseCache;
            if (isInWarmup()) canUseCache = false;
            else if (residualDiffThreshold <= 0.0) canUseCache = false;
            else {
                float[] prev = buffers.get(name("first_hidden_states_residual"));
                canUseCache = prev != null && areTwoTensorsSimilar(prev, firstHiddenStatesResidual, residualDiffThreshold);
            }
            if (!canUseCache) buffers.put(name("first_hidden_states_residual"), firstHiddenStatesResidual);
            return canUseCache;
        }
    }

    /** Drives the policy through CacheRun exactly as a pipeline would, storing references as decisions ask. */
    static List<Decision> drive(FirstBlockCache fb, String req, int steps, List<Branch> branches, float[][][] residuals) {
        List<Decision> out = new ArrayList<>();
        try (CacheRun<Arr> run = fb.begin(req, steps)) {
            for (int i = 0; i < steps; i++) {
                for (Branch b : branches) {
                    float[] r = residuals[b.index()][i];
                    Arr ref = run.reference(b);
                    Signals s = run.needsSignal(i, b) && ref != null ? Signals.RelL1.ofHost(r, ref.v()) : Signals.NONE;
                    Decision d = run.decide(i, b, s);
                    if (d.updateSignalReference()) run.storeReference(b, new Arr(r));
                    if (d.compute()) run.storeResidual(b, CacheRun.Slot.HIDDEN, new Arr(new float[0]));
                    out.add(d);
                }
            }
        }
        return out;
    }

    static float[][][] residuals(Random rnd, int steps, int len, double drift) {
        float[][][] r = new float[2][steps][len];
        for (int b = 0; b < 2; b++) {
            float[] base = new float[len];
            for (int j = 0; j < len; j++) base[j] = (float) rnd.nextGaussian();
            for (int i = 0; i < steps; i++) {
                double step = drift * (0.2 + rnd.nextDouble() * (rnd.nextInt(5) == 0 ? 6 : 1));
                for (int j = 0; j < len; j++) base[j] += (float) (step * rnd.nextGaussian());
                r[b][i] = base.clone();
            }
        }
        return r;
    }

    @Test
    void matchesParaAttentionWithAlternatingBranches() {
        Random rnd = new Random(21);
        int hitCount = 0, computeCount = 0;
        for (int trial = 0; trial < 150; trial++) {
            int steps = 1 + rnd.nextInt(40);
            double thresh = trial % 19 == 0 ? 0 : 0.02 + rnd.nextDouble() * 0.2;
            int warmup = rnd.nextInt(3) == 0 ? rnd.nextInt(5) : 0;
            boolean cfg = rnd.nextBoolean();
            float[][][] res = residuals(rnd, steps, 32, 0.02 + rnd.nextDouble() * 0.06);
            ParaAttentionRef ref = new ParaAttentionRef(thresh, warmup, cfg);
            List<Boolean> hits = new ArrayList<>();
            for (int i = 0; i < steps; i++) {
                hits.add(ref.forward(res[0][i]));
                if (cfg) hits.add(ref.forward(res[1][i]));
            }
            List<Decision> got = drive(new FirstBlockCache(FirstBlockCache.Config.of(thresh).withWarmup(warmup)), "t" + trial, steps,
                    cfg ? List.of(Branch.COND, Branch.UNCOND) : List.of(Branch.COND), res);
            assertEquals(hits.size(), got.size());
            int di = 0;
            for (int c = 0; c < got.size(); c++) {
                Decision d = got.get(c);
                assertEquals(hits.get(c), d.skip(), "trial " + trial + " call " + c + " (thresh " + thresh + ", warmup " + warmup + ")");
                if (d.skip()) hitCount++; else computeCount++;
                if (!Double.isNaN(d.metric())) assertEquals(ref.diffs.get(di++), d.metric(), 0.0, "trial " + trial + " call " + c + " diff");
            }
            assertEquals(ref.diffs.size(), di, "trial " + trial + ": same number of comparisons");
        }
        assertTrue(hitCount > 200 && computeCount > 200, "the sequences exercise both outcomes: " + hitCount + " hits, " + computeCount + " computed");
    }

    @Test
    void thresholdBoundaryIsStrictAndHitsKeepTheReference() {
        float[] r0 = {1, 1, 1, 1};
        float[] r1 = {1, 1, 1, 1.5f};   // diff vs r0: 0.5/4 / 1 = 0.125 exactly
        float[] r2 = {1, 1, 1, 2f};     // vs r0: 0.25 ; vs r1 it would be 0.125
        float[][][] res = {{r0, r1, r2}, {r0, r1, r2}};
        List<Decision> at = drive(FirstBlockCache.of(0.125), "b", 3, List.of(Branch.COND), res);
        assertTrue(at.get(1).compute(), "diff == threshold is not a hit");
        assertEquals(0.125, at.get(1).metric(), 0.0);
        List<Decision> above = drive(FirstBlockCache.of(Math.nextUp(0.125)), "b", 3, List.of(Branch.COND), res);
        assertTrue(above.get(1).skip(), "diff one ulp under the threshold hits");
        assertFalse(above.get(1).updateSignalReference());
        assertTrue(above.get(2).compute());
        assertEquals(0.25, above.get(2).metric(), 0.0, "compared with r0: a hit does not replace the reference");
        List<Decision> off = drive(FirstBlockCache.of(0), "b", 3, List.of(Branch.COND, Branch.UNCOND), res);
        for (Decision d : off) {
            assertTrue(d.compute());
            assertEquals(Decision.Reason.DISABLED, d.reason());
        }
    }

    @Test
    void warmupAndSeparateBranches() {
        float[] a = {1, 2, 3, 4};
        float[][][] res = {{a, a, a, a, a}, {a, a, a, a, a}};
        List<Decision> d = drive(new FirstBlockCache(FirstBlockCache.Config.of(0.08).withWarmup(2)), "w", 5,
                List.of(Branch.COND, Branch.UNCOND), res);
        // calls: c0 u0 c1 u1 c2 u2 …; warmup steps 0, 1 compute in both branches, then identical residuals hit
        for (int c = 0; c < 4; c++) assertEquals(Decision.Reason.WARMUP, d.get(c).reason());
        for (int c = 4; c < 10; c++) assertTrue(d.get(c).skip(), "call " + c);
        FirstBlockCache fb = FirstBlockCache.of(0.08);
        assertTrue(fb.needsSignal(StepContext.of("x", 0, 5, Branch.COND)));
        assertFalse(new FirstBlockCache(FirstBlockCache.Config.of(0.08).withWarmup(2)).needsSignal(StepContext.of("x", 1, 5, Branch.COND)));
        // uncond changes a lot, cond does not: only uncond computes
        float[] b = {5, -2, 7, 0.5f};
        float[][][] mixed = {{a, a, a}, {a, b, a}};
        List<Decision> m = drive(FirstBlockCache.of(0.08), "m", 3, List.of(Branch.COND, Branch.UNCOND), mixed);
        assertTrue(m.get(2).skip());       // c1
        assertTrue(m.get(3).compute());    // u1
        assertTrue(m.get(4).skip());       // c2
        assertTrue(m.get(5).compute());    // u2 (reference is now b)
    }

    @Test
    void publishedThresholdsAndValidation() {
        assertEquals(0.08, FirstBlockCache.FLUX_THRESHOLD);
        assertEquals(0.12, FirstBlockCache.FLUX_FP8_THRESHOLD);
        assertThrows(IllegalArgumentException.class, () -> FirstBlockCache.of(-0.1));
        assertThrows(IllegalArgumentException.class, () -> FirstBlockCache.Config.of(0.1).withWarmup(-1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Signals.RelL1(1, 0, 1, 1));
        assertTrue(e.getMessage().contains("positive element counts"), e.getMessage());
    }
}
