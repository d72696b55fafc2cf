package org.dit4j.engine.cache;

import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The per-request bookkeeping: residual and reference slots, protocol checks, joint decisions, the summary. */
class CacheRunTest {

    /** A value that counts its closes. */
    static final class Box implements AutoCloseable {
        final String name;
        int closed;

        Box(String name) { this.name = name; }

        @Override public void close() { closed++; }
    }

    @Test
    void storesReplacesAndReleasesValues() {
        MagCache mc = MagCache.of(MagCache.FLUX_DEV);
        List<Box> made = new ArrayList<>();
        CacheRun<Box> run = mc.begin("r", 28);
        for (int i = 0; i < 28; i++) {
            Decision d = run.decide(i, Branch.COND, Signals.NONE);
            if (d.compute()) {
                Box b = new Box("res" + i);
                made.add(b);
                run.storeResidual(Branch.COND, CacheRun.Slot.HIDDEN, b);
            } else {
                assertSame(made.getLast(), run.residual(Branch.COND, CacheRun.Slot.HIDDEN), "a skip reuses the last stored residual");
            }
        }
        for (int i = 0; i < made.size() - 1; i++) assertEquals(1, made.get(i).closed, made.get(i).name + " closed when replaced");
        assertEquals(0, made.getLast().closed);
        assertEquals(1, mc.openRequests());
        run.close();
        assertEquals(1, made.getLast().closed, "closing the run releases the last residual");
        assertEquals(0, mc.openRequests(), "closing the run drops the policy state");
        run.close();
        assertEquals(1, made.getLast().closed, "close is idempotent");
        assertThrows(IllegalStateException.class, () -> run.decide(0, Branch.COND, Signals.NONE));
    }

    @Test
    void releasesHostTensors() {
        TeaCache tc = TeaCache.of(TeaCache.FLUX);
        CacheRun<Tensor> run = tc.begin("t", 3);
        {
            Tensor ref0 = Tensor.of(new float[] {1, 2}, 2), res0 = Tensor.of(new float[] {0.5f, 0.5f}, 2);
            Decision d0 = run.decide(0, Branch.COND, Signals.NONE);
            assertTrue(d0.compute() && d0.updateSignalReference());
            run.storeReference(Branch.COND, ref0);
            run.storeResidual(Branch.COND, CacheRun.Slot.HIDDEN, res0);
            Tensor x1 = Tensor.of(new float[] {1, 2.01f}, 2);
            Decision d1 = run.decide(1, Branch.COND, Signals.RelL1.ofHost(x1.toFloatArray(), run.reference(Branch.COND).toFloatArray()));
            assertTrue(d1.skip());
            run.storeReference(Branch.COND, x1);
            assertTrue(ref0.isReleased(), "the replaced reference tensor is released");
            assertFalse(res0.isReleased(), "the residual in use stays");
            assertArrayEquals(new float[] {0.5f, 0.5f}, run.residual(Branch.COND, CacheRun.Slot.HIDDEN).toFloatArray());
            run.close();
            assertTrue(res0.isReleased());
            assertTrue(x1.isReleased());
        }
    }

