package org.dit4j.cuda;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.CommunicatorAbortedException;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * {@link Communicator} over NCCL for one rank = one GPU = one {@link CudaBackend}. Every collective is queued on the
 * backend's stream, in order with its kernels, without host synchronisation (except {@link #barrier}); results are new
 * tensors of the backend. Data types: whatever NCCL moves (F32, BF16, F16, fp8, ints); sums in the dtype.
 *
 * <p>Chunked layouts: NCCL moves contiguous blocks, so a side of an all-to-all (or an all-gather) needs no copy when
 * every dim before its split dim (sending) or concat dim (receiving) has size 1, and otherwise one strided 2-D copy
 * per peer reorders it; the own chunk of an all-to-all skips NCCL (one copy from x to its place). Several tensors
 * go in one NCCL group ({@link #allToAll(Tensor[], int, int)}).
 *
 * <p>Create the world with {@link #initAll} (all GPUs of this process), {@link #initRank} (one rank of a multi-process
 * or multi-host group, the 128-byte unique id passed around by the caller) or {@link #initRanks} (several local GPUs
 * of such a group), then {@link #split} per mesh axis
 * (ncclCommSplit). Drive each rank from its own thread. Keep {@code NCCL_NVLS_ENABLE=0} in the environment.
 */
public final class NcclCommunicator implements Communicator {
    private final Nccl nccl = Nccl.get();
    private final CudaBackend backend;
    private final long comm;
    private final int rank, size;
    private final List<NcclCommunicator> children = new CopyOnWriteArrayList<>();
    private volatile Throwable aborted;
    private boolean closed;
    private Tensor barrierScratch;

    private NcclCommunicator(CudaBackend backend, long comm) {
        this.backend = backend;
        this.comm = comm;
        this.rank = nccl.commUserRank(comm);
        this.size = nccl.commCount(comm);
        int dev = nccl.commCuDevice(comm);
        if (dev != backend.device().index())
            throw new IllegalStateException("NCCL communicator rank " + rank + " is on CUDA device " + dev + " but its backend is "
                    + backend.device());
    }

    /** One communicator per backend, rank r on backends.get(r) (distinct devices of this process; ncclCommInitAll). */
    public static List<Communicator> initAll(List<CudaBackend> backends) {
        int[] devices = new int[backends.size()];
        for (int i = 0; i < devices.length; i++) {
            devices[i] = backends.get(i).device().index();
            for (int j = 0; j < i; j++)
                if (devices[j] == devices[i])
                    throw new IllegalArgumentException("NCCL runs one rank per GPU, but ranks " + j + " and " + i + " are both on cuda:"
                            + devices[i] + "; use the in-process LocalCommunicator to simulate ranks");
        }
        // ncclCommInitAll switches this thread's device; put back the context the backends believe is current
        CudaDriver drv = CudaDriver.get();
        long before = drv.contextGetCurrent();
        long[] comms;
        try {
            comms = Nccl.get().commInitAll(devices);
        } finally {
            if (before != 0) drv.contextSetCurrent(before);
        }
        List<Communicator> out = new ArrayList<>(comms.length);
        for (int i = 0; i < comms.length; i++) out.add(new NcclCommunicator(backends.get(i), comms[i]));
        return out;
    }

    /**
     * Joins a group of {@code nranks} as {@code rank} on the backend's GPU (call it from the rank's own thread); {@code uniqueId} comes from
     * {@link Nccl#uniqueId()} on rank 0, passed to all ranks out of band. Blocks until all ranks have joined.
     */
    public static NcclCommunicator initRank(CudaBackend backend, int nranks, byte[] uniqueId, int rank) {
        backend.makeCurrent();
        return new NcclCommunicator(backend, Nccl.get().commInitRank(nranks, uniqueId, rank));
    }

    /**
     * This process's share of a multi-process (or multi-host) world of {@code nranks}: one communicator per local GPU,
     * {@code local.get(i)} as global rank {@code firstRank + i}, all joined from this thread inside one NCCL group
     * (ncclGroupStart, one ncclCommInitRank per GPU with its device current, ncclGroupEnd; NCCL needs the group when one
     * thread initialises several ranks). {@code uniqueId} comes from {@link Nccl#uniqueId()} in the process of rank 0
     * (e.g. through {@code Rendezvous}). Blocks until every rank of the world has joined.
     */
    public static List<Communicator> initRanks(List<CudaBackend> local, int nranks, byte[] uniqueId, int firstRank) {
        int n = local.size();
        if (n < 1) throw new IllegalArgumentException("initRanks: no local GPUs given");
        if (firstRank < 0 || firstRank + n > nranks)
            throw new IllegalArgumentException("initRanks: local ranks " + firstRank + ".." + (firstRank + n - 1) + " do not fit a world of "
                    + nranks + " ranks");
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                if (local.get(j).device().index() == local.get(i).device().index())
                    throw new IllegalArgumentException("NCCL runs one rank per GPU, but local ranks " + (firstRank + j) + " and "
                            + (firstRank + i) + " are both on " + local.get(i).device());
        if (n == 1) return List.of(initRank(local.getFirst(), nranks, uniqueId, firstRank));
        Nccl nccl = Nccl.get();
        CudaDriver drv = CudaDriver.get();
        long before = drv.contextGetCurrent();
        long[] comms = new long[n];
        nccl.groupStart();
        try {
            for (int i = 0; i < n; i++) {
                local.get(i).makeCurrent();
                comms[i] = nccl.commInitRank(nranks, uniqueId, firstRank + i);
            }
        } finally {
            try {
                nccl.groupEnd();
            } finally {
                CudaBackend.forgetCurrent();
                if (before != 0) drv.contextSetCurrent(before);
            }
        }
        List<Communicator> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) out.add(new NcclCommunicator(local.get(i), comms[i]));
        return out;
    }

    public CudaBackend backend() { return backend; }

    @Override public int rank() { return rank; }

    @Override public int size() { return size; }

    @Override public String toString() { return "NcclCommunicator(rank " + rank + " of " + size + " on " + backend.device() + ")"; }

    // ------------------------------------------------------------------ collectives

    @Override public Tensor allReduce(Tensor x) {
        enter("allReduce", x);
        Tensor out = backend.empty(x.dtype(), x.shape());
        nccl.allReduce(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), Nccl.SUM, comm, backend.stream());
        return out;
    }

    @Override public Tensor allGather(Tensor x, int dim) {
        enter("allGather", x);
        int d = dim(x, dim, "dim");
        Tensor out = backend.empty(x.dtype(), x.shape().with(d, x.dim(d) * size));
        long pre = prefix(x.shape(), d), es = x.dtype().byteSize(), block = x.byteSize() / Math.max(1, pre);
        if (pre == 1) {
            backend.profileBegin();
            nccl.allGather(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), comm, backend.stream());
            backend.profileEnd("nccl all-gather");
            return out;
        }
        Tensor recv = backend.empty(x.dtype(), Shape.of((long) size * x.numel()));
        backend.profileBegin();
        nccl.allGather(x.address(), recv.address(), x.numel(), Nccl.dataType(x.dtype()), comm, backend.stream());
        backend.profileEnd("nccl all-gather");
        // recv: [size][pre][block] → out: [pre][size][block]
        for (int r = 0; r < size; r++)
            backend.copy2d(out.address() + r * block, size * block, recv.address() + r * x.byteSize(), block, block, pre);
        recv.close();
        return out;
    }

    @Override public Tensor allToAll(Tensor x, int splitDim, int concatDim) {
        return allToAll(new Tensor[] {x}, splitDim, concatDim)[0];
    }

    /**
     * All the tensors in one NCCL group of sends and receives (one exchange instead of one per tensor). The rank's own
     * chunk never goes through NCCL: one strided copy takes it from x straight to its place in the output. A chunk that
     * is strided in x (outer dims before splitDim not all 1) is packed for its peer by one 2-D copy; a block that lands
     * strided in the output (outer dims before concatDim not all 1) is received into a scratch buffer and placed by one
     * 2-D copy. Ulysses on [1, L, H, d] (split heads, concat sequence) thus packs size−1 chunks and receives in place;
     * the way back (split sequence, concat heads) sends in place and places size−1 blocks.
     */
    @Override public Tensor[] allToAll(Tensor[] xs, int splitDim, int concatDim) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("allToAll: at least one tensor, got none");
        int n = xs.length;
        Tensor[] out = new Tensor[n], send = new Tensor[n], recv = new Tensor[n];
        long[] pieceBytes = new long[n];
        for (int i = 0; i < n; i++) {
            Tensor x = xs[i];
            enter("allToAll", x);
            int sd = dim(x, splitDim, "splitDim"), cd = dim(x, concatDim, "concatDim");
            if (x.dim(sd) % size != 0)
                throw new IllegalArgumentException("allToAll: dim " + sd + " of x" + (n > 1 ? "[" + i + "] " : " ") + x.shape()
                        + " must be divisible by the group size " + size);
            Shape piece = x.shape().with(sd, x.dim(sd) / size);
            out[i] = backend.empty(x.dtype(), piece.with(cd, piece.dim(cd) * size));
            long pb = piece.numel() * x.dtype().byteSize();
            pieceBytes[i] = pb;
            // send side: chunk j = `pre` rows of chunkRow bytes, row r at x + (r·size + j)·chunkRow
            long pre = prefix(x.shape(), sd), chunkRow = pb / Math.max(1, pre);
            // receive side: block s lands as `preOut` rows of blockRow bytes, row r at out + (r·size + s)·blockRow
            long preOut = prefix(piece, cd), blockRow = pb / Math.max(1, preOut);
            send[i] = pre == 1 ? x : backend.empty(x.dtype(), x.shape());
            recv[i] = preOut == 1 ? out[i] : backend.empty(x.dtype(), x.shape());
            if (pb == 0) continue;
            for (int j = 0; j < size; j++)
                if (pre != 1 && (j != rank || preOut != 1))   // the own chunk is packed only when it lands strided too
                    backend.copy2d(send[i].address() + j * pb, chunkRow, x.address() + j * chunkRow, size * chunkRow, chunkRow, pre);
            if (preOut == 1) {
                // own chunk → own block, contiguous in out: one (strided-source) copy
                if (pre == 1) backend.copy2d(out[i].address() + rank * pb, pb, x.address() + rank * pb, pb, pb, 1);
                else backend.copy2d(out[i].address() + rank * pb, chunkRow, x.address() + rank * chunkRow, size * chunkRow, chunkRow, pre);
            } else {
                // own chunk (contiguous in x, or packed above) → its strided rows in out
                backend.copy2d(out[i].address() + rank * blockRow, size * blockRow, send[i].address() + rank * pb, blockRow, blockRow, preOut);
            }
        }
        if (size > 1) {
            backend.profileBegin();
            nccl.groupStart();
            try {
                for (int p = 0; p < size; p++) {
                    if (p == rank) continue;
                    for (int i = 0; i < n; i++) {
                        if (pieceBytes[i] == 0) continue;
                        long count = pieceBytes[i] / xs[i].dtype().byteSize();
                        int dt = Nccl.dataType(xs[i].dtype());
                        nccl.send(send[i].address() + p * pieceBytes[i], count, dt, p, comm, backend.stream());
                        nccl.recv(recv[i].address() + p * pieceBytes[i], count, dt, p, comm, backend.stream());
                    }
                }
            } finally {
                nccl.groupEnd();
                backend.profileEnd("nccl all-to-all");
            }
        }
        for (int i = 0; i < n; i++) {
            if (recv[i] != out[i]) {
                Tensor x = xs[i];
                int cd = dim(x, concatDim, "concatDim");
                Shape piece = x.shape().with(dim(x, splitDim, "splitDim"), x.dim(dim(x, splitDim, "splitDim")) / size);
                long preOut = prefix(piece, cd), blockRow = pieceBytes[i] / Math.max(1, preOut);
                for (int s = 0; s < size; s++)
                    if (s != rank)
                        backend.copy2d(out[i].address() + s * blockRow, size * blockRow, recv[i].address() + s * pieceBytes[i], blockRow, blockRow, preOut);
                recv[i].close();
            }
            if (send[i] != xs[i]) send[i].close();
        }
        return out;
    }

    @Override public Tensor sendRecv(Tensor x, int dst, int src) {
        return sendRecv(new Tensor[] {x}, dst, src)[0];
    }

    /** All tensors in one NCCL group (one exchange for e.g. ring attention's K and V). */
    @Override public Tensor[] sendRecv(Tensor[] xs, int dst, int src) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("sendRecv: at least one tensor, got none");
        for (Tensor x : xs) enter("sendRecv", x);
        peer(dst, "dst");
        peer(src, "src");
        Tensor[] out = new Tensor[xs.length];
        for (int i = 0; i < xs.length; i++) out[i] = backend.empty(xs[i].dtype(), xs[i].shape());
        backend.profileBegin();
        nccl.groupStart();
        try {
            for (int i = 0; i < xs.length; i++) {
                int dt = Nccl.dataType(xs[i].dtype());
                nccl.send(xs[i].address(), xs[i].numel(), dt, dst, comm, backend.stream());
                nccl.recv(out[i].address(), xs[i].numel(), dt, src, comm, backend.stream());
            }
        } finally {
            nccl.groupEnd();
            backend.profileEnd("nccl send/recv");
        }
        return out;
    }

    @Override public Tensor broadcast(Tensor x, int root) {
        enter("broadcast", x);
        peer(root, "root");
        Tensor out = backend.empty(x.dtype(), x.shape());
        nccl.broadcast(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), root, comm, backend.stream());
        return out;
    }

    @Override public void barrier() {
        check("barrier");
        if (barrierScratch == null) barrierScratch = backend.zeros(org.dit4j.core.tensor.DType.F32, Shape.of(1));
        backend.makeCurrent();
        nccl.allReduce(barrierScratch.address(), barrierScratch.address(), 1, Nccl.FLOAT32, Nccl.SUM, comm, backend.stream());
        backend.synchronize();
    }

    @Override public Communicator split(int color, int key) {
        check("split");
        if (color < 0) throw new IllegalArgumentException("split: color must be >= 0, got " + color);
        backend.makeCurrent();
        NcclCommunicator child = new NcclCommunicator(backend, nccl.commSplit(comm, color, key));
        children.add(child);
        return child;
    }

    @Override public void abort(Throwable cause) {
        if (aborted != null) return;
        aborted = cause == null ? new IllegalStateException("aborted") : cause;
        for (NcclCommunicator c : children) c.abort(aborted);
        if (!closed) {
            closed = true;
            try {
                nccl.commAbort(comm);
            } catch (RuntimeException ignored) {
                // aborting is best effort on a failing group
            }
        }
    }

    @Override public void close() {
        if (closed) return;
        closed = true;
        if (barrierScratch != null) barrierScratch.close();
        nccl.commDestroy(comm);
    }

    // ------------------------------------------------------------------ checks

    private void check(String op) {
        if (aborted != null)
            throw new CommunicatorAbortedException(op + " on NCCL rank " + rank + " of " + size + ": the group was aborted: " + aborted, aborted);
        if (closed) throw new IllegalStateException(op + ": this NCCL communicator (rank " + rank + ") is closed");
    }

    private void enter(String op, Tensor x) {
        check(op);
        if (x == null) throw new IllegalArgumentException(op + ": x must not be null");
        if (!x.device().equals(backend.device()))
            throw new IllegalArgumentException(op + ": x " + x.shape() + " lives on " + x.device() + ", but this rank's GPU is "
                    + backend.device() + " (upload it with the rank's backend)");
        backend.makeCurrent();
    }

    private void peer(int r, String what) {
        if (r < 0 || r >= size) throw new IllegalArgumentException(what + " rank " + r + " is outside the group of " + size + " ranks");
    }

    private static int dim(Tensor x, int dim, String what) {
        int d = dim < 0 ? dim + x.rank() : dim;
        if (d < 0 || d >= x.rank()) throw new IllegalArgumentException(what + " " + dim + " is not a dimension of x " + x.shape());
        return d;
    }

    /** Product of the dims before {@code d}. */
    private static long prefix(Shape s, int d) {
        long p = 1;
        for (int i = 0; i < d; i++) p *= s.dim(i);
        return p;
    }
}
