package org.dit4j.server.wan;

import org.dit4j.server.engine.TextEmbedding;

/**
 * What ComfyUI's Wan CLIPTextEncode produces: umT5 states [tokens, width] in float32 (at least 512 rows; rows past the
 * prompt's tokens and EOS are zero).
 */
record WanTextEmbedding(float[] states, int tokens, int width) implements TextEmbedding {

    WanTextEmbedding {
        if ((long) tokens * width != states.length)
            throw new IllegalArgumentException("umT5 states [" + tokens + ", " + width + "] need " + (long) tokens * width + " values, got "
                    + states.length);
    }

    @Override public TextEmbedding zeroed() { return new WanTextEmbedding(new float[states.length], tokens, width); }

    @Override public String toString() { return "<WanTextEmbedding [" + tokens + ", " + width + "]>"; }
}
