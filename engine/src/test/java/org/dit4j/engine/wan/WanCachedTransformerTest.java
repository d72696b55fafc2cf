package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
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
import org.dit4j.core.tensor.Shape;
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
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.engine.flux.Repeatable;
import org.dit4j.models.nn.Timesteps;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link WanCachedTransformer} on the CPU against the plain model API: the tiny random Wan of {@link TinyWan} (2 blocks)
 * is driven through a synthetic run whose latent drifts slowly and whose timestep falls slowly, with two large jumps of
 * both, so that every policy computes and skips. Every velocity is checked bit for bit against an independent
 * computation: computed steps against {@link WanTransformer#forwardEmbedded}, skipped steps against
 * head(base + the residual of the branch's last computed step); the signals against {@link Ops#absSums} of
 * independently computed tensors; the decisions against a replay of the recorded signals through a fresh policy.
 */
@SuppressWarnings("try")
class WanCachedTransformerTest {
    static final int STEPS = 12;
    /** Steps where latent and timestep jump (so the policies must compute again). */
    static final int[] JUMPS = {5, 9};
    static final WanConfig CFG = TinyWan.TRANSFORMER;
    /** Latent [B, 16, 2, 4, 6]: a 2×2×3 patch grid (patch 1×2×2). */
    static final long F = 2, H = 4, W = 6, N_TXT = 5;

    static Ops ops;
    static WanWeights weights;
    static WanTransformer model;

    @BeforeAll static void setUp() {
        ops = new CpuBackend();
        try (RandomWeightSource src = new RandomWeightSource(WanWeights.expectedShapes(CFG), DType.F32, 5)) {
            weights = WanWeights.load(ops, src, CFG, DType.F32);
        }
        model = new WanTransformer(ops, weights);
        // the CPU backend's first calls in a JVM round some sums differently (JIT tiers): warm up before comparing bits
        Run warm = new Run(1, 1);
        for (int i = 0; i < 12; i++) {
            try (Scope s = Scope.open(); WanTransformer.Conditioning c = warm.cond(0)) {
                model.forwardEmbedded(warm.latent(0), warm.texts.get(Branch.COND), c);
            }
        }
    }

    @AfterAll static void tearDown() {
        weights.close();
        ops.close();
    }

    /** The inputs of a synthetic run: per-step latents (a random walk with jumps), timesteps and embedded texts. */
    static final class Run {
        final long b;
        final float[][] latents = new float[STEPS][];
        final float[] t = new float[STEPS];
        final Map<Branch, Tensor> texts = new EnumMap<>(Branch.class);

        Run(long b, int branches) {
            this.b = b;
            Random r = new Random(17);
            int n = (int) (b * CFG.inChannels() * F * H * W);
            float[] x = new float[n];
            for (int k = 0; k < n; k++) x[k] = (float) r.nextGaussian();
            float time = 999f;
            for (int i = 0; i < STEPS; i++) {
                boolean jump = contains(JUMPS, i);
                for (int k = 0; k < n; k++) x[k] += (float) ((jump ? 0.8 : 0.002) * r.nextGaussian());
                latents[i] = x.clone();
                time -= jump ? 300f : 1f;
                t[i] = time;
            }
            for (int br = 0; br < branches; br++)
                texts.put(Branch.values()[br], Tensor.of(random(r, (int) (b * N_TXT * CFG.dim())), b, N_TXT, CFG.dim()));
        }

        Tensor latent(int i) { return Tensor.of(latents[i], b, CFG.inChannels(), F, H, W); }

        float[] times(int i) {
            float[] ts = new float[(int) b];
            java.util.Arrays.fill(ts, t[i]);
            return ts;
        }

        WanTransformer.Conditioning cond(int i) { return model.prepare(times(i), F, H / 2, W / 2); }
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

    static Outcome drive(Run run, StepCache policy, MagCacheCalibration calibration, boolean residualsOnHost) {
        Map<Branch, List<float[]>> v = new EnumMap<>(Branch.class);
        for (Branch br : run.texts.keySet()) v.put(br, new ArrayList<>());
        try (WanTransformer.Conditioning cond = run.cond(0)) {
            Tensor latentIn = ops.empty(DType.F32, Shape.of(run.b, CFG.inChannels(), F, H, W));
            WanCachedTransformer.Options o = WanCachedTransformer.Options.eager().withCalibration(calibration)
                    .withResidualsOnHost(residualsOnHost);
            try (WanCachedTransformer ct = new WanCachedTransformer(ops, model, policy, "test", STEPS, latentIn, cond, run.texts, o)) {
                for (int i = 0; i < STEPS; i++) {
                    try (Scope s = Scope.open()) {
                        FluxCachedTransformer.copyInto(ops, latentIn, run.latent(i));
                        FluxCachedTransformer.copyInto(ops, cond.timeSin(), Timesteps.embedding(run.times(i), CFG.freqDim(), 1f));
                        for (Branch br : run.texts.keySet()) v.get(br).add(ct.velocity(i, br).toFloatArray());
                    }
                }
                return new Outcome(v, ct.summary(), ct.trace());
            } finally {
                latentIn.close();
            }
        }
    }

    static Outcome drive(Run run, StepCache policy) { return drive(run, policy, null, false); }

    /**
     * The independent check of one branch: replays the run with the plain model API, following the recorded
     * decisions, and compares every velocity and every measured signal bit for bit.
     */
    static void checkAgainstModel(Run run, Branch br, WanCachedTransformer.Signal signal, Outcome out) {
        Tensor text = run.texts.get(br);
        List<CacheTrace.Call> calls = out.trace().calls(br);
        assertEquals(STEPS, calls.size());
        float[] residual = null, reference = null;        // the branch's cache, kept on the host
        boolean fb = signal == WanCachedTransformer.Signal.FIRST_BLOCK_RESIDUAL;
        for (int i = 0; i < STEPS; i++) {
            CacheTrace.Call call = calls.get(i);
            assertEquals(i, call.step());
            try (Scope s = Scope.open(); WanTransformer.Conditioning c = run.cond(i)) {
                WanTransformer.Embedded e = model.embed(run.latent(i), c);
                Tensor from = fb ? model.blocks(e.tokens(), text, e, c, 0, 1) : e.tokens();
                Tensor sig = switch (signal) {
                    case NONE -> null;
                    case TIME_EMBEDDING -> e.time();
                    case TIME_PROJECTION -> e.modulation();
                    case FIRST_BLOCK_RESIDUAL -> ops.sub(from, e.tokens());
                };
                if (call.signals() instanceof Signals.RelL1 r) {
                    double[] sums = ops.absSums(sig, Tensor.of(reference, sig.shape().dims()));
                    assertEquals(sums[0], r.absDiffSum(), 0.0, br + " step " + i + " Σ|x − ref|");
                    assertEquals(sums[1], r.absRefSum(), 0.0, br + " step " + i + " Σ|ref|");
                    assertEquals(sig.numel(), r.diffCount());
                } else if (signal != WanCachedTransformer.Signal.NONE && i > 0) {
                    Decision.Reason why = call.decision().reason();
                    assertTrue(why == Decision.Reason.FORCED || why == Decision.Reason.WARMUP || why == Decision.Reason.DISABLED,
                            br + " step " + i + ": no signal measured but " + call.decision());
                }
                if (call.decision().updateSignalReference()) reference = sig.toFloatArray();
                float[] expected;
                if (call.decision().skip()) {
                    // head(base + cached residual), composed here from the model's pieces
                    expected = model.head(ops.add(from, Tensor.of(residual, from.shape().dims())), e, c).toFloatArray();
                } else {
                    Tensor o = model.blocks(from, text, e, c, fb ? 1 : 0, model.depth());
                    residual = ops.sub(o, from).toFloatArray();
                    expected = model.head(o, e, c).toFloatArray();
                    assertArrayEquals(model.forwardEmbedded(run.latent(i), text, c).toFloatArray(), expected, 0f,
                            br + " step " + i + ": the staged path must equal the forward");
                }
                assertArrayEquals(expected, out.velocities().get(br).get(i), 0f, br + " step " + i + " (" + call.decision() + ")");
            }
        }
    }

    static Outcome driveAndCheck(Run run, StepCache policy, WanCachedTransformer.Signal signal) {
        Outcome[] out = new Outcome[1];
        Repeatable.check(() -> {
            policy.reset();
            out[0] = drive(run, policy);
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

    static TeaCache tea(TeaCache.Preset p, double t) { return new TeaCache(TeaCache.Config.reference(p).withThreshold(t)); }

    @Test void teaCacheMeasuresTheTimeEmbeddingAndReusesTheWholeStackResidual() {
        Run run = new Run(1, 1);
        TeaCache policy = tea(TeaCache.WAN21_T2V_1_3B, 0.3);
        Outcome out = driveAndCheck(run, policy, WanCachedTransformer.Signal.TIME_EMBEDDING);
        assertComputesAndSkips(out.summary(), Branch.COND);
        assertPatternIsReplayable(out, new TeaCache(policy.config()));
        String p = out.summary().pattern(Branch.COND);
        assertEquals('#', p.charAt(0), "first step forced: " + p);
        assertEquals('#', p.charAt(STEPS - 1), "last step forced (cutoff N−1): " + p);
        for (int j : JUMPS) assertEquals('#', p.charAt(j), "a jump of the timestep is computed: " + p);
        assertEquals(CFG.dim(), ((Signals.RelL1) out.trace().calls(Branch.COND).get(1).signals()).diffCount(), "e is [B, D]");
        assertEquals(0, policy.openRequests(), "closing the request drops the policy's state");
    }

    @Test void teaCacheRetModeMeasuresTheTimeProjectionAndForcesTheFirstFiveSteps() {
        Run run = new Run(1, 1);
        TeaCache policy = tea(TeaCache.WAN21_T2V_1_3B_RET, 0.3);
        Outcome out = driveAndCheck(run, policy, WanCachedTransformer.Signal.TIME_PROJECTION);
        assertPatternIsReplayable(out, new TeaCache(policy.config()));
        String p = out.summary().pattern(Branch.COND);
        assertEquals("#####", p.substring(0, 5), "ret mode computes the first 5 steps (ret_steps = 5·2 calls): " + p);
        assertComputesAndSkips(out.summary(), Branch.COND);
        for (int i = 0; i < 5; i++) assertEquals(Signals.NONE, out.trace().calls(Branch.COND).get(i).signals(), "forced: nothing measured");
        assertEquals(6 * CFG.dim(), ((Signals.RelL1) out.trace().calls(Branch.COND).get(5).signals()).diffCount(), "e0 is [B, 6, D]");
    }

    @Test void firstBlockCacheComparesBlockZerosResidualAndAddsTheCachedRestToItsOutput() {
        Run run = new Run(1, 1);
        FirstBlockCache policy = FirstBlockCache.of(0.05);
        Outcome out = driveAndCheck(run, policy, WanCachedTransformer.Signal.FIRST_BLOCK_RESIDUAL);
        assertComputesAndSkips(out.summary(), Branch.COND);
        assertPatternIsReplayable(out, FirstBlockCache.of(0.05));
        String p = out.summary().pattern(Branch.COND);
        for (int j : JUMPS) assertEquals('#', p.charAt(j), p);
    }

    @Test void magCacheNeedsNoSignalAndFollowsItsTable() {
        Run run = new Run(1, 2);
        MagCache policy = new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_1_3B).withThreshold(0.3));
        Outcome out = driveAndCheck(run, policy, WanCachedTransformer.Signal.NONE);
        for (Branch br : Branch.values()) assertComputesAndSkips(out.summary(), br);
        for (CacheTrace.Call c : out.trace().calls()) assertEquals(Signals.NONE, c.signals());
        assertPatternIsReplayable(out, new MagCache(policy.config()));
    }

    @Test void thresholdZeroComputesEveryStepExactlyAsTheForward() {
        Run run = new Run(1, 2);
        for (StepCache p : new StepCache[] {tea(TeaCache.WAN21_T2V_1_3B, 0), tea(TeaCache.WAN21_T2V_14B_RET, 0), FirstBlockCache.of(0),
                new MagCache(MagCache.Config.reference(MagCache.WAN21_T2V_14B).withThreshold(0))}) {
            Outcome out = driveAndCheck(run, p, WanCachedTransformer.Signal.of(p));       // every step = forward, bit for bit
            for (Branch br : Branch.values()) assertEquals(STEPS, out.summary().computed(br), p.describe());
        }
    }

    @Test void cfgBranchesKeepTheirOwnStateAndResiduals() {
        Run run = new Run(2, 2);       // batch 2, cond and uncond with different texts
        for (StepCache policy : new StepCache[] {tea(TeaCache.WAN21_T2V_1_3B, 0.3), FirstBlockCache.of(0.05)}) {
            WanCachedTransformer.Signal sig = WanCachedTransformer.Signal.of(policy);
            Outcome out = driveAndCheck(run, policy, sig);     // each branch's skips use its own residual, bit for bit
            assertEquals(List.of(Branch.COND, Branch.UNCOND), out.summary().branches());
            for (Branch br : Branch.values()) assertComputesAndSkips(out.summary(), br);
            // each branch alone, replayed on its own calls, decides the same: no cross-talk between the branches' state
            for (Branch br : Branch.values()) {
                CacheTrace only = new CacheTrace();
                for (CacheTrace.Call call : out.trace().calls(br)) only.record(call.step(), call.branch(), call.signals(), call.decision());
                StepCache fresh = policy instanceof TeaCache t ? new TeaCache(t.config()) : FirstBlockCache.of(0.05);
                assertEquals(out.summary().pattern(br), only.replay(fresh, STEPS).pattern(br));
            }
            Signals.RelL1 c = (Signals.RelL1) out.trace().calls(Branch.COND).get(1).signals();
            Signals.RelL1 u = (Signals.RelL1) out.trace().calls(Branch.UNCOND).get(1).signals();
            if (sig == WanCachedTransformer.Signal.TIME_EMBEDDING) {
                // TeaCache4Wan2.1 measures e, a function of the timestep only: both branches see the same numbers
                assertEquals(c, u, "the time embedding is the same for cond and uncond");
            } else {
                assertNotEquals(c.absDiffSum(), u.absDiffSum(), "block 0's residual depends on the text: the branches differ");
            }
            // a step both branches skipped: the branches' velocities differ (each adds its own residual)
            int both = -1;
            for (int i = 0; i < STEPS && both < 0; i++)
                if (out.trace().calls(Branch.COND).get(i).decision().skip() && out.trace().calls(Branch.UNCOND).get(i).decision().skip()) both = i;
            assertTrue(both > 0, "a step skipped by both branches: " + out.summary());
            float[] vc = out.velocities().get(Branch.COND).get(both), vu = out.velocities().get(Branch.UNCOND).get(both);
            double diff = 0;
            for (int k = 0; k < vc.length; k++) diff = Math.max(diff, Math.abs(vc[k] - vu[k]));
            assertTrue(diff > 1e-3, "cond and uncond at skipped step " + both + " must differ (max |Δ| " + diff + ")");
        }
    }

    @Test void residualsInHostMemoryGiveTheSameVelocitiesAndDecisions() {
        Run run = new Run(2, 2);       // two branches share the one device buffer: a mix-up would show
        for (StepCache[] p : new StepCache[][] {{tea(TeaCache.WAN21_T2V_1_3B, 0.3), tea(TeaCache.WAN21_T2V_1_3B, 0.3)},
                {FirstBlockCache.of(0.05), FirstBlockCache.of(0.05)}}) {
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
        Outcome out = drive(run, NoCache.INSTANCE, cal, false);
        assertEquals(STEPS, out.summary().computed(Branch.COND));
        assertTrue(cal.complete());
        MagCache.Table table = cal.table();
        assertEquals(2 * STEPS, table.interleaved().length);
        for (Branch br : Branch.values()) {
            Tensor text = run.texts.get(br);
            float[] prev = null;
            double[] ratios = cal.ratios(br);
            for (int i = 0; i < STEPS; i++) {
                try (Scope s = Scope.open(); WanTransformer.Conditioning c = run.cond(i)) {
                    WanTransformer.Embedded e = model.embed(run.latent(i), c);
                    float[] r = ops.sub(model.blocks(e.tokens(), text, e, c, 0, model.depth()), e.tokens()).toFloatArray();
                    if (i > 0) {
                        MagCacheCalibration.StepNorms n = MagCacheCalibration.StepNorms.ofHost(r, prev, CFG.dim());
                        assertEquals(n.ratioSum() / n.tokens(), ratios[i - 1], 0.5e-5 + 1e-12, br + " γ at step " + i + " (5 decimals)");
                    }
                    prev = r;
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> drive(run, FirstBlockCache.of(0.1), new MagCacheCalibration("x", STEPS, 2), false));
    }

    @Test void unsupportedPoliciesAreRejectedWithTheReason() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> WanCachedTransformer.Signal.of(TeaCache.of(TeaCache.FLUX)));
        assertTrue(e.getMessage().contains("Wan2.1 preset"), e.getMessage());
        assertEquals(WanCachedTransformer.Signal.TIME_EMBEDDING, WanCachedTransformer.Signal.of(TeaCache.of(TeaCache.WAN21_T2V_14B)));
        assertEquals(WanCachedTransformer.Signal.TIME_PROJECTION, WanCachedTransformer.Signal.of(TeaCache.of(TeaCache.WAN21_T2V_14B_RET)));
        Run run = new Run(1, 1);
        try (WanTransformer.Conditioning cond = run.cond(0); Scope s = Scope.open()) {
            Tensor latent = run.latent(0);
            IllegalArgumentException g = assertThrows(IllegalArgumentException.class, () -> new WanCachedTransformer(ops, model,
                    NoCache.INSTANCE, "x", STEPS, latent, cond, run.texts, WanCachedTransformer.Options.eager().withCudaGraphs(true)));
            assertTrue(g.getMessage().contains("CUDA"), g.getMessage());
        }
    }
}
