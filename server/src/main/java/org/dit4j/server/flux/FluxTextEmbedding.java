package org.dit4j.server.flux;

import org.dit4j.server.engine.TextEmbedding;

import java.util.Arrays;

/**
 * Flux text conditioning of one prompt, on the host in float32 (as ComfyUI keeps conditioning on its intermediate
 * device): the T5 last hidden state [1, tokens, width] and the pooled CLIP-L vector [1, pooledWidth].
 */
record FluxTextEmbedding(float[] t5, int tokens, int width, float[] pooled) implements TextEmbedding {

    FluxTextEmbedding {
        if ((long) tokens * width != t5.length)
            throw new IllegalArgumentException("T5 states of " + tokens + " × " + width + " need " + (long) tokens * width
                    + " values, got " + t5.length);
    }

    @Override public TextEmbedding zeroed() { return new FluxTextEmbedding(new float[t5.length], tokens, width, new float[pooled.length]); }

    @Override public boolean equals(Object o) {
        return o instanceof FluxTextEmbedding e && tokens == e.tokens && width == e.width && Arrays.equals(t5, e.t5)
                && Arrays.equals(pooled, e.pooled);
    }

    @Override public int hashCode() { return Arrays.hashCode(pooled) * 31 + tokens; }

    @Override public String toString() { return "<FluxTextEmbedding t5 [1, " + tokens + ", " + width + "], pooled [1, " + pooled.length + "]>"; }
}
