package org.dit4j.core.parallel;

import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Function;

/**
 * The in-process {@link Communicator}: N ranks are N threads of one JVM exchanging host tensors, so every parallel
 * strategy runs in CI without GPUs. Exact and deterministic: data moves bit for bit, and {@link #allReduce} adds the
 * ranks' values in rank order (in f32, rounded once to the dtype), so results do not depend on thread timing.
 *
 * <p>Each collective deposits this rank's argument, waits for all ranks, reads what it needs from the others'
 * arguments into a new tensor, and waits again (so no rank frees or reuses an argument another still reads). All ranks
 * check the same deposited arguments, so a mismatch (shape, dtype, collective kind) fails on every rank with the same
 * message. A rank that waits longer than the timeout aborts the group: a rank that never calls a collective turns into
 * an error, not a hang.
 */
public final class LocalCommunicator implements Communicator {
    /** How long a rank waits for the others at a collective unless told otherwise. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(5);

    private final Group group;
    private final int rank;
    private int splits;   // collective split calls so far; equal on all ranks of the group

    private LocalCommunicator(Group group, int rank) {
        this.group = group;
        this.rank = rank;
    }

    /** A new group of {@code n} ranks; element r of the list is rank r. Hand each to its own thread. */
    public static List<Communicator> group(int n) { return group(n, DEFAULT_TIMEOUT); }

    /** A new group of {@code n} ranks whose collectives fail after waiting {@code timeout} for the other ranks. */
    public static List<Communicator> group(int n, Duration timeout) {
        if (n < 1) throw new IllegalArgumentException("a communicator group needs at least one rank, got " + n);
        Group g = new Group(n, timeout.toMillis(), "local group of " + n);
        List<Communicator> out = new ArrayList<>(n);
        for (int r = 0; r < n; r++) out.add(new LocalCommunicator(g, r));
        return out;
    }

    @Override public int rank() { return rank; }

    @Override public int size() { return group.size; }

    @Override public String toString() { return "LocalCommunicator(rank " + rank + " of " + group.name + ")"; }

    // ------------------------------------------------------------------ collectives

    @Override public Tensor allReduce(Tensor x) {
        requireHost("allReduce", x);
        return group.collective(rank, new Arg("allReduce", x, 0, 0), all -> {
            requireSame(all, "allReduce");
            int n = Math.toIntExact(x.numel());
            float[] acc = new float[n];
            for (Arg a : all) {                                     // rank order: deterministic
                float[] v = a.x.toFloatArray();
                for (int i = 0; i < n; i++) acc[i] += v[i];
            }
            Tensor out = Tensor.zeros(x.dtype(), x.shape());
            out.setFloats(acc);
            return out;
        });
    }

    @Override public Tensor allGather(Tensor x, int dim) {
        requireHost("allGather", x);
        int d = checkDim("allGather", "dim", x, dim);
        return group.collective(rank, new Arg("allGather", x, d, 0), all -> {
            requireSame(all, "allGather(dim " + d + ")");
            int n = all.length;
            Tensor out = Tensor.zeros(x.dtype(), x.shape().with(d, x.dim(d) * n));
            long[] dst = out.shape().strides();
            for (int r = 0; r < n; r++)
                HostCopy.copyBox(all[r].x.segment(), 0, x.shape().strides(), out.segment(), r * x.dim(d) * dst[d], dst,
                        x.shape().dims(), x.dtype().byteSize());
            return out;
        });
    }

    @Override public Tensor allToAll(Tensor x, int splitDim, int concatDim) {
        requireHost("allToAll", x);
        int sd = checkDim("allToAll", "splitDim", x, splitDim), cd = checkDim("allToAll", "concatDim", x, concatDim);
        int n = group.size;
        if (x.dim(sd) % n != 0)
            throw new IllegalArgumentException("allToAll: dim " + sd + " of x " + x.shape() + " must be divisible by the group size "
                    + n + " (it is split into one chunk per rank)");
        return group.collective(rank, new Arg("allToAll", x, sd, cd), all -> {
            requireSame(all, "allToAll(split " + sd + ", concat " + cd + ")");
            long chunk = x.dim(sd) / n;
            Shape piece = x.shape().with(sd, chunk);
            Tensor out = Tensor.zeros(x.dtype(), piece.with(cd, piece.dim(cd) * n));
            long[] src = x.shape().strides(), dst = out.shape().strides();
            for (int s = 0; s < n; s++)
                HostCopy.copyBox(all[s].x.segment(), rank * chunk * src[sd], src, out.segment(), s * piece.dim(cd) * dst[cd], dst,
                        piece.dims(), x.dtype().byteSize());
            return out;
        });
    }

