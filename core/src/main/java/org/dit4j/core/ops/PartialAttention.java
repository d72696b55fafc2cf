package org.dit4j.core.ops;

import org.dit4j.core.tensor.Tensor;

/**
 * Attention of some queries over one block of keys, with what is needed to merge it with other blocks
 * ({@link Ops#attentionWithLse}, {@link Ops#mergeAttention}): the normalised output {@code out:[B, Lq, H, dv]} and the
 * per-row log-sum-exp of the scaled logits {@code lse:[B, H, Lq]} (F32; −∞ for rows with no unmasked key). Two blocks
 * over disjoint key sets merge exactly into the attention over their union. Owns both tensors.
 */
public record PartialAttention(Tensor out, Tensor lse) implements AutoCloseable {
    @Override public void close() {
        out.close();
        lse.close();
    }
}
