package org.dit4j.engine.parallel;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.LocalCommunicator;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.NcclCommunicator;

/**
 * The backends and world communicators of a mesh in one process: rank 0 on the caller's backend, ranks 1 … N−1 on
 * backends made here — new CpuBackends over the in-process {@link LocalCommunicator} (what CI runs), or cuda:1 …
 * cuda:(N−1) over NCCL. {@code owned} lists what was made here (communicators first, then backends), for the caller to
 * close; on a failure while building, everything made so far is closed and the error thrown.
 *
 * @param ops    one backend per rank, rank order
 * @param worlds one world communicator per rank, rank order
 * @param owned  what the caller must close (not rank 0's backend)
 */
public record MeshBackends(List<Ops> ops, List<Communicator> worlds, List<AutoCloseable> owned) {

    /** {@code n} CPU ranks in this JVM: rank 0 on {@code rank0}, the others on new CpuBackends sharing the cores. */
    public static MeshBackends cpu(Ops rank0, int n) {
        if (!rank0.device().isCpu())
            throw new IllegalArgumentException("a CPU mesh needs a CPU backend for rank 0, got " + rank0.name());
        int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / n);
        List<Ops> ops = new ArrayList<>();
        List<AutoCloseable> owned = new ArrayList<>();
        ops.add(rank0);
        for (int r = 1; r < n; r++) {
            CpuBackend b = new CpuBackend(threads);
            ops.add(b);
            owned.add(b);
        }
        return new MeshBackends(List.copyOf(ops), List.copyOf(LocalCommunicator.group(n)), owned);
    }

    /**
     * {@code n} GPUs cuda:0 … cuda:(n−1) in this JVM over NCCL ({@code NCCL_NVLS_ENABLE=0} from the caller's environment);
     * {@code rank0} must be cuda:0, {@code what} names the pipeline in the message if not.
     */
    public static MeshBackends cuda(Ops rank0, int n, String what) {
        if (!(rank0 instanceof CudaBackend first) || first.device().index() != 0)
            throw new IllegalArgumentException("a multi-GPU " + what + " needs rank 0 on cuda:0, but the pipeline runs on " + rank0.name()
                    + "; open it with --backend cuda:0 (or cuda)");
        List<CudaBackend> gpus = new ArrayList<>();
        List<AutoCloseable> owned = new ArrayList<>();
        gpus.add(first);
        try {
            for (int r = 1; r < n; r++) {
                CudaBackend b = new CudaBackend(r);
                gpus.add(b);
                owned.add(b);
            }
            List<Communicator> worlds = List.copyOf(NcclCommunicator.initAll(gpus));
            owned.addAll(0, worlds);
            return new MeshBackends(List.copyOf(gpus), worlds, owned);
        } catch (RuntimeException | Error e) {
            closeAll(owned);
            throw e;
        }
    }

    /** Closes what was made here (communicators, then backends); the first failure to close is dropped silently. */
    public void close() { closeAll(owned); }

    /** Closes every non-null element, dropping failures to close (the first failure elsewhere is the one reported). */
    public static void closeAll(List<? extends AutoCloseable> list) {
        for (AutoCloseable c : list) {
            if (c == null) continue;
            try {
                c.close();
            } catch (Exception ignored) {
                // closing after a failure or at the end: the first failure is the one reported
            }
        }
    }
}