    @Override public Tensor sendRecv(Tensor x, int dst, int src) {
        requireHost("sendRecv", x);
        checkPeer("dst", dst);
        checkPeer("src", src);
        return group.collective(rank, new Arg("sendRecv", x, dst, src), all -> {
            requireSame(all, "sendRecv");
            int[] receivers = new int[all.length];
            Arrays.fill(receivers, -1);
            for (int r = 0; r < all.length; r++) {
                int to = (int) all[r].a;
                if (receivers[to] >= 0)
                    throw new IllegalStateException("sendRecv: ranks " + receivers[to] + " and " + r + " both send to rank " + to
                            + "; the destinations must form a permutation");
                receivers[to] = r;
            }
            for (int r = 0; r < all.length; r++)
                if ((int) all[r].b != receivers[r])
                    throw new IllegalStateException("sendRecv: rank " + r + " expects to receive from rank " + all[r].b
                            + " but rank " + receivers[r] + " sends to it");
            return copyOf(all[src].x);
        });
    }

    @Override public Tensor broadcast(Tensor x, int root) {
        requireHost("broadcast", x);
        checkPeer("root", root);
        return group.collective(rank, new Arg("broadcast", x, root, 0), all -> {
            requireSame(all, "broadcast");
            for (Arg a : all)
                if (a.a != root) throw new IllegalStateException("broadcast: ranks disagree on the root (" + root + " vs " + a.a + ")");
            return copyOf(all[root].x);
        });
    }

    @Override public void barrier() {
        group.collective(rank, new Arg("barrier", null, 0, 0), all -> {
            requireSame(all, "barrier");
            return null;
        });
    }

    @Override public Communicator split(int color, int key) {
        if (color < 0) throw new IllegalArgumentException("split: color must be >= 0, got " + color);
        int seq = splits++;
        return group.collective(rank, new Arg("split", null, color, key), all -> {
            requireSame(all, "split");
            List<Integer> members = new ArrayList<>();
            for (int r = 0; r < all.length; r++) if (all[r].a == color) members.add(r);
            members.sort(Comparator.<Integer>comparingLong(r -> all[r].b).thenComparingInt(r -> r));
            Group child = group.child(seq + ":" + color, members.size());
            return new LocalCommunicator(child, members.indexOf(rank));
        });
    }

    @Override public void abort(Throwable cause) { group.abort(cause); }

    @Override public void close() {}

    // ------------------------------------------------------------------ checks

    private void checkPeer(String what, int peer) {
        if (peer < 0 || peer >= group.size)
            throw new IllegalArgumentException(what + " rank " + peer + " is outside the group of " + group.size + " ranks");
    }

    private static int checkDim(String op, String what, Tensor x, int dim) {
        int d = dim < 0 ? dim + x.rank() : dim;
        if (d < 0 || d >= x.rank())
            throw new IllegalArgumentException(op + ": " + what + " " + dim + " is not a dimension of x " + x.shape());
        return d;
    }

    private static void requireHost(String op, Tensor x) {
        if (x == null) throw new IllegalArgumentException(op + ": x must not be null");
        if (!x.device().isCpu())
            throw new IllegalArgumentException(op + ": the in-process communicator exchanges host tensors, but x " + x.shape()
                    + " lives on " + x.device() + "; use the NCCL communicator for GPU tensors");
    }

