package org.dit4j.server.engine;

/**
 * What a {@link TextEncoder} produced for one prompt (for Flux: the T5 sequence and the pooled CLIP vector).
 * Opaque to the server; the sampler of the same engine reads it.
 */
public interface TextEmbedding {

    /** The same embedding with every tensor replaced by zeros of the same shape (ConditioningZeroOut). */
    TextEmbedding zeroed();
}
