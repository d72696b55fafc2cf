package org.dit4j.models.nn;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/** torch.chunk along the last dim of a [B, n·D] tensor (adaLN modulation vectors), without a copy where possible. */
public final class Chunks {
    private Chunks() {}

    /**
     * Chunk i of n along the last dim of m:[B, n·D] → [B, D]. For B = 1 the chunk is contiguous and this is a
     * zero-copy view of m (valid while m is); otherwise a copy ({@link Ops#slice}).
     */
    public static Tensor chunk(Ops ops, Tensor m, int i, int n) {
        if (m.rank() != 2 || m.dim(1) % n != 0 || i < 0 || i >= n)
            throw new IllegalArgumentException("chunk " + i + " of " + n + " needs m:[B, " + n + "·D], got " + m.shape());
        long d = m.dim(1) / n;
        if (m.dim(0) == 1) return m.view(n, d).narrowOuter(i, i + 1);
        return ops.slice(m, 1, i * d, (i + 1) * d);
    }
}
