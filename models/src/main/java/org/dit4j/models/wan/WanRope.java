package org.dit4j.models.wan;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Rope;

/**
 * Wan's 3-D RoPE (models.md §2.3): the head dim is split into frame, height and width parts ({@link
 * WanConfig#ropeAxes}, 44/42/42 for d = 128); each part rotates adjacent pairs by its grid index times
 * ω_j = 10000^(−2j/a) with a its own width. Positions are the integer patch-grid indices (f, h, w) of the tokens in
 * (f, h, w) order, w fastest. Tables are built on the host in double (as diffusers, float64) and uploaded as F32
 * [L, d/2]; the rotation is applied to self-attention q and k only.
 */
public final class WanRope {
    private WanRope() {}

    /** Uploaded cos/sin tables [L, d/2] of one patch grid. */
    public record Tables(Tensor cos, Tensor sin) implements AutoCloseable {
        @Override public void close() {
            cos.close();
            sin.close();
        }
    }

    /** Host F32 tables for a patch grid of {@code frames}×{@code height}×{@code width} tokens. */
    public static Rope.Tables hostTables(WanConfig cfg, long frames, long height, long width) {
        long len = frames * height * width;
        float[][] pos = new float[Math.toIntExact(len)][];
        int n = 0;
        for (int f = 0; f < frames; f++)
            for (int h = 0; h < height; h++)
                for (int w = 0; w < width; w++) pos[n++] = new float[] {f, h, w};
        return Rope.tables(pos, cfg.ropeAxes(), WanConfig.ROPE_THETA);
    }

    /** Builds and uploads the tables of a patch grid. */
    public static Tables tables(Ops ops, WanConfig cfg, long frames, long height, long width) {
        Rope.Tables h = hostTables(cfg, frames, height, width);
        Tensor cos = ops.upload(h.cos()), sin = ops.upload(h.sin());
        h.cos().close();
        h.sin().close();
        return new Tables(cos, sin);
    }

    /**
     * The rows [start, end) of a patch grid's tables (the tokens of a sequence-parallel shard), uploaded: row i is the
     * table row of token start + i, bit for bit that of {@link #tables}.
     */
    public static Tables tables(Ops ops, WanConfig cfg, long frames, long height, long width, long start, long end) {
        long len = frames * height * width;
        if (start < 0 || end > len || start >= end)
            throw new IllegalArgumentException("Wan RoPE: token rows [" + start + ", " + end + ") must lie in the " + frames + "×" + height
                    + "×" + width + " patch grid of " + len + " tokens");
        Rope.Tables h = hostTables(cfg, frames, height, width);
        try {
            return new Tables(ops.upload(h.cos().narrowOuter(start, end)), ops.upload(h.sin().narrowOuter(start, end)));
        } finally {
            h.cos().close();
            h.sin().close();
        }
    }
}
