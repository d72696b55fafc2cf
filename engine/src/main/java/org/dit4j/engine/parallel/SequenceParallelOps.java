package org.dit4j.engine.parallel;

import org.dit4j.core.ops.ForwardingOps;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

/**
 * Sequence-parallel attention as an {@link Ops} decorator: a model runs unchanged on its rank's shard of the token
 * sequence, every op goes to the local backend, and only {@link #attention} talks to the other ranks. With q, k, v the
 * rank's rows [B, L/S, H, d] (S = ring·ulysses), it computes the rows of attention over the whole sequence:
 * <ol>
 *   <li><b>Ulysses</b> (group of u ranks): all-to-all heads↔sequence (q, k, v as one collective), so each rank holds
 *       L/ring rows of H/u heads;</li>
 *   <li><b>Ring</b> (group of r ranks): K/V blocks travel around the ring, each step's partial attention
 *       ({@link Ops#attentionWithLse}) is merged with log-sum-exp ({@link Ops#mergeAttention}, accumulated in F32);</li>
 *   <li>all-to-all back to the rank's own rows of all heads.</li>
 * </ol>
 * USP is both at once (ring × ulysses). Attention ignores the order of keys and keeps the order of queries, so any
 * consistent split of the sequence works, as long as per-token inputs (RoPE rows) follow their tokens; which rows a
 * rank holds is decided by the caller (e.g. {@link FluxSequenceParallel}). Shards must be equal in length on all
 * ranks. Attention bias/masks are not supported (none of Flux, Wan, CogVideoX uses one).
 *
 * <p><b>Overlap</b> ({@link Overlap}): exchanges go through {@link Communicator#startAllToAll}/{@link
 * Communicator#startRingPass}, which on a GPU run on a communication stream. Ring attention passes the current K/V
 * block on while computing its partial attention. Ulysses splits the heads into chunks: chunk g+1's q/k/v exchange and
 * chunk g−1's output exchange run while chunk g's attention computes. Both give the same arithmetic as the serial
 * forms (merge order unchanged; attention is per head), so results are bit for bit those of the serial path.
 */
public final class SequenceParallelOps extends ForwardingOps {
    /**
     * How exchanges overlap with attention.
     *
     * @param ringPrefetch  ring attention starts passing each K/V block before computing its partial attention (false:
     *                      pass, then compute, serially)
     * @param ulyssesChunks head chunks of the Ulysses exchange (1: one exchange of all heads, serial with attention);
     *                      lowered to the largest divisor of the heads per rank that is ≤ this
     */
    public record Overlap(boolean ringPrefetch, int ulyssesChunks, boolean ulyssesPrefetch) {
        /** System property with the Ulysses head chunks (default 2). */
        public static final String CHUNKS_PROPERTY = "dit4j.ulysses.chunks";
        /** System property turning ring K/V prefetch off ("false"; default on). */
        public static final String RING_PROPERTY = "dit4j.ring.overlap";

        /** System property turning the Ulysses exchange started at {@link #prefetchAttention} off ("false"; default on). */
        public static final String PREFETCH_PROPERTY = "dit4j.ulysses.prefetch";

        public Overlap {
            if (ulyssesChunks < 1)
                throw new IllegalArgumentException("Ulysses head chunks must be >= 1 (1 = no overlap), got " + ulyssesChunks);
        }

        /** Ring prefetch and head chunks as given; the Ulysses prefetch at {@link #prefetchAttention} on with chunks > 1. */
        public Overlap(boolean ringPrefetch, int ulyssesChunks) { this(ringPrefetch, ulyssesChunks, ulyssesChunks > 1); }

        /** No overlap: today's serial exchanges. */
        public static final Overlap NONE = new Overlap(false, 1, false);

        /** From {@value #CHUNKS_PROPERTY} (default 2) and {@value #RING_PROPERTY} (default true). */
        public static Overlap fromSystemProperties() {
            String c = System.getProperty(CHUNKS_PROPERTY, "2").trim();
            int chunks;
            try {
                chunks = Integer.parseInt(c);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("system property " + CHUNKS_PROPERTY + " must be a whole number >= 1 (1 = no overlap), got '"
                        + c + "'");
            }
            return new Overlap(!"false".equalsIgnoreCase(System.getProperty(RING_PROPERTY, "true").trim()), chunks,
                    !"false".equalsIgnoreCase(System.getProperty(PREFETCH_PROPERTY, "true").trim()));
        }
    }

