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
 * per rank reorders it. Ulysses on batch-1 [1, L, H, d] tensors thus costs one extra copy per all-to-all (the heads
 * are the inner dim).
 *
 * <p>Create the world with {@link #initAll} (all GPUs of this process) or {@link #initRank} (one rank of a multi-process
 * or multi-host group, the 128-byte unique id passed around by the caller), then {@link #split} per mesh axis
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
            nccl.allGather(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), comm, backend.stream());
            return out;
        }
        Tensor recv = backend.empty(x.dtype(), Shape.of((long) size * x.numel()));
        nccl.allGather(x.address(), recv.address(), x.numel(), Nccl.dataType(x.dtype()), comm, backend.stream());
        // recv: [size][pre][block] → out: [pre][size][block]
        for (int r = 0; r < size; r++)
            backend.copy2d(out.address() + r * block, size * block, recv.address() + r * x.byteSize(), block, block, pre);
        recv.close();
        return out;
    }

    @Override public Tensor allToAll(Tensor x, int splitDim, int concatDim) {
        enter("allToAll", x);
        int sd = dim(x, splitDim, "splitDim"), cd = dim(x, concatDim, "concatDim");
        if (x.dim(sd) % size != 0)
            throw new IllegalArgumentException("allToAll: dim " + sd + " of x " + x.shape() + " must be divisible by the group size " + size);
        Shape piece = x.shape().with(sd, x.dim(sd) / size);
        Shape outShape = piece.with(cd, piece.dim(cd) * size);
        long es = x.dtype().byteSize(), pieceBytes = piece.numel() * es;
        // send side: chunk j of every one of the `pre` outer rows → block j, contiguous
        long pre = prefix(x.shape(), sd), chunkRow = pieceBytes / Math.max(1, pre);
        Tensor send = x;
        if (pre != 1) {
            send = backend.empty(x.dtype(), x.shape());
            for (int j = 0; j < size; j++)
                backend.copy2d(send.address() + j * pieceBytes, chunkRow, x.address() + j * chunkRow, size * chunkRow, chunkRow, pre);
        }
        // receive side: block s lands at position s along concatDim
        Tensor out = backend.empty(x.dtype(), outShape);
        long preOut = prefix(piece, cd), blockRow = pieceBytes / Math.max(1, preOut);
        Tensor recv = preOut == 1 ? out : backend.empty(x.dtype(), x.shape());
        nccl.allToAll(send.address(), recv.address(), piece.numel(), Nccl.dataType(x.dtype()), (int) es, comm, backend.stream());
        if (recv != out) {
            for (int s = 0; s < size; s++)
                backend.copy2d(out.address() + s * blockRow, size * blockRow, recv.address() + s * pieceBytes, blockRow, blockRow, preOut);
            recv.close();
        }
        if (send != x) send.close();
        return out;
    }

    @Override public Tensor sendRecv(Tensor x, int dst, int src) {
        enter("sendRecv", x);
        peer(dst, "dst");
        peer(src, "src");
        Tensor out = backend.empty(x.dtype(), x.shape());
        int dt = Nccl.dataType(x.dtype());
        nccl.groupStart();
        try {
            nccl.send(x.address(), x.numel(), dt, dst, comm, backend.stream());
            nccl.recv(out.address(), x.numel(), dt, src, comm, backend.stream());
        } finally {
            nccl.groupEnd();
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