    /** All ranks called the same collective with tensors of one dtype and shape. */
    private static void requireSame(Arg[] all, String op) {
        Arg first = all[0];
        for (int r = 1; r < all.length; r++) {
            Arg a = all[r];
            if (!a.op.equals(first.op))
                throw new IllegalStateException("ranks called different collectives at the same point: rank 0 " + first.op
                        + ", rank " + r + " " + a.op + " (every rank must call the same collectives in the same order)");
            if (first.x == null) continue;
            if (a.x.dtype() != first.x.dtype() || !a.x.shape().equals(first.x.shape()))
                throw new IllegalStateException(op + ": rank 0 passed " + first.x.dtype() + " " + first.x.shape() + " but rank " + r
                        + " passed " + a.x.dtype() + " " + a.x.shape() + "; all ranks must pass equal shapes and dtypes");
            if (!first.op.equals("sendRecv") && !first.op.equals("split") && (a.a != first.a || a.b != first.b))
                throw new IllegalStateException(op + ": ranks disagree on the dimensions (rank 0: " + first.a + ", " + first.b
                        + "; rank " + r + ": " + a.a + ", " + a.b + ")");
        }
    }

    /** What one rank brings to a collective. */
    private record Arg(String op, Tensor x, long a, long b) {}

    /** A new host tensor with src's bytes. */
    private static Tensor copyOf(Tensor src) {
        Tensor out = Tensor.zeros(src.dtype(), src.shape());
        MemorySegment.copy(src.segment(), 0, out.segment(), 0, src.byteSize());
        return out;
    }

    // ------------------------------------------------------------------ the shared state of one group

    /** Slots, a two-phase barrier with abort and timeout, and the children made by split. */
    private static final class Group {
        final int size;
        final long timeoutMs;
        final String name;
        final Arg[] slots;
        final List<Group> children = new CopyOnWriteArrayList<>();
        final Map<String, Group> splitGroups = new ConcurrentHashMap<>();
        private int arrived;
        private long generation;
        private Throwable aborted;

        Group(int size, long timeoutMs, String name) {
            this.size = size;
            this.timeoutMs = timeoutMs;
            this.name = name;
            this.slots = new Arg[size];
        }

        <T> T collective(int rank, Arg mine, Function<Arg[], T> body) {
            slots[rank] = mine;
            await(rank, mine.op);
            T result;
            try {
                result = body.apply(slots.clone());
            } catch (RuntimeException | Error e) {
                // every rank checks the same slots, so argument errors are thrown on all ranks alike; the second wait
                // still happens so that no rank leaves while another reads its argument
                await(rank, mine.op);
                throw e;
            }
            await(rank, mine.op);
            return result;
        }

        synchronized Group child(String id, int n) {
            return splitGroups.computeIfAbsent(id, k -> {
                Group g = new Group(n, timeoutMs, "split " + k + " of " + name);
                children.add(g);
                if (aborted != null) g.abort(aborted);
                return g;
            });
        }

        private synchronized void await(int rank, String op) {
            if (aborted != null) throw abortedError(rank, op);
            long gen = generation;
            if (++arrived == size) {
                arrived = 0;
                generation++;
                notifyAll();
                return;
            }
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (gen == generation) {
                if (aborted != null) throw abortedError(rank, op);
                long left = deadline - System.currentTimeMillis();
                if (left <= 0) {
                    abort(new IllegalStateException("rank " + rank + " of " + name + " waited " + timeoutMs + " ms at " + op
                            + " for the other ranks: a rank failed or skipped a collective (all ranks must call the same "
                            + "collectives in the same order)"));
                    throw abortedError(rank, op);
                }
                try {
                    wait(left);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    abort(e);
                    throw abortedError(rank, op);
                }
            }
        }

        private CommunicatorAbortedException abortedError(int rank, String op) {
            return new CommunicatorAbortedException(op + " on rank " + rank + " of " + name + " was aborted: " + aborted, aborted);
        }

        synchronized void abort(Throwable cause) {
            if (aborted == null) aborted = cause == null ? new IllegalStateException("aborted") : cause;
            notifyAll();
            for (Group g : children) g.abort(aborted);
        }
    }
}
