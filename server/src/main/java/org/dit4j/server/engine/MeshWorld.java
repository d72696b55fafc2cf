package org.dit4j.server.engine;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.engine.parallel.MeshBackends;
import org.dit4j.engine.parallel.MeshComms;
import org.dit4j.engine.parallel.MeshRunner;
import org.dit4j.engine.parallel.ParallelConfig;

/**
 * The ranks of {@code dit4j serve}'s multi-GPU sampling (ParallelUNETLoader num_gpus &gt; 1), shared by every model
 * kind of one engine (the Flux and the Wan mesh), so that one server never holds two NCCL worlds on the same GPUs:
 * rank 0 is the engine's backend; ranks 1.. are cuda:1 … over NCCL when it runs on cuda:0, or a {@link CpuBackend} each
 * over the in-process {@link LocalCommunicator} on the CPU. The worlds and the axis groups ({@link MeshRunner#open})
 * are built when a prompt first asks for a layout and kept until another layout is asked for (or a run fails, which
 * aborts its communicators); the model kinds' rank weights live in their own meshes, which register a release hook
 * ({@link #onDiscard}) called before the backends they live on are closed.
 *
 * <p>All calls come from the server's single prompt worker.
 */
public final class MeshWorld implements AutoCloseable {

    private final Ops main;
    private final List<Runnable> discardHooks = new ArrayList<>();
    private final List<AutoCloseable> owned = new ArrayList<>();
    private ParallelConfig config;
    private List<Ops> rankOps = List.of();
    private List<MeshComms> comms = List.of();
    private int builds;

    /** @param main rank 0's backend (the engine's) */
    public MeshWorld(Ops main) { this.main = main; }

    /**
     * The mesh degrees (dp × cfg × ring × ulysses) of a ParallelUNETLoader setting; messages name the node input to
     * change. {@code model} names the model family in the pipefusion refusal.
     */
    public static ParallelConfig layout(ModelRef.ParallelSetting p, String model) {
        if (p.pipefusion() != 1)
            throw new UnsupportedOperationException("pipefusion_degree " + p.pipefusion() + ": dit4j has no pipeline-parallel " + model
                    + " transformer; set pipefusion_degree to 1 and use ulysses_degree / ring_degree");
        int seqCfg = p.ulysses() * p.ring() * p.cfg();
        if (p.gpus() % seqCfg != 0)
            throw new IllegalArgumentException("num_gpus " + p.gpus() + " is not a multiple of ulysses × ring × cfg = " + seqCfg);
        return new ParallelConfig(p.gpus() / seqCfg, p.cfg(), p.ring(), p.ulysses());
    }

    /** Registers what to release (rank weights) whenever the ranks are dropped; called before their backends close. */
    public synchronized void onDiscard(Runnable hook) { discardHooks.add(hook); }

    /** The layout now built (null before the first multi-GPU prompt and after a discard). */
    public synchronized ParallelConfig config() { return config; }

    /** How many times ranks were built (a layout asked for that was not the one built). */
    public synchronized int builds() { return builds; }

    /** The backend of each rank (rank order) of the layout built. */
    public synchronized List<Ops> rankOps() { return rankOps; }

    /** Builds the ranks for {@code want} unless it is the layout already built (then nothing happens). */
    public synchronized void ensure(ParallelConfig want) {
        if (want.equals(config)) return;
        discard();
        int n = want.worldSize();
        List<Ops> ops;
        try {
            MeshBackends m;
            if (main instanceof CudaBackend cuda) {
                if (cuda.device().index() != 0)
                    throw new IllegalArgumentException("multi-GPU sampling needs the server on cuda:0, but it runs on " + main.name()
                            + "; start dit4j serve with --backend cuda");
                int have = CudaDriver.get().deviceCount();
                if (n > have)
                    throw new IllegalArgumentException("num_gpus " + n + " but this machine has " + have + " GPU(s); set num_gpus to at most " + have);
                m = MeshBackends.cuda(main, n, "sampler");
            } else {
                m = MeshBackends.cpu(main, n);
            }
            owned.addAll(m.owned());         // communicators first, then backends
            ops = m.ops();
            List<? extends Communicator> worlds = m.worlds();
            // the axis groups once per mesh (each split is an NCCL communicator creation), closed before the worlds
            comms = MeshRunner.open(want, worlds);
            for (MeshComms c : comms) owned.addFirst(c);
        } catch (RuntimeException e) {
            discard();
            throw e;
        }
        rankOps = List.copyOf(ops);
        config = want;
        builds++;
        System.out.println("dit4j server: multi-GPU mesh " + want + " on " + n + " rank(s) (" + main.name() + (n > 1 ? " …" : "") + ")");
    }

    /**
     * Runs {@code task} on every rank (one thread each) and returns rank 0's result. On a failure the ranks are dropped
     * (their communicators were aborted) and the failure rethrown; an interrupt ({@link InterruptedRun}) on any rank
     * is rethrown as itself.
     */
    public <T> T run(MeshRunner.RankTask<T> task) {
        List<MeshComms> c;
        synchronized (this) {
            if (config == null) throw new IllegalStateException("no mesh built: call ensure(layout) first");
            c = comms;
        }
        try {
            return MeshRunner.run(c, task).getFirst();
        } catch (RuntimeException e) {
            discard();
            Throwable cause = e;
            while (cause != null && !(cause instanceof InterruptedRun)) cause = cause.getCause();
            if (cause instanceof InterruptedRun ir) throw ir;
            throw e;
        }
    }

    /** Drops the ranks: the meshes' rank weights (hooks), then groups, worlds and extra backends. */
    public synchronized void discard() {
        for (Runnable h : discardHooks) {
            try {
                h.run();
            } catch (RuntimeException e) {
                System.err.println("dit4j server: releasing a mesh's rank weights failed: " + e);
            }
        }
        for (AutoCloseable c : owned) {
            try {
                c.close();
            } catch (Exception e) {
                System.err.println("dit4j server: closing " + c + " failed: " + e);
            }
        }
        owned.clear();
        rankOps = List.of();
        comms = List.of();
        config = null;
    }

    @Override public synchronized void close() { discard(); }
}
