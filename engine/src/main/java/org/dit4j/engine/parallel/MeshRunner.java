package org.dit4j.engine.parallel;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.CommunicatorAbortedException;
import org.dit4j.core.parallel.LocalCommunicator;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One worker thread per rank of this process (every rank of the mesh, or this node's share of a multi-node mesh):
 * builds each rank's {@link MeshComms} from its world communicator and runs a task on those ranks at once. If a rank
 * fails, the world (and thus every axis group) is aborted so that the other ranks of this process leave their
 * collectives (ranks of other nodes are not told; they notice only when NCCL does), and the first real failure is
 * rethrown, naming the rank. Tasks manage their own tensor lifetimes (no scope is opened for them) and should return
 * host values or tensors they own.
 */
public final class MeshRunner {
    private MeshRunner() {}

    /** The work of one rank. */
    @FunctionalInterface
    public interface RankTask<T> {
        T run(MeshComms comms) throws Exception;
    }

    /** Runs {@code task} on every rank of an in-process mesh (threads over {@link LocalCommunicator}). */
    public static <T> List<T> local(ParallelConfig config, RankTask<T> task) {
        return run(config, LocalCommunicator.group(config.worldSize()), task);
    }

    /**
     * Runs {@code task} on the ranks of {@code worlds}, one thread each; the rank is the communicator's
     * {@link Communicator#rank()}. {@code worlds} holds every rank of the mesh (one process), or only this node's ranks
     * of a multi-node mesh (the other nodes run theirs): each communicator spans the whole world, ranks distinct. The
     * results are in the order of {@code worlds}. Each rank's axis groups are split from its world for this call and
     * closed after it. Callers that run many times on one world keep the groups with {@link #open} and
     * {@link #run(List, RankTask)} instead (a split is an NCCL communicator creation, ~0.1–0.3 s each on GPUs).
     */
    public static <T> List<T> run(ParallelConfig config, List<? extends Communicator> worlds, RankTask<T> task) {
        checkRanks(config, worlds);
        return onThreads(config, worlds, i -> {
            try (MeshComms comms = MeshComms.create(config, worlds.get(i))) {
                return task.run(comms);
            }
        });
    }

    /**
     * Splits every rank's axis groups from its world (collective: one thread per rank of {@code worlds}, which may be
     * a node's share as in {@link #run(ParallelConfig, List, RankTask)}) and returns them in the order of
     * {@code worlds}, open; the caller closes them ({@link MeshComms#close}) before closing the worlds.
     */
    public static List<MeshComms> open(ParallelConfig config, List<? extends Communicator> worlds) {
        checkRanks(config, worlds);
        return onThreads(config, worlds, i -> MeshComms.create(config, worlds.get(i)));
    }

    /** Runs {@code task} on the ranks of groups from {@link #open}, one thread each; the groups stay open. */
    public static <T> List<T> run(List<MeshComms> comms, RankTask<T> task) {
        if (comms.isEmpty()) throw new IllegalArgumentException("no ranks: open the mesh's groups with MeshRunner.open first");
        ParallelConfig config = comms.getFirst().config();
        List<Communicator> worlds = new ArrayList<>();
        for (MeshComms c : comms) worlds.add(c.world());
        checkRanks(config, worlds);
        return onThreads(config, worlds, i -> task.run(comms.get(i)));
    }

    @FunctionalInterface
    private interface RankBody<T> {
        T run(int index) throws Exception;
    }

    /**
     * One platform thread per communicator of {@code worlds} (the body gets its index); the first real failure (not a
     * secondary abort) is rethrown naming its rank.
     */
    private static <T> List<T> onThreads(ParallelConfig config, List<? extends Communicator> worlds, RankBody<T> body) {
        int n = worlds.size();
        List<T> results = new ArrayList<>(n);
        for (int i = 0; i < n; i++) results.add(null);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        int[] failedRank = {-1};
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int index = i;
            Communicator world = worlds.get(i);
            int rank = world.rank();
            Thread t = Thread.ofPlatform().name("dit4j-rank-" + rank).unstarted(() -> {
                try {
                    T out = body.run(index);
                    synchronized (results) { results.set(index, out); }
                } catch (Throwable e) {
                    boolean secondary = e instanceof CommunicatorAbortedException;
                    synchronized (failedRank) {
                        if (failure.get() == null || (!secondary && failure.get() instanceof CommunicatorAbortedException)) {
                            failure.set(e);
                            failedRank[0] = rank;
                        }
                    }
                    world.abort(e);
                }
            });
            threads.add(t);
        }
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                worlds.forEach(w -> w.abort(e));
                throw new IllegalStateException("interrupted while waiting for the mesh ranks", e);
            }
        }
        Throwable f = failure.get();
        if (f != null) {
            String msg = "rank " + failedRank[0] + " of mesh " + config + " failed: " + f.getMessage();
            if (f instanceof Error err) throw err;
            if (f instanceof IllegalArgumentException) throw new IllegalArgumentException(msg, f);
            throw new IllegalStateException(msg, f);
        }
        return results;
    }

    /** Fails unless every communicator spans the mesh's world and their ranks are distinct. */
    public static void checkRanks(ParallelConfig config, List<? extends Communicator> worlds) {
        if (worlds.isEmpty()) throw new IllegalArgumentException("mesh " + config + ": no ranks to run (no world communicators given)");
        boolean[] seen = new boolean[config.worldSize()];
        for (Communicator w : worlds) {
            config.checkWorldSize(w.size());
            if (seen[w.rank()])
                throw new IllegalArgumentException("mesh " + config + ": rank " + w.rank() + " is given twice; each rank runs on one thread");
            seen[w.rank()] = true;
        }
    }
}
