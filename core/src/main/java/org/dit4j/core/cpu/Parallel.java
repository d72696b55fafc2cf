package org.dit4j.core.cpu;

import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.RecursiveAction;

/**
 * The CPU backend's worker pool: splits index ranges over a fixed number of threads. Loops started from inside a
 * piece of parallel work run sequentially, so nested parallel code (a GEMM inside a per-head attention task) never
 * oversubscribes the pool and per-thread scratch buffers are never used by two levels at once.
 */
final class Parallel implements AutoCloseable {

    /** Body of a parallel loop over the index range {@code [lo, hi)}. */
    @FunctionalInterface
    interface RangeBody { void run(int lo, int hi); }

    /** Set while a thread runs a piece of parallel work: nested loops on that thread then run sequentially. */
    private static final ThreadLocal<boolean[]> IN_TASK = ThreadLocal.withInitial(() -> new boolean[1]);

    private final int threads;
    private final ForkJoinPool pool;   // null when single-threaded

    Parallel(int threads) {
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        this.threads = threads;
        this.pool = threads == 1 ? null : new ForkJoinPool(threads);
    }

    int threads() { return threads; }

    /** True when work submitted now would actually run on several threads. */
    boolean isParallel() { return pool != null && !IN_TASK.get()[0]; }

    /**
     * Runs {@code body} over {@code [0, n)} in pieces of at least {@code grain} indices (at most about
     * 4 pieces per thread). Each index is visited exactly once; pieces may run concurrently.
     */
    void forRange(int n, int grain, RangeBody body) {
        if (n <= 0) return;
        grain = Math.max(1, grain);
        if (!isParallel() || n <= grain) {
            body.run(0, n);
            return;
        }
        int pieceGrain = Math.max(grain, (n + 4 * threads - 1) / (4 * threads));
        pool.invoke(new Piece(0, n, pieceGrain, body));
    }

    /** Runs {@code body(i)} for every i in {@code [0, n)}, one index per task (for coarse tasks). */
    void forEach(int n, java.util.function.IntConsumer body) {
        forRange(n, 1, (lo, hi) -> { for (int i = lo; i < hi; i++) body.accept(i); });
    }

    @Override public void close() {
        if (pool != null) pool.shutdown();
    }

    private static final class Piece extends RecursiveAction {
        private final int lo, hi, grain;
        private final RangeBody body;

        Piece(int lo, int hi, int grain, RangeBody body) {
            this.lo = lo; this.hi = hi; this.grain = grain; this.body = body;
        }

        @Override protected void compute() {
            if (hi - lo <= grain) {
                boolean[] flag = IN_TASK.get();
                boolean outer = flag[0];
                flag[0] = true;
                try {
                    body.run(lo, hi);
                } finally {
                    flag[0] = outer;
                }
                return;
            }
            int mid = (lo + hi) >>> 1;
            invokeAll(new Piece(lo, mid, grain, body), new Piece(mid, hi, grain, body));
        }
    }
}