    private final Communicator ulysses, ring;
    private final Overlap overlap;

    /**
     * @param local   the rank's backend
     * @param ulysses the rank's Ulysses group (size 1: none)
     * @param ring    the rank's ring group (size 1: none)
     */
    public SequenceParallelOps(Ops local, Communicator ulysses, Communicator ring) {
        this(local, ulysses, ring, Overlap.fromSystemProperties());
    }

    /**
     * @param local   the rank's backend
     * @param ulysses the rank's Ulysses group (size 1: none)
     * @param ring    the rank's ring group (size 1: none)
     * @param overlap how exchanges overlap with attention (all ranks must pass the same)
     */
    public SequenceParallelOps(Ops local, Communicator ulysses, Communicator ring, Overlap overlap) {
        super(local);
        this.ulysses = ulysses;
        this.ring = ring;
        this.overlap = overlap;
    }

    public Overlap overlap() { return overlap; }

    /** Head chunks used for {@code heads} heads: the largest divisor of heads/u that is ≤ the configured chunks. */
    int chunksFor(long heads) {
        long perRank = heads / ulysses.size();
        int c = (int) Math.min(overlap.ulyssesChunks(), Math.max(1, perRank));
        while (c > 1 && perRank % c != 0) c--;
        return c;
    }

    /** The decorator for one rank of a mesh. */
    public static SequenceParallelOps of(Ops local, MeshComms comms) { return new SequenceParallelOps(local, comms.ulysses(), comms.ring()); }

    /** The decorator for one rank of a mesh with explicit overlap settings (all ranks must pass the same). */
    public static SequenceParallelOps of(Ops local, MeshComms comms, Overlap overlap) {
        return new SequenceParallelOps(local, comms.ulysses(), comms.ring(), overlap);
    }

    @Override public String name() {
        return delegate.name() + " + sequence parallel (ring " + ring.size() + " × ulysses " + ulysses.size() + ")";
    }

    /** A q/k/v exchange started by {@link #prefetchAttention}, consumed by the next attention call. */
    private record Prefetch(Tensor q, Tensor k, Tensor v, Communicator.Pending pending) {}

    private Prefetch prefetch;

    /**
     * Starts the Ulysses exchange of q, k, v (one all-to-all of all heads on the communication stream) when the overlap
     * setting allows; the next {@link #attention}/{@link #attentionInto} on the same three tensors awaits it instead of
     * exchanging (the same data movement, so the same result bit for bit as the serial path). A call on other tensors
     * awaits and drops it first. No-op without a Ulysses group.
     */
    @Override public void prefetchAttention(Tensor q, Tensor k, Tensor v) {
        if (ulysses.size() == 1 || !overlap.ulyssesPrefetch()) return;
        check(q, k, v, null);
        dropPrefetch();
        prefetch = new Prefetch(q, k, v, ulysses.startAllToAll(new Tensor[] {q, k, v}, 2, 1));
    }

    /** The prefetched exchange of exactly these q, k, v, or null (a prefetch of other tensors is awaited and dropped). */
    private Tensor[] takePrefetch(Tensor q, Tensor k, Tensor v) {
        if (prefetch == null) return null;
        Prefetch p = prefetch;
        prefetch = null;
        Tensor[] h = p.pending().await();
        if (p.q() == q && p.k() == k && p.v() == v) return h;
        for (Tensor t : h) t.close();
        return null;
    }

