package org.dit4j.engine.parallel;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.CommunicatorAbortedException;
import org.dit4j.core.parallel.LocalCommunicator;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * One worker thread per rank of this process (every rank of the mesh, or this node's share of a multi-node mesh):
 * builds each rank's {@link MeshComms} from its world communicator and runs a task on those ranks at once. If a rank fails, the world (and thus every axis group) is aborted so that the other ranks
 * leave their collectives, and the first real failure is rethrown, naming the rank. Tasks manage their own tensor
 * lifetimes (no scope is opened for them) and should return host values or tensors they own.
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
     * results are in the order of {@code worlds}.
     */
    public static <T> List<T> run(ParallelConfig config, List<? extends Communicator> worlds, RankTask<T> task) {
        checkRanks(config, worlds);
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
                try (MeshComms comms = MeshComms.create(config, world)) {
                    T out = task.run(comms);
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