    @Test
    void protocolErrorsNameTheMissingStore() {
        CacheRun<Box> run = TeaCache.of(TeaCache.FLUX).begin("p", 10);
        run.decide(0, Branch.COND, Signals.NONE);
        run.storeReference(Branch.COND, new Box("ref"));
        IllegalStateException noResidual = assertThrows(IllegalStateException.class, () -> run.decide(1, Branch.COND, Signals.NONE));
        assertTrue(noResidual.getMessage().contains("step 0 cond of request p was computed but its residual was not stored"), noResidual.getMessage());

        CacheRun<Box> run2 = TeaCache.of(TeaCache.FLUX).begin("q", 10);
        run2.decide(0, Branch.COND, Signals.NONE);
        run2.storeResidual(Branch.COND, CacheRun.Slot.HIDDEN, new Box("res"));
        IllegalStateException noRef = assertThrows(IllegalStateException.class, () -> run2.decide(1, Branch.COND, Signals.NONE));
        assertTrue(noRef.getMessage().contains("asked to keep its signal as the new reference"), noRef.getMessage());

        CacheRun<Box> run3 = TeaCache.of(TeaCache.FLUX).begin("s", 10);
        IllegalStateException early = assertThrows(IllegalStateException.class, () -> run3.storeResidual(Branch.UNCOND, CacheRun.Slot.HIDDEN, new Box("x")));
        assertTrue(early.getMessage().contains("call decide first"), early.getMessage());
        IllegalStateException none = assertThrows(IllegalStateException.class, () -> run3.residual(Branch.COND, CacheRun.Slot.ENCODER));
        assertTrue(none.getMessage().contains("no ENCODER residual cached for cond"), none.getMessage());
        assertThrows(IllegalArgumentException.class, () -> run3.decide(StepContext.of("other", 0, 10, Branch.COND), Signals.NONE));

        // a disabled policy asks for nothing
        CacheRun<Box> off = new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0)).begin("o", 4);
        for (int i = 0; i < 4; i++) assertTrue(off.decide(i, Branch.COND, Signals.NONE).compute());
    }

    @Test
    void jointDecisions() {
        // MagCache Wan 1.3B, 30 steps: the branches' own patterns, then both joint rules
        Decision[][] own = MagCacheTest.runCfg(MagCache.of(MagCache.WAN21_T2V_1_3B), "j", 30);
        for (CacheRun.Joint rule : CacheRun.Joint.values()) {
            try (CacheRun<Box> run = MagCache.of(MagCache.WAN21_T2V_1_3B).<Box>begin("j", 30)) {
                for (int i = 0; i < 30; i++) {
                    Map<Branch, Signals> s = new EnumMap<>(Branch.class);
                    s.put(Branch.COND, Signals.NONE);
                    s.put(Branch.UNCOND, Signals.NONE);
                    Map<Branch, Decision> d = run.decideJointly(i, s, rule);
                    boolean expectSkip = rule == CacheRun.Joint.ANY_COMPUTE ? own[0][i].skip() && own[1][i].skip() : own[0][i].skip() || own[1][i].skip();
                    for (Branch b : Branch.values()) {
                        assertEquals(expectSkip, d.get(b).skip(), rule + " step " + i);
                        if (d.get(b).skip() != own[b.index()][i].skip())
                            assertEquals(rule == CacheRun.Joint.ANY_COMPUTE ? Decision.Reason.BATCHED_WITH_COMPUTE : Decision.Reason.BATCHED_WITH_SKIP,
                                    d.get(b).reason());
                        if (d.get(b).compute()) run.storeResidual(b, CacheRun.Slot.HIDDEN, new Box("r"));
                    }
                }
                assertEquals(run.summary().pattern(Branch.COND), run.summary().pattern(Branch.UNCOND));
            }
        }
    }

    @Test
    void summaryPrintsComputedAndSkippedSteps() {
        try (CacheRun<Box> run = MagCache.of(MagCache.FLUX_DEV).<Box>begin("req-7", 28)) {
            assertEquals("????????????????????????????", run.summary().pattern(Branch.COND));
            for (int i = 0; i < 28; i++) {
                if (run.decide(i, Branch.COND, Signals.NONE).compute()) run.storeResidual(Branch.COND, CacheRun.Slot.HIDDEN, new Box("r"));
            }
            RunSummary s = run.summary();
            assertArrayEquals(new int[] {0, 1, 2, 5, 9, 11, 17, 23, 26}, s.computedSteps(Branch.COND));
            assertEquals(9, s.computed(Branch.COND));
            assertEquals(19, s.skipped(Branch.COND));
            assertEquals("###..#...#.#.....#.....#..#.", s.pattern(Branch.COND));
            assertEquals(List.of(Branch.COND), s.branches());
            assertEquals(3, s.reasons(Branch.COND).get(Decision.Reason.RETENTION));
            assertEquals(19, s.reasons(Branch.COND).get(Decision.Reason.CACHED));
            String text = s.toString();
            assertTrue(text.startsWith("magcache flux-dev-28 thresh=0.24 (≤) K=5 retention=0.1"), text);
            assertTrue(text.contains("request req-7 · 28 steps"), text);
            assertTrue(text.contains("cond    ###..#...#.#.....#.....#..#. computed 9/28, skipped 19: 3 4 6 7 8 10 12 13 14 15 16 18 19 20 21 22 24 25 27"), text);
            assertEquals(0, s.computedSteps(Branch.UNCOND).length);
        }
    }
}