    /** Awaits and drops a pending prefetch (every started exchange is awaited once). */
    private void dropPrefetch() {
        takePrefetch(null, null, null);
    }

    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        int u = ulysses.size(), r = ring.size();
        if (u == 1 && r == 1) return delegate.attention(q, k, v, bias, scale);
        check(q, k, v, bias);
        Tensor[] pre = u > 1 ? takePrefetch(q, k, v) : null;
        if (pre != null) {
            try (Scope scope = Scope.open()) {
                Tensor o = r > 1 ? ringAttention(pre[0], pre[1], pre[2], scale) : delegate.attention(pre[0], pre[1], pre[2], null, scale);
                for (Tensor t : pre) t.close();
                return scope.keep(ulysses.allToAll(o, 1, 2));   // [B, L/S, H, dv]
            }
        }
        if (u > 1 && chunksFor(q.dim(2)) > 1) {
            try (Scope scope = Scope.open()) {
                Tensor[] parts = ulyssesChunked(q, k, v, scale, chunksFor(q.dim(2)));
                return scope.keep(delegate.concat(2, parts));   // [B, L/S, H, dv]
            }
        }
        try (Scope scope = Scope.open()) {
            // q, k, v in one exchange (one NCCL group): [B, L/r, H/u, d] each
            Tensor[] h = u > 1 ? ulysses.allToAll(new Tensor[] {q, k, v}, 2, 1) : new Tensor[] {q, k, v};
            Tensor qh = h[0], kh = h[1], vh = h[2];
            Tensor o = r > 1 ? ringAttention(qh, kh, vh, scale) : delegate.attention(qh, kh, vh, null, scale);
            return scope.keep(u > 1 ? ulysses.allToAll(o, 1, 2) : o);   // [B, L/S, H, dv]
        }
    }

    /**
     * {@link #attention} over the whole sequence, written into columns [col, col + H·dv) of out:[B, L/S, W]. Without
     * ring/Ulysses groups this is the local backend's fused form; with Ulysses head chunks each chunk's heads are
     * written straight into their columns.
     */
    @Override public void attentionInto(Tensor out, long col, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        if (ulysses.size() == 1 && ring.size() == 1) {
            delegate.attentionInto(out, col, q, k, v, bias, scale);
            return;
        }
        check(q, k, v, bias);
        try (Scope scope = Scope.open()) {
            boolean prefetched = prefetch != null && prefetch.q() == q && prefetch.k() == k && prefetch.v() == v;
            int c = ulysses.size() > 1 && !prefetched ? chunksFor(q.dim(2)) : 1;
            Tensor[] parts = c > 1 ? ulyssesChunked(q, k, v, scale, c) : new Tensor[] {attention(q, k, v, bias, scale)};
            for (Tensor a : parts) {
                delegate.writeSlice(out, 2, col, a.view(a.dim(0), a.dim(1), a.dim(2) * a.dim(3)));
                col += a.dim(2) * a.dim(3);
            }
        }
    }

    private void check(Tensor q, Tensor k, Tensor v, Tensor bias) {
        int u = ulysses.size();
        if (bias != null)
            throw new UnsupportedOperationException("sequence-parallel attention takes no bias/mask (got " + bias.shape()
                    + "); run this model without ring/ulysses parallelism");
        if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
            throw new IllegalArgumentException("sequence-parallel attention: q, k, v must be [B, L, H, d], got " + q.shape() + ", "
                    + k.shape() + ", " + v.shape());
        if (q.dim(2) % u != 0)
            throw new IllegalArgumentException("sequence-parallel attention: " + q.dim(2) + " heads do not split over Ulysses degree " + u
                    + " (q " + q.shape() + ")");
    }

    /**
     * Ulysses in c head chunks, pipelined: chunk g is heads [g·H/c, (g+1)·H/c), of which rank j computes the j-th
     * H/(u·c) over the whole sequence. Each chunk's q/k/v exchange is a slab all-to-all ({@link
     * Communicator#startAllToAll(Tensor[], int, int, long, long)}: split the chunk's heads, concat the sequence), so q,
     * k, v are never reordered on the compute stream. Chunk g+1's exchange is started before chunk g's attention, and
     * chunk g's output exchange right after it; outputs are awaited at the end. Returns the chunks' outputs
     * [B, L/S, H/c, dv] in head order (on the caller's scope). Attention is per head, so this equals the unchunked form
     * bit for bit. q, k, v stay open for the whole call (the exchanges read them until awaited).
     */
    private Tensor[] ulyssesChunked(Tensor q, Tensor k, Tensor v, float scale, int c) {
        int r = ring.size();
        long heads = q.dim(2), span = heads / c;
        if (k.dim(2) != heads || v.dim(2) != heads)
            throw new IllegalArgumentException("sequence-parallel attention: q, k, v must have the same heads, got " + q.shape() + ", "
                    + k.shape() + ", " + v.shape());
        Tensor[] qkv = {q, k, v};
        Communicator.Pending[] inbound = new Communicator.Pending[c], outbound = new Communicator.Pending[c];
        Tensor[] outs = new Tensor[c];
        inbound[0] = ulysses.startAllToAll(qkv, 2, 1, 0, span);
        for (int g = 0; g < c; g++) {
            Tensor[] h = inbound[g].await();   // [B, L/r, H/(u·c), d] each
            if (g + 1 < c) inbound[g + 1] = ulysses.startAllToAll(qkv, 2, 1, (g + 1) * span, span);
            outs[g] = r > 1 ? ringAttention(h[0], h[1], h[2], scale) : delegate.attention(h[0], h[1], h[2], null, scale);
            for (Tensor t : h) t.close();
            outbound[g] = ulysses.startAllToAll(new Tensor[] {outs[g]}, 1, 2);   // → [B, L/S, H/c, dv]
        }
        Tensor[] result = new Tensor[c];
        for (int g = 0; g < c; g++) {
            result[g] = outbound[g].await()[0];
            outs[g].close();
        }
        return result;
    }

    /**
     * Attention of the rank's queries over the keys of every ring rank: ring.size() steps, each computing one K/V
     * block's partial attention and passing the block on; partials merge in arrival order (own block first), in an F32
     * accumulator for more than two ranks (with two, the one merge reads both partials and rounds once). With
     * {@link Overlap#ringPrefetch} the pass of a block is started before its partial attention and awaited after it
     * (same arithmetic, same merge order).
     */
    private Tensor ringAttention(Tensor q, Tensor k, Tensor v, float scale) {
        int r = ring.size();
        PartialAttention acc;
        Tensor kb = k, vb = v;
        if (overlap.ringPrefetch()) {
            acc = null;
            for (int step = 0; step < r; step++) {
                // kb, vb stay open until the pass is awaited (the exchange reads them meanwhile)
                Communicator.Pending next = step + 1 < r ? ring.startRingPass(new Tensor[] {kb, vb}) : null;
                PartialAttention part = delegate.attentionWithLse(q, kb, vb, null, scale);
                if (acc == null) {
                    acc = widen(part, q.dtype());
                } else {
                    PartialAttention merged = delegate.mergeAttention(acc, part);
                    part.close();
                    acc.close();
                    acc = merged;
                }
                if (next != null) {
                    Tensor[] kv = next.await();
                    if (kb != k) { kb.close(); vb.close(); }
                    kb = kv[0];
                    vb = kv[1];
                }
            }
        } else {
            acc = widen(delegate.attentionWithLse(q, k, v, null, scale), q.dtype());
            for (int step = 1; step < r; step++) {
                Tensor[] kv = ring.ringPass(new Tensor[] {kb, vb});   // K and V in one exchange
                Tensor kn = kv[0], vn = kv[1];
                if (kb != k) { kb.close(); vb.close(); }
                kb = kn;
                vb = vn;
                try (PartialAttention part = delegate.attentionWithLse(q, kb, vb, null, scale)) {
                    PartialAttention merged = delegate.mergeAttention(acc, part);
                    acc.close();
                    acc = merged;
                }
            }
        }
        if (kb != k) { kb.close(); vb.close(); }
        acc.lse().close();
        if (acc.out().dtype() == q.dtype()) return acc.out();
        Tensor out = delegate.cast(acc.out(), q.dtype());
        acc.out().close();
        return out;
    }

    /** The first partial with its output in F32 (the merge accumulator); a non-F32 part is cast and closed. */
    private PartialAttention widen(PartialAttention acc, DType dtype) {
        // an F32 accumulator when partials are merged more than once; with two ring ranks the one merge reads both
        // partials in their dtype, computes in F32 and rounds once (what the F32 accumulator and a final cast give)
        if (dtype == DType.F32 || ring.size() <= 2) return acc;
        PartialAttention wide = new PartialAttention(delegate.cast(acc.out(), DType.F32), acc.lse());
        acc.out().close();
        return wide;
    }
}
