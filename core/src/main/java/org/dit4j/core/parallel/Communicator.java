package org.dit4j.core.parallel;

import org.dit4j.core.tensor.Tensor;

/**
 * A group of ranks that exchange tensors: the SPI under every multi-GPU strategy. One object per rank; each rank
 * drives its own from its own thread. Tensors are on the caller's backend (host tensors for {@link LocalCommunicator},
 * the GPU's for the NCCL communicator); results are new tensors allocated on the calling thread, so they belong to
 * its current {@link org.dit4j.core.tensor.Scope}, and inputs are never modified.
 *
 * <p>Every method except {@link #rank()}, {@link #size()} and {@link #abort} is <em>collective</em>: all ranks of the
 * group call it, in the same order, with tensors of equal dtype and shape (what each method says otherwise). Ranks are
 * numbered 0..size−1; "in rank order" below means rank 0's part first.
 *
 * <p>Layout conventions follow the tensors' row-major order: {@link #allGather} concatenates along a dim,
 * {@link #allToAll} splits one dim into size() equal chunks, sends chunk j to rank j, and concatenates what it receives
 * along another dim (for Ulysses: split heads, gather the sequence, and back).
 */
public interface Communicator extends AutoCloseable {

    /** This rank's index in the group, 0..size−1. */
    int rank();

    /** Number of ranks in the group. */
    int size();

    /** Sum of x over all ranks, on every rank. Same shape and dtype as x. */
    Tensor allReduce(Tensor x);

    /** Every rank's x concatenated along {@code dim} in rank order: shape of x with dim multiplied by size(). */
    Tensor allGather(Tensor x, int dim);

    /**
     * x split along {@code splitDim} into size() equal chunks; chunk j goes to rank j; the size() chunks a rank receives
     * are concatenated along {@code concatDim} in rank order. x.dim(splitDim) must be divisible by size(). Output: x's
     * shape with splitDim divided and concatDim multiplied by size().
     */
    Tensor allToAll(Tensor x, int splitDim, int concatDim);

    /**
     * {@link #allToAll} of several tensors with the same split and concat dims as one collective: out[i] =
     * allToAll(xs[i], splitDim, concatDim), bit for bit. The tensors may differ in dtype and shape (all ranks pass the
     * same list). Lets a backend move them in one exchange (NCCL: one group of sends and receives instead of one per
     * tensor), e.g. Ulysses' q, k and v. The default calls {@link #allToAll} per tensor, in order.
     */
    default Tensor[] allToAll(Tensor[] xs, int splitDim, int concatDim) {
        Tensor[] out = new Tensor[xs.length];
        for (int i = 0; i < xs.length; i++) out[i] = allToAll(xs[i], splitDim, concatDim);
        return out;
    }

    /**
     * Sends x to rank {@code dst} and returns the tensor received from rank {@code src} (same shape and dtype as x).
     * Collective: the (rank → dst) pairs of all ranks must form a permutation, with each rank's src its sender.
     */
    Tensor sendRecv(Tensor x, int dst, int src);

    /**
     * {@link #sendRecv} of several tensors to the same dst from the same src as one exchange: out[i] =
     * sendRecv(xs[i], dst, src), bit for bit (e.g. ring attention's K and V blocks). The default calls
     * {@link #sendRecv} per tensor, in order; NCCL sends them in one group.
     */
    default Tensor[] sendRecv(Tensor[] xs, int dst, int src) {
        Tensor[] out = new Tensor[xs.length];
        for (int i = 0; i < xs.length; i++) out[i] = sendRecv(xs[i], dst, src);
        return out;
    }

    /** {@link #ringPass} of several tensors as one exchange. */
    default Tensor[] ringPass(Tensor[] xs) {
        int n = size(), r = rank();
        return sendRecv(xs, (r + 1) % n, (r + n - 1) % n);
    }

    /** One step around the ring: sends x to rank+1 and returns what rank−1 sent (modulo size()). */
    default Tensor ringPass(Tensor x) {
        int n = size(), r = rank();
        return sendRecv(x, (r + 1) % n, (r + n - 1) % n);
    }

    /**
     * An exchange started by {@link #startAllToAll} or {@link #startSendRecv}: {@link #await} hands back its results.
     * Must be awaited exactly once, on the thread that started it, before that thread's scope closes, and (on a GPU)
     * before a CUDA graph captured around it ends.
     */
    interface Pending {
        /**
         * The exchange's results, out[i] for input xs[i], exactly what the synchronous form returns. Work the caller
         * queues after this call sees the data (on a GPU, the compute stream waits for the exchange here; the host does
         * not). The inputs may be closed or overwritten from here on, not before.
         */
        Tensor[] await();

