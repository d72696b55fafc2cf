package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Tensor;

import java.util.Arrays;
import java.util.List;

/**
 * Data parallelism: the dp groups of a mesh work on different requests (or batch elements) at once. Group g takes the
 * g-th contiguous block of a request list ({@link #mine}) or of a batch ({@link #shardBatch}); {@link #gatherBatch}
 * puts a batch back together, in the original order, on every rank.
 */
public final class DataParallel {
    private final Communicator dp;

    /** @param dp the rank's dp group (one rank per dp group, same position in each) */
    public DataParallel(Communicator dp) { this.dp = dp; }

    public static DataParallel of(MeshComms comms) { return new DataParallel(comms.dp()); }

    public int groups() { return dp.size(); }

    public int group() { return dp.rank(); }

    /** Indices [start, end) of the items this group handles out of {@code n} (blocks differ by at most one). */
    public int[] range(int n) {
        int g = dp.rank(), k = dp.size();
        return new int[] {(int) ((long) n * g / k), (int) ((long) n * (g + 1) / k)};
    }

    /** This group's requests out of a list that every rank holds in the same order. */
    public <T> List<T> mine(List<T> requests) {
        int[] r = range(requests.size());
        return requests.subList(r[0], r[1]);
    }

    /** This group's rows of a batch along dim 0; the batch must divide evenly (so that it can be gathered back). */
    public Tensor shardBatch(Ops ops, Tensor batch) {
        int[] r = evenRange("batch " + batch.shape(), batch.dim(0));
        return ops.slice(batch, 0, r[0], r[1]);
    }

    /** This group's values of a per-batch-element array (timesteps, guidance). */
    public float[] shardBatch(float[] perElement) {
        int[] r = evenRange("per-element values (" + perElement.length + ")", perElement.length);
        return Arrays.copyOfRange(perElement, r[0], r[1]);
    }

    /** All groups' batch shards concatenated along dim 0 in group order, on every rank. */
    public Tensor gatherBatch(Tensor shard) { return dp.allGather(shard, 0); }

    private int[] evenRange(String what, long n) {
        if (n % dp.size() != 0)
            throw new IllegalArgumentException(what + " does not split evenly over " + dp.size() + " data-parallel groups; use a "
                    + "batch that is a multiple of dp=" + dp.size() + ", or hand out whole requests with mine(...)");
        return range((int) n);
    }
}
