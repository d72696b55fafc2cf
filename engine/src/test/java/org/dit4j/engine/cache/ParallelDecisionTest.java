package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.BrokenBarrierException;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Sequence-parallel runs: every rank holds a shard of the signal tensor, sums its part, the sums are all-reduced,
 * and every rank's own policy decides. Ranks run as threads over a small in-test all-reduce.
 */
class ParallelDecisionTest {

    record Arr(float[] v) implements AutoCloseable {
        @Override public void close() {}
    }

    /** Sum all-reduce of RelL1 partials: every rank adds the partials in rank order, so all get identical bits. */
    static final class AllReduce {
        final Signals.RelL1[] slots;
        final CyclicBarrier barrier;

        AllReduce(int ranks) {
            slots = new Signals.RelL1[ranks];
            barrier = new CyclicBarrier(ranks);
        }

        Signals.RelL1 sum(int rank, Signals.RelL1 partial) {
            try {
                slots[rank] = partial;
                barrier.await();
                Signals.RelL1 s = slots[0];
                for (int r = 1; r < slots.length; r++) s = s.plus(slots[r]);
                barrier.await();
                return s;
            } catch (InterruptedException | BrokenBarrierException e) {
                throw new IllegalStateException(e);
            }
        }

        /** Keeps the ranks in lock step where no reduction happens. */
        void sync() {
            try {
                barrier.await();
            } catch (InterruptedException | BrokenBarrierException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /** Signal tensors per step and branch: a random walk, dyadic values when {@code exact} (sums exact in any order). */
    static float[][][] signals(long seed, int steps, int len, boolean exact) {
        Random rnd = new Random(seed);
        float[][][] x = new float[2][steps][len];
        for (int b = 0; b < 2; b++) {
            float[] cur = new float[len];
            for (int j = 0; j < len; j++) cur[j] = q(1 + 4 * rnd.nextDouble(), exact);
            for (int i = 0; i < steps; i++) {
                double scale = 0.02 + 0.2 * rnd.nextDouble() * rnd.nextDouble();
                for (int j = 0; j < len; j++) cur[j] = q(cur[j] + scale * rnd.nextGaussian(), exact);
                x[b][i] = cur.clone();
            }
        }
        return x;
    }

    static float q(double v, boolean exact) { return exact ? (float) (Math.rint(v * 64) / 64) : (float) v; }

    static float[] shard(float[] full, int rank, int ranks) {
        int lo = (int) ((long) full.length * rank / ranks), hi = (int) ((long) full.length * (rank + 1) / ranks);
        float[] s = new float[hi - lo];
        System.arraycopy(full, lo, s, 0, s.length);
        return s;
    }

    /** Runs one request on every rank; returns each rank's decisions (cond then uncond per step). */
    static List<List<Decision>> runRanks(int ranks, Supplier<StepCache> policy, float[][][] x) throws Exception {
        int steps = x[0].length;
        AllReduce ar = new AllReduce(ranks);
        ExecutorService pool = Executors.newFixedThreadPool(ranks);
        try {
            List<Future<List<Decision>>> fs = new ArrayList<>();
            for (int rank = 0; rank < ranks; rank++) {
                int r = rank;
                fs.add(pool.submit(() -> {
                    List<Decision> out = new ArrayList<>();
                    try (CacheRun<Arr> run = policy.get().begin("req", steps)) {
                        for (int i = 0; i < steps; i++) {
                            for (Branch b : Branch.values()) {
                                float[] mine = shard(x[b.index()][i], r, ranks);
                                Arr ref = run.reference(b);
                                Signals s = Signals.NONE;
                                if (run.needsSignal(i, b) && ref != null) s = ar.sum(r, Signals.RelL1.ofHost(mine, ref.v()));
                                else ar.sync();
                                Decision d = run.decide(i, b, s);
                                if (d.updateSignalReference()) run.storeReference(b, new Arr(mine));
                                if (d.compute()) run.storeResidual(b, CacheRun.Slot.HIDDEN, new Arr(new float[0]));
                                out.add(d);
                            }
                        }
                    }
                    return out;
                }));
            }
            List<List<Decision>> all = new ArrayList<>();
            for (Future<List<Decision>> f : fs) all.add(f.get());
            return all;
        } finally {
            pool.shutdownNow();
        }
    }

    static String pattern(List<Decision> d) {
        StringBuilder sb = new StringBuilder();
        for (Decision x : d) sb.append(x.compute() ? '#' : '.');
        return sb.toString();
    }

    static List<Supplier<StepCache>> policies() {
        return List.of(
                () -> new TeaCache(TeaCache.Config.reference(TeaCache.FLUX).withThreshold(0.3)),
                () -> new TeaCache(TeaCache.Config.reference(TeaCache.WAN21_T2V_1_3B_RET).withThreshold(0.12).withRounding(ScalarRounding.BF16)),
                () -> FirstBlockCache.of(0.06),
                () -> MagCache.of(MagCache.WAN21_T2V_14B));
    }

    @Test
    void everyRankDecidesAlikeAndLikeOneRank() throws Exception {
        float[][][] exact = signals(1, 30, 3000, true);       // 3000 splits unevenly over 4 ranks (750) and 7 ranks
        for (Supplier<StepCache> p : policies()) {
            List<Decision> single = runRanks(1, p, exact).get(0);
            String name = p.get().describe();
            assertTrue(pattern(single).contains("#") && (pattern(single).contains(".") || name.startsWith("magcache")), name + ": " + pattern(single));
            for (int ranks : new int[] {2, 4, 7}) {
                List<List<Decision>> all = runRanks(ranks, p, exact);
                for (int r = 0; r < ranks; r++) {
                    assertEquals(pattern(single), pattern(all.get(r)), name + ": rank " + r + " of " + ranks);
                    for (int c = 0; c < single.size(); c++)
                        assertEquals(single.get(c).metric(), all.get(r).get(c).metric(), 0.0,
                                name + ": rank " + r + " of " + ranks + " call " + c + " (exact sums give the single-rank value)");
                }
            }
        }
    }

    @Test
    void ranksAgreeBitForBitWithInexactSums() throws Exception {
        float[][][] x = signals(2, 40, 4099, false);
        for (Supplier<StepCache> p : policies()) {
            for (int ranks : new int[] {2, 3, 4}) {
                List<List<Decision>> all = runRanks(ranks, p, x);
                for (int r = 1; r < ranks; r++) {
                    assertEquals(pattern(all.get(0)), pattern(all.get(r)), "rank " + r + " of " + ranks);
                    for (int c = 0; c < all.get(0).size(); c++)
                        assertEquals(all.get(0).get(c).metric(), all.get(r).get(c).metric(), 0.0, "rank " + r + " call " + c);
                }
            }
        }
    }

    @Test
    void sumsAndCountsGiveTheGlobalMeanForUnevenShards() {
        float[] cur = new float[10], ref = new float[10];
        for (int i = 0; i < 10; i++) {
            ref[i] = i < 3 ? 8 : 1;
            cur[i] = ref[i] + (i < 3 ? 1 : 0.5f);
        }
        double global = Signals.RelL1.ofHost(cur, ref).value(ScalarRounding.NONE);   // (3 + 3.5)/10 / ((24 + 7)/10)
        assertEquals(6.5 / 31, global, 1e-15);
        // 3 ranks with 3, 3, 4 elements
        Signals.RelL1 sum = null;
        double avgOfMeanDiff = 0, avgOfMeanRef = 0;
        int[] cuts = {0, 3, 6, 10};
        for (int r = 0; r < 3; r++) {
            float[] c = java.util.Arrays.copyOfRange(cur, cuts[r], cuts[r + 1]);
            float[] f = java.util.Arrays.copyOfRange(ref, cuts[r], cuts[r + 1]);
            Signals.RelL1 part = Signals.RelL1.ofHost(c, f);
            sum = sum == null ? part : sum.plus(part);
            avgOfMeanDiff += part.absDiffSum() / part.diffCount() / 3;
            avgOfMeanRef += part.absRefSum() / part.refCount() / 3;
        }
        assertEquals(global, sum.value(ScalarRounding.NONE), 1e-15);
        // what averaging per-rank means would give instead (ParaAttention's all_reduce "avg" of means)
        assertTrue(Math.abs(avgOfMeanDiff / avgOfMeanRef - global) > 1e-3);
    }
}
