package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Tensor;

/**
 * How one sequence is cut over a sequence-parallel group (ring × ulysses ranks): S = ring·ulysses equal contiguous
 * shards, the rank with sequence index s holding rows [s·N/S, (s+1)·N/S); shards are gathered back in that order. What
 * {@link FluxSequenceParallel} and {@link WanSequenceParallel} share; which sequences they cut is theirs.
 */
public final class SequenceShards {
    private final Communicator sequence;
    private final ParallelConfig config;

    /**
     * @param sequence the rank's sequence group (ring × ulysses ranks, ordered by sequence index)
     * @param config   the mesh degrees (for checks and messages)
     */
    public SequenceShards(Communicator sequence, ParallelConfig config) {
        if (sequence.size() != config.sequenceDegree())
            throw new IllegalArgumentException("the sequence group has " + sequence.size() + " ranks, but " + config + " needs "
                    + config.sequenceDegree());
        this.sequence = sequence;
        this.config = config;
    }

    public static SequenceShards of(MeshComms comms) { return new SequenceShards(comms.sequence(), comms.config()); }

    public ParallelConfig config() { return config; }

    /** The rank's sequence group. */
    public Communicator group() { return sequence; }

    /** This rank's rows [start, end) of a sequence of {@code n} tokens. */
    public long[] rows(long n) {
        config.checkSequence("a sequence", n);
        long per = n / sequence.size(), s = sequence.rank();
        return new long[] {s * per, (s + 1) * per};
    }

    /** This rank's rows of x along {@code dim} (a device copy); x holds the full sequence there. */
    public Tensor shard(Ops ops, Tensor x, int dim) {
        long[] r = rows(x.dim(dim));
        return ops.slice(x, dim, r[0], r[1]);
    }

    /** This rank's rows of a host tensor whose dim 0 is the sequence (a view). */
    public Tensor shardOuter(Tensor x) {
        long[] r = rows(x.dim(0));
        return x.narrowOuter(r[0], r[1]);
    }

    /** Every rank's shard of x along {@code dim}, concatenated in sequence order (the full tensor, on every rank). */
    public Tensor gather(Tensor shard, int dim) { return sequence.allGather(shard, dim); }
}
