package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CacheTrace;
import org.dit4j.engine.cache.Decision;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.Signals;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link FluxCachedTransformer} on the CPU against the plain model API: a tiny random Flux (2 double + 2 single
 * blocks) is driven through a synthetic run whose input drifts slowly, with a few large jumps so that every policy
 * both computes and skips. Every velocity is checked bit for bit against an independent computation: computed steps
 * against {@link FluxTransformer#forward}, skipped steps against finalLayer(base + the residual of the branch's last
 * computed step); the signals against {@link Ops#absSums} of independently computed tensors; the decisions against a
 * replay of the recorded signals through a fresh policy.
 */
@SuppressWarnings("try")
class FluxCachedTransformerTest {
    static final int STEPS = 12;
    /** Steps where the input jumps (so the policies must compute again). */
    static final int[] JUMPS = {5, 9};
    static final FluxConfig CFG = new FluxConfig(64, 2, 2, 2, 16, 16, 32, 24, 128, FluxConfig.defaultAxesDim(32), 10000, true);
    static final long LAT_H = 8, LAT_W = 6, N_TXT = 6;

    static Ops ops;
    static FluxWeights weights;
    static FluxTransformer model;
    static Tensor imgIds, txtIds;

    @BeforeAll static void setUp() {
        ops = new CpuBackend();
        try (RandomWeightSource src = new RandomWeightSource(FluxWeights.expectedShapes(CFG), DType.F32, 5)) {
            weights = FluxWeights.load(ops, src, CFG, DType.F32);
        }
        model = new FluxTransformer(ops, weights);
        imgIds = FluxPacking.imageIds(LAT_H, LAT_W);
        txtIds = FluxPacking.textIds(N_TXT);
        // the CPU backend's first calls in a JVM round some sums differently (JIT tiers): warm up before comparing bits
        Run warm = new Run(1, 1);
        for (int i = 0; i < 12; i++) {
            try (Scope s = Scope.open(); FluxTransformer.Conditioning c = warm.cond(0)) {
                model.forward(warm.img(0), warm.texts.get(Branch.COND).txt(), warm.texts.get(Branch.COND).y(), c);
            }
        }
    }

    @AfterAll static void tearDown() {
        weights.close();
        ops.close();
    }

    /** The inputs of a synthetic run: per-step packed latents (a random walk with jumps) and timesteps. */
    static final class Run {
        final long b;
        final float[][] imgs = new float[STEPS][];
        final float[] t = new float[STEPS];
        final Map<Branch, FluxCachedTransformer.Text> texts = new EnumMap<>(Branch.class);

        Run(long b, int branches) {
            this.b = b;
            Random r = new Random(17);
            int n = (int) (b * (LAT_H / 2) * (LAT_W / 2) * CFG.inChannels());
            float[] x = new float[n];
            for (int k = 0; k < n; k++) x[k] = (float) r.nextGaussian();
            for (int i = 0; i < STEPS; i++) {
                double scale = contains(JUMPS, i) ? 0.8 : 0.002;
                for (int k = 0; k < n; k++) x[k] += (float) (scale * r.nextGaussian());
                imgs[i] = x.clone();
                t[i] = 1f - 0.004f * i - (i >= JUMPS[0] ? 0.2f : 0f);
            }
            for (int br = 0; br < branches; br++) {
                Tensor txt = Tensor.of(random(r, (int) (b * N_TXT * CFG.contextDim())), b, N_TXT, CFG.contextDim());
                Tensor y = Tensor.of(random(r, (int) (b * CFG.vecDim())), b, CFG.vecDim());
                texts.put(Branch.values()[br], new FluxCachedTransformer.Text(txt, y));
            }
        }

        Tensor img(int i) { return Tensor.of(imgs[i], b, (LAT_H / 2) * (LAT_W / 2), CFG.inChannels()); }

        float[] times(int i) {
            float[] ts = new float[(int) b];
            java.util.Arrays.fill(ts, t[i]);
            return ts;
        }

        FluxTransformer.Conditioning cond(int i) {
            float[] g = new float[(int) b];
            java.util.Arrays.fill(g, 3.5f);
            return model.prepare(times(i), g, imgIds, txtIds, DType.F32);
        }
    }

    static boolean contains(int[] a, int v) {
        for (int x : a) if (x == v) return true;
        return false;
    }

    static float[] random(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    /** The cached run's outputs: velocities per branch and step, the summary and the trace. */
    record Outcome(Map<Branch, List<float[]>> velocities, RunSummary summary, CacheTrace trace) {}

    /** Drives a cached run the way the pipeline does: fixed inputs overwritten before every step. */
    static Outcome drive(Run run, StepCache policy, MagCacheCalibration calibration) {
        return drive(run, policy, calibration, false);
    }

    static Outcome drive(Run run, StepCache policy, MagCacheCalibration calibration, boolean residualsOnHost) {
        Map<Branch, List<float[]>> v = new EnumMap<>(Branch.class);
        for (Branch br : run.texts.keySet()) v.put(br, new ArrayList<>());
        try (FluxTransformer.Conditioning cond = run.cond(0)) {
            Tensor imgIn = ops.empty(DType.F32, org.dit4j.core.tensor.Shape.of(run.b, (LAT_H / 2) * (LAT_W / 2), CFG.inChannels()));
            FluxCachedTransformer.Options o = FluxCachedTransformer.Options.eager().withCalibration(calibration)
                    .withResidualsOnHost(residualsOnHost);
            try (FluxCachedTransformer ct = new FluxCachedTransformer(ops, model, policy, "test", STEPS, imgIn, cond, run.texts, o)) {
                for (int i = 0; i < STEPS; i++) {
                    try (Scope s = Scope.open()) {
                        FluxCachedTransformer.copyInto(ops, imgIn, run.img(i));
                        FluxCachedTransformer.copyInto(ops, cond.timeSin(), FluxEmbeddings.sinEmb(ops, run.times(i), DType.F32));
                        for (Branch br : run.texts.keySet()) v.get(br).add(ct.velocity(i, br).toFloatArray());
                    }
                }
                return new Outcome(v, ct.summary(), ct.trace());
            } finally {
                imgIn.close();
            }
        }
    }

    /**
     * The independent check of one branch: replays the run with the plain model API, following the recorded
     * decisions, and compares every velocity and every measured signal bit for bit.
     */
    static void checkAgainstModel(Run run, Branch br, FluxCachedTransformer.Signal signal, Outcome out) {
        FluxCachedTransformer.Text text = run.texts.get(br);
        List<CacheTrace.Call> calls = out.trace().calls(br);
        assertEquals(STEPS, calls.size());
        float[] residual = null, reference = null;        // the branch's cache, kept on the host
        for (int i = 0; i < STEPS; i++) {
            CacheTrace.Call call = calls.get(i);
            assertEquals(i, call.step());
            try (Scope s = Scope.open(); FluxTransformer.Conditioning c = run.cond(i)) {
                FluxTransformer.Hidden e = model.embed(run.img(i), text.txt(), text.y(), c);
                FluxTransformer.Hidden from = signal == FluxCachedTransformer.Signal.FIRST_BLOCK_RESIDUAL ? model.firstBlock(e, c) : e;
                Tensor sig = switch (signal) {
                    case NONE -> null;
                    case MODULATED_INPUT -> model.modulatedInput(e);
                    case FIRST_BLOCK_RESIDUAL -> ops.sub(from.img(), e.img());
                };
                // the signal the policy saw
                if (call.signals() instanceof Signals.RelL1 r) {
                    Tensor ref = Tensor.of(reference, sig.shape().dims());
                    double[] sums = ops.absSums(sig, ref);
                    assertEquals(sums[0], r.absDiffSum(), 0.0, br + " step " + i + " Σ|x − ref|");
                    assertEquals(sums[1], r.absRefSum(), 0.0, br + " step " + i + " Σ|ref|");
                    assertEquals(sig.numel(), r.diffCount());
                } else if (signal != FluxCachedTransformer.Signal.NONE && i > 0) {
                    assertTrue(call.decision().reason() == Decision.Reason.FORCED || call.decision().reason() == Decision.Reason.WARMUP
                            || call.decision().reason() == Decision.Reason.DISABLED, br + " step " + i + ": no signal measured but " + call.decision());
                }
                if (call.decision().updateSignalReference()) reference = sig.toFloatArray();
                float[] expected;
                if (call.decision().skip()) {
                    Tensor res = Tensor.of(residual, from.img().shape().dims());
                    expected = model.applyResidual(from.img(), res, e.vecSilu()).toFloatArray();
                } else {
                    int first = signal == FluxCachedTransformer.Signal.FIRST_BLOCK_RESIDUAL ? 1 : 0;
                    Tensor o = model.remainingBlocks(from, c, first);
                    residual = ops.sub(o, from.img()).toFloatArray();
                    expected = model.finalLayer(o, e.vecSilu()).toFloatArray();
                    // a computed step is the plain forward, bit for bit
                    assertArrayEquals(model.forward(run.img(i), text.txt(), text.y(), c).toFloatArray(), expected, 0f,
                            br + " step " + i + ": the staged path must equal forward");
                }
                assertArrayEquals(expected, out.velocities().get(br).get(i), 0f, br + " step " + i + " (" + call.decision() + ")");
            }
        }
    }

    /** {@link #drive}, then {@link #checkAgainstModel} for every branch (bit for bit; see {@link Repeatable}). */
    static Outcome driveAndCheck(Run run, StepCache policy, FluxCachedTransformer.Signal signal) {
        Outcome[] out = new Outcome[1];
        Repeatable.check(() -> {
            out[0] = drive(run, policy, null);
            for (Branch br : run.texts.keySet()) checkAgainstModel(run, br, signal, out[0]);
        });
        return out[0];
    }

    static void assertPatternIsReplayable(Outcome out, StepCache fresh) {
        RunSummary replay = out.trace().replay(fresh, STEPS);
        for (Branch br : out.summary().branches())
            assertEquals(out.summary().pattern(br), replay.pattern(br), br + ": the decisions must be the policy's on the measured signals");
    }

    static void assertComputesAndSkips(RunSummary s, Branch br) {
        assertTrue(s.skipped(br) > 0 && s.computed(br) > 1, br + " should both compute and skip: " + s);
    }

    @Test void teaCacheSkipsAsThePolicyDecidesAndReusesTheWholeStackResidual() {
        Run run = new Run(1, 1);
        TeaCache policy = new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.6));
        Outcome out = driveAndCheck(run, policy, FluxCachedTransformer.Signal.MODULATED_INPUT);
        assertComputesAndSkips(out.summary(), Branch.COND);
        assertPatternIsReplayable(out, new TeaCache(policy.config()));
        // the jumps must be computed (TeaCache's accumulated distance explodes there), first and last are forced
        String p = out.summary().pattern(Branch.COND);
        for (int j : JUMPS) assertEquals('#', p.charAt(j), p);
        assertEquals('#', p.charAt(0));
        assertEquals('#', p.charAt(STEPS - 1));
        assertEquals(0, policy.openRequests(), "closing the request drops the policy's state");
    }

    @Test void firstBlockCacheComparesBlockZerosResidualAndAddsTheCachedRestToItsOutput() {
        Run run = new Run(1, 1);
        FirstBlockCache policy = FirstBlockCache.of(0.3);
        Outcome out = driveAndCheck(run, policy, FluxCachedTransformer.Signal.FIRST_BLOCK_RESIDUAL);
        assertComputesAndSkips(out.summary(), Branch.COND);
        assertPatternIsReplayable(out, FirstBlockCache.of(0.3));
        // the jumps change block 0's residual by ≈ 0.5–0.7 relative: computed; the slow drift (≈ 0.2) is skipped
        String p = out.summary().pattern(Branch.COND);
        for (int j : JUMPS) assertEquals('#', p.charAt(j), p);
    }

    @Test void magCacheNeedsNoSignalAndFollowsItsTable() {
        Run run = new Run(1, 1);
        MagCache policy = new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0.3));
        Outcome out = driveAndCheck(run, policy, FluxCachedTransformer.Signal.NONE);
        assertComputesAndSkips(out.summary(), Branch.COND);
        for (CacheTrace.Call c : out.trace().calls()) assertEquals(Signals.NONE, c.signals());
        assertPatternIsReplayable(out, new MagCache(policy.config()));
    }

    @Test void thresholdZeroComputesEveryStepExactlyAsTheForward() {
        Run run = new Run(1, 1);
        for (StepCache p : new StepCache[] {new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0)), FirstBlockCache.of(0),
                new MagCache(MagCache.Config.reference(MagCache.FLUX_DEV).withThreshold(0))}) {
            Outcome out = driveAndCheck(run, p, FluxCachedTransformer.Signal.of(p));     // every step = forward
            assertEquals(STEPS, out.summary().computed(Branch.COND), p.describe());
        }
    }

    @Test void cfgBranchesKeepTheirOwnSignalsReferencesAndResiduals() {
        Run run = new Run(2, 2);       // batch 2, cond and uncond with different texts
        TeaCache policy = new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.6));
        Outcome out = driveAndCheck(run, policy, FluxCachedTransformer.Signal.MODULATED_INPUT);
        assertEquals(List.of(Branch.COND, Branch.UNCOND), out.summary().branches());
        for (Branch br : Branch.values()) assertComputesAndSkips(out.summary(), br);
        // the branches measure different things (different texts → different modulation): not one shared state
        Signals.RelL1 c = (Signals.RelL1) out.trace().calls(Branch.COND).get(1).signals();
        Signals.RelL1 u = (Signals.RelL1) out.trace().calls(Branch.UNCOND).get(1).signals();
        assertTrue(c.absDiffSum() != u.absDiffSum(), "cond and uncond signals must differ");
        assertPatternIsReplayable(out, new TeaCache(policy.config()));
        // each branch alone, replayed on its own calls, decides the same: no cross-talk between branches
        for (Branch br : Branch.values()) {
            CacheTrace only = new CacheTrace();
            for (CacheTrace.Call call : out.trace().calls(br)) only.record(call.step(), call.branch(), call.signals(), call.decision());
            assertEquals(out.summary().pattern(br), only.replay(new TeaCache(policy.config()), STEPS).pattern(br));
        }
    }

    @Test void residualsInHostMemoryGiveTheSameVelocitiesAndDecisionsAsOnTheDevice() {
        Run run = new Run(2, 2);       // two branches share the one device buffer: a mix-up would show
        for (StepCache[] p : new StepCache[][] {
                {new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.6)), new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.6))},
                {FirstBlockCache.of(0.3), FirstBlockCache.of(0.3)}}) {
            Outcome dev = drive(run, p[0], null, false);
            Outcome host = drive(run, p[1], null, true);
            for (Branch br : Branch.values()) {
                assertComputesAndSkips(host.summary(), br);
                assertEquals(dev.summary().pattern(br), host.summary().pattern(br), p[0].describe());
                for (int i = 0; i < STEPS; i++)
                    assertArrayEquals(dev.velocities().get(br).get(i), host.velocities().get(br).get(i), 0f,
                            p[0].describe() + " " + br + " step " + i + " (tolerance 0: the same arithmetic, only copies differ)");
            }
        }
    }

    @Test void calibrationRecordsTheResidualNormRatiosOfEveryStep() {
        Run run = new Run(1, 2);
        MagCacheCalibration cal = new MagCacheCalibration("tiny-" + STEPS, STEPS, 2);
        Outcome out = drive(run, NoCache.INSTANCE, cal);
        assertEquals(STEPS, out.summary().computed(Branch.COND));
        assertTrue(cal.complete());
        MagCache.Table table = cal.table();
        assertEquals(STEPS, table.steps());
        assertEquals(2 * STEPS, table.interleaved().length);
        assertEquals(1.0, table.gamma(Branch.COND, 0));
        // independent: residual_i = remainingBlocks(embed_i) − embed_i.img, per-token norm ratios against step i−1
        for (Branch br : Branch.values()) {
            FluxCachedTransformer.Text text = run.texts.get(br);
            float[] prev = null;
            double[] ratios = cal.ratios(br);
            for (int i = 0; i < STEPS; i++) {
                try (Scope s = Scope.open(); FluxTransformer.Conditioning c = run.cond(i)) {
                    FluxTransformer.Hidden e = model.embed(run.img(i), text.txt(), text.y(), c);
                    float[] r = ops.sub(model.remainingBlocks(e, c, 0), e.img()).toFloatArray();
                    if (i > 0) {
                        MagCacheCalibration.StepNorms n = MagCacheCalibration.StepNorms.ofHost(r, prev, CFG.hiddenSize());
                        assertEquals(n.ratioSum() / n.tokens(), ratios[i - 1], 0.5e-5 + 1e-12, br + " γ at step " + i + " (5 decimals)");
                        assertEquals(ratios[i - 1], table.gamma(br, i), 0.0);
                    }
                    prev = r;
                }
            }
        }
        // a calibration needs every step computed
        assertThrows(IllegalArgumentException.class, () -> drive(run, FirstBlockCache.of(0.1), new MagCacheCalibration("x", STEPS, 2)));
    }

    @Test void unsupportedPoliciesAreRejectedWithTheReason() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> FluxCachedTransformer.Signal.of(TeaCache.of(TeaCache.WAN21_T2V_1_3B)));
        assertTrue(e.getMessage().contains("time embedding"), e.getMessage());
        Run run = new Run(1, 1);
        try (FluxTransformer.Conditioning cond = run.cond(0); Scope s = Scope.open()) {
            Tensor img = run.img(0);
            IllegalArgumentException g = assertThrows(IllegalArgumentException.class, () -> new FluxCachedTransformer(ops, model,
                    NoCache.INSTANCE, "x", STEPS, img, cond, run.texts, FluxCachedTransformer.Options.eager().withCudaGraphs(true)));
            assertTrue(g.getMessage().contains("CUDA"), g.getMessage());
        }
    }
}
