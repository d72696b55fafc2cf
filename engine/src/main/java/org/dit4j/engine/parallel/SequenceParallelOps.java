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
 */
public final class SequenceParallelOps extends ForwardingOps {
    private final Communicator ulysses, ring;

    /**
     * @param local   the rank's backend
     * @param ulysses the rank's Ulysses group (size 1: none)
     * @param ring    the rank's ring group (size 1: none)
     */
    public SequenceParallelOps(Ops local, Communicator ulysses, Communicator ring) {
        super(local);
        this.ulysses = ulysses;
        this.ring = ring;
    }

    /** The decorator for one rank of a mesh. */
    public static SequenceParallelOps of(Ops local, MeshComms comms) { return new SequenceParallelOps(local, comms.ulysses(), comms.ring()); }

    @Override public String name() {
        return delegate.name() + " + sequence parallel (ring " + ring.size() + " × ulysses " + ulysses.size() + ")";
    }

    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        int u = ulysses.size(), r = ring.size();
        if (u == 1 && r == 1) return delegate.attention(q, k, v, bias, scale);
        if (bias != null)
            throw new UnsupportedOperationException("sequence-parallel attention takes no bias/mask (got " + bias.shape()
                    + "); run this model without ring/ulysses parallelism");
        if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
            throw new IllegalArgumentException("sequence-parallel attention: q, k, v must be [B, L, H, d], got " + q.shape() + ", "
                    + k.shape() + ", " + v.shape());
        if (q.dim(2) % u != 0)
            throw new IllegalArgumentException("sequence-parallel attention: " + q.dim(2) + " heads do not split over Ulysses degree " + u
                    + " (q " + q.shape() + ")");
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
     * ring/Ulysses groups this is the local backend's fused form.
     */
    @Override public void attentionInto(Tensor out, long col, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        if (ulysses.size() == 1 && ring.size() == 1) {
            delegate.attentionInto(out, col, q, k, v, bias, scale);
            return;
        }
        try (Scope scope = Scope.open()) {
            Tensor a = attention(q, k, v, bias, scale);
            delegate.writeSlice(out, 2, col, a.view(a.dim(0), a.dim(1), a.dim(2) * a.dim(3)));
        }
    }

    /** Not sequence-parallel: models call {@link #attention}. */
    @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        throw new UnsupportedOperationException("attentionWithLse is not sequence-parallel; a model under sequence parallelism "
                + "calls attention(...), which gathers over the ring and Ulysses groups itself");
    }

    /**
     * Attention of the rank's queries over the keys of every ring rank: ring.size() steps, each computing one K/V
     * block's partial attention and passing the block on; partials merge in arrival order (own block first), in an F32
     * accumulator for more than two ranks.
     */
    private Tensor ringAttention(Tensor q, Tensor k, Tensor v, float scale) {
        int r = ring.size();
        PartialAttention acc = delegate.attentionWithLse(q, k, v, null, scale);
        // an F32 accumulator when partials are merged more than once; with two ring ranks the one merge reads both
        // bf16 partials, computes in F32 and rounds once to q's dtype (what the F32 accumulator and a final cast give)
        if (q.dtype() != DType.F32 && r > 2) {
            PartialAttention wide = new PartialAttention(delegate.cast(acc.out(), DType.F32), acc.lse());
            acc.out().close();
            acc = wide;
        }
        Tensor kb = k, vb = v;
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
        if (kb != k) { kb.close(); vb.close(); }
        acc.lse().close();
        if (acc.out().dtype() == q.dtype()) return acc.out();
        Tensor out = delegate.cast(acc.out(), q.dtype());
        acc.out().close();
        return out;
    }
}