        /** An exchange that is already complete: {@link #await} returns {@code out}, once. */
        static Pending done(Tensor[] out) {
            return new Pending() {
                private boolean taken;

                @Override public Tensor[] await() {
                    if (taken) throw new IllegalStateException("this exchange was already awaited");
                    taken = true;
                    return out;
                }
            };
        }
    }

    /**
     * Starts {@link #allToAll(Tensor[], int, int)} and returns at once; {@link Pending#await} gives its results. On a
     * GPU the exchange runs on a communication stream, overlapping the work the caller queues before awaiting it. The
     * same collective rules apply (all ranks, same order of starts). Lifetime rules: keep every input open and
     * unmodified until {@link Pending#await} (the exchange may still read it), and do not read the results before it;
     * results are allocated at the start on the calling thread (its current scope). Several exchanges may be pending
     * at once; they complete in the order started. The default does the synchronous exchange now (exact and simple on
     * the host).
     */
    default Pending startAllToAll(Tensor[] xs, int splitDim, int concatDim) {
        return Pending.done(allToAll(xs, splitDim, concatDim));
    }

    /**
     * Starts the all-to-all of a slab of each tensor: out[i] = allToAll(xs[i][…, start : start+length, …], splitDim,
     * concatDim), the slab taken along splitDim; length must be divisible by size(). Lets a pipelined caller exchange
     * part of a tensor (e.g. one chunk of Ulysses' heads) without copying it out first: a GPU communicator packs the
     * strided chunks on its communication stream. Same rules as {@link #startAllToAll(Tensor[], int, int)}. The default
     * copies the slabs of host tensors (the in-process communicator) and starts the plain exchange on them; a device
     * communicator must override it.
     */
    default Pending startAllToAll(Tensor[] xs, int splitDim, int concatDim, long start, long length) {
        if (xs == null || xs.length == 0) throw new IllegalArgumentException("startAllToAll: at least one tensor, got none");
        Tensor[] slabs = new Tensor[xs.length];
        for (int i = 0; i < xs.length; i++) {
            Tensor x = xs[i];
            if (!x.device().isCpu())
                throw new UnsupportedOperationException(getClass().getSimpleName() + " does not implement the slab all-to-all for " + x.device()
                        + " tensors (xs[" + i + "] " + x.shape() + "); it must override startAllToAll(xs, splitDim, concatDim, start, length)");
            int sd = splitDim < 0 ? splitDim + x.rank() : splitDim;
            if (sd < 0 || sd >= x.rank()) throw new IllegalArgumentException("startAllToAll: splitDim " + splitDim + " is not a dimension of xs[" + i + "] " + x.shape());
            if (start < 0 || length < 0 || start + length > x.dim(sd) || length % size() != 0)
                throw new IllegalArgumentException("startAllToAll: slab [" + start + ", " + (start + length) + ") of dim " + sd + " of xs[" + i + "] "
                        + x.shape() + " must lie inside the dim and have a length divisible by the group size " + size());
            Tensor slab = Tensor.zeros(x.dtype(), x.shape().with(sd, length));
            long[] st = x.shape().strides();
            HostCopy.copyBox(x.segment(), start * st[sd], st, slab.segment(), 0, slab.shape().strides(), slab.shape().dims(), x.dtype().byteSize());
            slabs[i] = slab;
        }
        return startAllToAll(slabs, splitDim, concatDim);
    }

    /** Starts {@link #sendRecv(Tensor[], int, int)}; the lifetime rules of {@link #startAllToAll}. Default: synchronous. */
    default Pending startSendRecv(Tensor[] xs, int dst, int src) {
        return Pending.done(sendRecv(xs, dst, src));
    }

    /** Starts {@link #ringPass(Tensor[])}: sends to rank+1, receives from rank−1 (see {@link #startAllToAll}). */
    default Pending startRingPass(Tensor[] xs) {
        int n = size(), r = rank();
        return startSendRecv(xs, (r + 1) % n, (r + n - 1) % n);
    }

    /** Rank {@code root}'s x on every rank (the others' x only gives the shape and dtype). */
    Tensor broadcast(Tensor x, int root);

    /** Returns once every rank has called it and all earlier collectives of this rank are complete. */
    void barrier();

    /**
     * Splits the group (collective): ranks passing the same {@code color} (≥ 0) form a new group, ordered by
     * {@code key} (ties by rank here). The new communicator is a child of this one: aborting this one aborts it.
     */
    Communicator split(int color, int key);

    /**
     * Marks the group failed (not collective): every rank blocked in or later entering a collective of this group or
     * of its split children throws {@link CommunicatorAbortedException} carrying {@code cause}. Used by the mesh
     * runner when one rank fails, so the others do not wait forever.
     */
    void abort(Throwable cause);

    /** Releases this rank's resources (not collective). Split children are closed separately by their owners. */
    @Override void close();
}
