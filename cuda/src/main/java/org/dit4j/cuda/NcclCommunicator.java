package org.dit4j.cuda;

import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.parallel.CommunicatorAbortedException;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.util.ArrayDeque;
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
 * <p><b>Started exchanges</b> ({@link #startAllToAll}, {@link #startSendRecv}, {@link #startRingPass}) run on the
 * backend's communication stream ({@link CudaBackend#commStream()}): an event recorded on the compute stream at the
 * start makes the communication stream wait until everything queued before (the inputs) is done; the pack copies,
 * the NCCL group and the placing copies go to the communication stream; an event recorded after them is what
 * {@link Pending#await} makes the compute stream wait on. This is a fork and a join, so it works eagerly and inside a
 * CUDA graph capture (the communication stream joins the capture through the first event; every started exchange must
 * be awaited before the capture ends). Memory: outputs and scratch buffers are allocated at the start (before the
 * communication stream may touch them); scratch buffers go back to the allocator only at {@link Pending#await}, after
 * the join, so the allocator's compute-stream ordering stays correct; inputs must stay open until the await (the
 * caller's rule, see {@link Communicator#startAllToAll}). All started exchanges of a backend share one communication
 * stream, so they run in start order, the same order on every rank. A synchronous collective of this communicator
 * while one of its exchanges is pending is refused (await it first).
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
    private final CudaDriver drv = CudaDriver.get();
    /** Recycled events (timing off) of awaited exchanges. */
    private final ArrayDeque<Long> events = new ArrayDeque<>();
    /** Started exchanges not yet awaited. */
    private int pending;

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
        requireIdle("allReduce");
        enter("allReduce", x);
        Tensor out = backend.empty(x.dtype(), x.shape());
        nccl.allReduce(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), Nccl.SUM, comm, backend.stream());
        return out;
    }

    @Override public Tensor allGather(Tensor x, int dim) {
        requireIdle("allGather");
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

    @Override public Tensor[] allToAll(Tensor[] xs, int splitDim, int concatDim) {
        requireIdle("allToAll");
        return allToAllOn(backend.stream(), xs, splitDim, concatDim, 0, -1, null);
    }

    /**
     * All the tensors in one NCCL group of sends and receives (one exchange instead of one per tensor), on {@code
     * stream}; with {@code length ≥ 0} only the slab [start, start+length) of the split dim takes part. The rank's own
     * chunk never goes through NCCL: one strided copy takes it from x straight to its place in the output. A chunk that
     * is strided in x (outer dims before splitDim not all 1) is packed for its peer by one 2-D copy; a block that lands
     * strided in the output (outer dims before concatDim not all 1) is received into a scratch buffer and placed by one
     * 2-D copy. Ulysses on [1, L, H, d] (split heads, concat sequence) thus packs size−1 chunks and receives in place;
     * the way back (split sequence, concat heads) sends in place and places size−1 blocks. Scratch buffers are closed
     * at once (scratch == null: everything is on the compute stream) or added to {@code scratch} (closed by the await).
     */
    private Tensor[] allToAllOn(long stream, Tensor[] xs, int splitDim, int concatDim, long start, long length, List<Tensor> scratch) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("allToAll: at least one tensor, got none");
        int n = xs.length;
        Tensor[] out = new Tensor[n], packed = new Tensor[n], recvBuf = new Tensor[n];
        long[] pieceBytes = new long[n], sendAddr = new long[n], recvAddr = new long[n], blockRows = new long[n], preOuts = new long[n];
        for (int i = 0; i < n; i++) {
            Tensor x = xs[i];
            enter("allToAll", x);
            int sd = dim(x, splitDim, "splitDim"), cd = dim(x, concatDim, "concatDim");
            long full = x.dim(sd), st = length < 0 ? 0 : start, len = length < 0 ? full : length;
            if (st < 0 || st + len > full)
                throw new IllegalArgumentException("allToAll: slab [" + st + ", " + (st + len) + ") is outside dim " + sd + " of x"
                        + (n > 1 ? "[" + i + "] " : " ") + x.shape());
            if (len % size != 0)
                throw new IllegalArgumentException("allToAll: " + (length < 0 ? "dim " + sd + " of x" : "the slab length " + len + " of x")
                        + (n > 1 ? "[" + i + "] " : " ") + x.shape() + " must be divisible by the group size " + size);
            Shape slab = x.shape().with(sd, len), piece = slab.with(sd, len / size);
            out[i] = backend.empty(x.dtype(), piece.with(cd, piece.dim(cd) * size));
            long es = x.dtype().byteSize(), pb = piece.numel() * es;
            pieceBytes[i] = pb;
            long innerBytes = suffixBytes(x, sd);
            // send side: chunk j = `pre` rows of chunkRow bytes, row r at base + r·rowPitch + j·chunkRow
            long pre = prefix(x.shape(), sd), chunkRow = (len / size) * innerBytes, rowPitch = full * innerBytes;
            long base = x.address() + st * innerBytes;
            // receive side: block s lands as `preOut` rows of blockRow bytes, row r at out + (r·size + s)·blockRow
            long preOut = prefix(piece, cd), blockRow = pb / Math.max(1, preOut);
            preOuts[i] = preOut;
            blockRows[i] = blockRow;
            packed[i] = pre == 1 ? null : backend.empty(x.dtype(), slab);
            recvBuf[i] = preOut == 1 ? null : backend.empty(x.dtype(), slab);
            sendAddr[i] = pre == 1 ? base : packed[i].address();
            recvAddr[i] = preOut == 1 ? out[i].address() : recvBuf[i].address();
            if (pb == 0) continue;
            for (int j = 0; j < size; j++)
                if (pre != 1 && (j != rank || preOut != 1))   // the own chunk is packed only when it lands strided too
                    copy(stream, sendAddr[i] + j * pb, chunkRow, base + j * chunkRow, rowPitch, chunkRow, pre);
            if (preOut == 1) {
                // own chunk → own block, contiguous in out: one (strided-source) copy
                if (pre == 1) copy(stream, out[i].address() + rank * pb, pb, base + rank * pb, pb, pb, 1);
                else copy(stream, out[i].address() + rank * pb, chunkRow, base + rank * chunkRow, rowPitch, chunkRow, pre);
            } else {
                // own chunk (contiguous in x, or packed above) → its strided rows in out
                copy(stream, out[i].address() + rank * blockRow, size * blockRow, sendAddr[i] + rank * pb, blockRow, blockRow, preOut);
            }
        }
        boolean timed = stream == backend.stream();   // the profiler brackets work on the compute stream only
        if (size > 1) {
            if (timed) backend.profileBegin();
            nccl.groupStart();
            try {
                for (int p = 0; p < size; p++) {
                    if (p == rank) continue;
                    for (int i = 0; i < n; i++) {
                        if (pieceBytes[i] == 0) continue;
                        long count = pieceBytes[i] / xs[i].dtype().byteSize();
                        int dt = Nccl.dataType(xs[i].dtype());
                        nccl.send(sendAddr[i] + p * pieceBytes[i], count, dt, p, comm, stream);
                        nccl.recv(recvAddr[i] + p * pieceBytes[i], count, dt, p, comm, stream);
                    }
                }
            } finally {
                nccl.groupEnd();
                if (timed) backend.profileEnd("nccl all-to-all");
            }
        }
        for (int i = 0; i < n; i++) {
            if (recvBuf[i] != null) {
                for (int s = 0; s < size; s++)
                    if (s != rank)
                        copy(stream, out[i].address() + s * blockRows[i], size * blockRows[i], recvAddr[i] + s * pieceBytes[i], blockRows[i],
                                blockRows[i], preOuts[i]);
                release(recvBuf[i], scratch);
            }
            if (packed[i] != null) release(packed[i], scratch);
        }
        return out;
    }

    @Override public Tensor sendRecv(Tensor x, int dst, int src) {
        return sendRecv(new Tensor[] {x}, dst, src)[0];
    }

    /** All tensors in one NCCL group (one exchange for e.g. ring attention's K and V). */
    @Override public Tensor[] sendRecv(Tensor[] xs, int dst, int src) {
        requireIdle("sendRecv");
        return sendRecvOn(backend.stream(), xs, dst, src);
    }

    private Tensor[] sendRecvOn(long stream, Tensor[] xs, int dst, int src) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("sendRecv: at least one tensor, got none");
        for (Tensor x : xs) enter("sendRecv", x);
        peer(dst, "dst");
        peer(src, "src");
        Tensor[] out = new Tensor[xs.length];
        for (int i = 0; i < xs.length; i++) out[i] = backend.empty(xs[i].dtype(), xs[i].shape());
        boolean timed = stream == backend.stream();   // the profiler brackets work on the compute stream only
        if (timed) backend.profileBegin();
        nccl.groupStart();
        try {
            for (int i = 0; i < xs.length; i++) {
                int dt = Nccl.dataType(xs[i].dtype());
                nccl.send(xs[i].address(), xs[i].numel(), dt, dst, comm, stream);
                nccl.recv(out[i].address(), xs[i].numel(), dt, src, comm, stream);
            }
        } finally {
            nccl.groupEnd();
            if (timed) backend.profileEnd("nccl send/recv");
        }
        return out;
    }

    // ------------------------------------------------------------------ started exchanges (communication stream)

    /** {@link #allToAll(Tensor[], int, int)} on the communication stream; see the class comment for the ordering rules. */
    @Override public Pending startAllToAll(Tensor[] xs, int splitDim, int concatDim) {
        return start("allToAll", xs, (stream, scratch) -> allToAllOn(stream, xs, splitDim, concatDim, 0, -1, scratch));
    }

    /** The slab all-to-all on the communication stream: the strided chunks are packed there, not on the compute stream. */
    @Override public Pending startAllToAll(Tensor[] xs, int splitDim, int concatDim, long start, long length) {
        if (length < 0) throw new IllegalArgumentException("startAllToAll: slab length must be >= 0, got " + length);
        return start("allToAll", xs, (stream, scratch) -> allToAllOn(stream, xs, splitDim, concatDim, start, length, scratch));
    }

    /** {@link #sendRecv(Tensor[], int, int)} on the communication stream; see the class comment for the ordering rules. */
    @Override public Pending startSendRecv(Tensor[] xs, int dst, int src) {
        return start("sendRecv", xs, (stream, scratch) -> sendRecvOn(stream, xs, dst, src));
    }

    private interface Exchange { Tensor[] run(long stream, List<Tensor> scratch); }

    /** Fork: the communication stream waits for the compute stream's work so far, then runs the exchange. */
    private Pending start(String op, Tensor[] xs, Exchange exchange) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException(op + ": at least one tensor, got none");
        for (Tensor x : xs) enter(op, x);
        long cs = backend.commStream();
        long ready = event(), done = event();
        drv.eventRecord(ready, backend.stream());
        drv.streamWaitEvent(cs, ready);
        List<Tensor> scratch = new ArrayList<>();
        Tensor[] out;
        try {
            out = exchange.run(cs, scratch);
        } catch (RuntimeException | Error e) {
            // join what was queued, so nothing is left forked
            drv.eventRecord(done, cs);
            drv.streamWaitEvent(backend.stream(), done);
            scratch.forEach(Tensor::close);
            events.push(ready);
            events.push(done);
            throw e;
        }
        drv.eventRecord(done, cs);
        pending++;
        return new Started(out, scratch, ready, done);
    }

    /** A started exchange: await joins the communication stream into the compute stream, then frees the scratch. */
    private final class Started implements Pending {
        private final Tensor[] out;
        private final List<Tensor> scratch;
        private final long ready, done;
        private boolean taken;

        Started(Tensor[] out, List<Tensor> scratch, long ready, long done) {
            this.out = out;
            this.scratch = scratch;
            this.ready = ready;
            this.done = done;
        }

        @Override public Tensor[] await() {
            if (taken) throw new IllegalStateException("this exchange of NCCL rank " + rank + " was already awaited");
            taken = true;
            pending--;
            if (closed && aborted == null)
                throw new IllegalStateException("await: this NCCL communicator (rank " + rank + ") was closed with the exchange pending");
            backend.makeCurrent();
            drv.streamWaitEvent(backend.stream(), done);   // join: work queued from here on sees the results
            scratch.forEach(Tensor::close);                // safe: later users are ordered after the join
            events.push(ready);
            events.push(done);
            check("await");
            return out;
        }
    }

    private long event() {
        Long e = events.poll();
        return e != null ? e : drv.eventCreate(CudaDriver.EVENT_DISABLE_TIMING);
    }

    /** 2-D copy on {@code stream}: the backend's own copy on the compute stream (profiled), else the stream variant. */
    private void copy(long stream, long dst, long dstPitch, long src, long srcPitch, long rowBytes, long rows) {
        if (stream == backend.stream()) backend.copy2d(dst, dstPitch, src, srcPitch, rowBytes, rows);
        else backend.copy2d(stream, dst, dstPitch, src, srcPitch, rowBytes, rows);
    }

    /** Frees a scratch buffer now (synchronous: stream order keeps it valid) or at the await (started exchange). */
    private static void release(Tensor t, List<Tensor> scratch) {
        if (scratch == null) t.close();
        else scratch.add(t);
    }

    private void requireIdle(String op) {
        if (pending > 0)
            throw new IllegalStateException(op + " on NCCL rank " + rank + " of " + size + ": " + pending + " started exchange(s) of this "
                    + "communicator are not awaited yet; await them (Pending.await) before a synchronous collective");
    }

    @Override public Tensor broadcast(Tensor x, int root) {
        requireIdle("broadcast");
        enter("broadcast", x);
        peer(root, "root");
        Tensor out = backend.empty(x.dtype(), x.shape());
        nccl.broadcast(x.address(), out.address(), x.numel(), Nccl.dataType(x.dtype()), root, comm, backend.stream());
        return out;
    }

    @Override public void barrier() {
        check("barrier");
        requireIdle("barrier");
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
        for (long e : events) drv.eventDestroy(e);
        events.clear();
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

    /** Bytes of one index of dim {@code d} of x (the product of the dims after d, times the element size). */
    private static long suffixBytes(Tensor x, int d) {
        long p = x.dtype().byteSize();
        for (int i = d + 1; i < x.rank(); i++) p *= x.dim(i);
        return p;
    }

    /** Product of the dims before {@code d}. */
    private static long prefix(Shape s, int d) {
        long p = 1;
        for (int i = 0; i < d; i++) p *= s.dim(i);
        return p;
    }
}
