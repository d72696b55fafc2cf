package org.dit4j.models.vae.wan;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;

/**
 * The building blocks of the Wan2.1 VAE (models.md §2.8). Videos are [N, C, T, H, W]. Every layer that looks back in
 * time streams: it is called chunk after chunk and carries what it needs of earlier chunks in a {@link CausalCache},
 * so that any split of the time axis into chunks gives the result of one pass over the whole clip (the semantics of
 * the reference's {@code feat_cache}, see {@link CausalConv3d} and {@link Resample}).
 */
final class WanVaeBlocks {
    private WanVaeBlocks() {}

    /** Closes {@code old} (an intermediate this code owns) and returns {@code next}. */
    static Tensor swap(Tensor old, Tensor next) {
        old.close();
        return next;
    }

    /** Hands out cache slots while a model is built: one per streaming conv, one flag per temporal upsample. */
    static final class Slots {
        private int frames, flags;

        int frames() { return frames++; }

        int flag() { return flags++; }

        CausalCache newCache() { return new CausalCache(frames, flags); }
    }

    /**
     * What the streaming layers of one encode or decode carry from chunk to chunk (the reference's {@code feat_cache}):
     * for each causal conv the last ≤ 2 frames of its input stream, for each temporal downsample the last frame of its
     * input, and for each temporal upsample whether the stream's first frame has passed. The tensors are owned here (no
     * scope releases them) and released by {@link #close()} or when replaced, so memory stays bounded by two frames per
     * conv whatever the clip length.
     */
    static final class CausalCache implements AutoCloseable {
        private final Tensor[] frames;
        private final boolean[] started;

        CausalCache(int frameSlots, int flagSlots) {
            frames = new Tensor[frameSlots];
            started = new boolean[flagSlots];
        }

        /** The frames carried in {@code slot}, or null before the first chunk. */
        Tensor frames(int slot) { return frames[slot]; }

        /** Replaces slot {@code slot} by {@code t}, a tensor this call takes over from the current scope. */
        void put(int slot, Tensor t) {
            Scope.detach(t);
            Tensor old = frames[slot];
            frames[slot] = t;
            if (old != null) old.close();
        }

        boolean started(int flag) { return started[flag]; }

        void start(int flag) { started[flag] = true; }

        /** The most frames any slot holds (for tests of the memory bound). */
        long maxFrames() {
            long m = 0;
            for (Tensor t : frames) if (t != null) m = Math.max(m, t.dim(2));
            return m;
        }

        int slots() { return frames.length; }

        @Override public void close() {
            for (int i = 0; i < frames.length; i++) {
                if (frames[i] != null) frames[i].close();
                frames[i] = null;
            }
        }
    }

    /** One step of the encoder's or decoder's list: a residual block or a resample. */
    interface Layer {
        /** x:[N, C, t, H, W] → [N, C', t', H', W'] for one chunk of the stream. */
        Tensor forward(Ops ops, Tensor x, CausalCache cache);
    }

    /**
     * Causal 3-D convolution ({@code CausalConv3d}): W:[O, C, kt, kh, kw], zero padding (ph, pw) in space and
     * {@code front} frames in time, all before the clip (none after). Streaming, the front padding is the last
     * {@code front} input frames of the previous chunks (zeros where the stream has fewer), kept in {@code slot}.
     * front = 2·pt for a torch padding pt: 2 for the 3³ convs and the temporal upsample's (3,1,1) conv, 0 for 1³ convs.
     */
    record CausalConv3d(Tensor weight, Tensor bias, int[] stride, int ph, int pw, int front, int slot) {

        /** A 3³ (or k×1×1 with k = 3) causal conv with "same" spatial padding and a cache slot. */
        static CausalConv3d of(WanVaeWeights w, String module, Slots slots) {
            Tensor wt = w.tensor(module + ".weight");
            int kt = wt.shape().dimInt(2), kh = wt.shape().dimInt(3), kw = wt.shape().dimInt(4);
            int front = 2 * (kt / 2);
            return new CausalConv3d(wt, w.tensor(module + ".bias"), new int[] {1, 1, 1}, kh / 2, kw / 2, front,
                    front > 0 ? slots.frames() : -1);
        }

        /** x:[N, C, t, H, W] → [N, O, t, H, W]. */
        Tensor forward(Ops ops, Tensor x, CausalCache cache) {
            int[] pad = {0, ph, pw};
            if (front == 0) return ops.conv3d(x, weight, bias, stride, pad);
            try (Scope s = Scope.open()) {
                Tensor prev = cache.frames(slot);
                Tensor joined = prev == null ? x : ops.concat(2, prev, x);         // the stream's last frames + this chunk
                long missing = front - (joined.dim(2) - x.dim(2));
                Tensor in = missing > 0 ? ops.pad(joined, new long[] {0, 0, 0, 0, missing, 0}, 0f) : joined;
                Tensor y = ops.conv3d(in, weight, bias, stride, pad);
                long n = joined.dim(2), keep = Math.min(front, n);
                cache.put(slot, ops.slice(joined, 2, n - keep, n));
                return s.keep(y);
            }
        }
    }

    /**
     * {@code RMS_norm} over the channels: y = x / max(‖x‖₂, 1e-12) · √C · γ (F.normalize along dim 1), computed as
     * x·rsqrt(mean_c(x²) + 1e-24/C)·γ on channel-last data ({@link Ops#rmsNorm} normalises the last dim), which differs
     * from the reference only for ‖x‖ near 1e-12.
     */
    record RmsNorm(Tensor gamma) {

        static RmsNorm of(WanVaeWeights w, String module) {
            Tensor g = w.tensor(module + ".gamma");
            return new RmsNorm(g.view(g.dim(0)));
        }

        float eps() { return 1e-24f / gamma.dim(0); }

        /** silu(norm(x)) for x:[N, C, T, H, W]; the norm runs on channel-last data. */
        Tensor forwardSilu(Ops ops, Tensor x) {
            try (Scope s = Scope.open()) {
                Tensor cl = ops.permute(x, 0, 2, 3, 4, 1);                          // [N, T, H, W, C]
                cl = swap(cl, ops.rmsNorm(cl, gamma, eps()));
                cl = swap(cl, ops.silu(cl));
                return s.keep(ops.permute(cl, 0, 4, 1, 2, 3));
            }
        }
    }

    /**
     * Residual block: out = conv2(silu(norm2(conv1(silu(norm1(x)))))) + shortcut(x), convs causal 3³, shortcut a 1³
     * conv when the channel count changes (else identity). Dropout is the identity at inference.
     */
    record ResidualBlock(RmsNorm norm1, CausalConv3d conv1, RmsNorm norm2, CausalConv3d conv2, CausalConv3d shortcut)
            implements Layer {

        static ResidualBlock of(WanVaeWeights w, String p, Slots slots) {
            CausalConv3d shortcut = w.has(p + ".shortcut.weight") ? CausalConv3d.of(w, p + ".shortcut", slots) : null;
            return new ResidualBlock(RmsNorm.of(w, p + ".residual.0"), CausalConv3d.of(w, p + ".residual.2", slots),
                    RmsNorm.of(w, p + ".residual.3"), CausalConv3d.of(w, p + ".residual.6", slots), shortcut);
        }

        @Override public Tensor forward(Ops ops, Tensor x, CausalCache cache) {
            try (Scope s = Scope.open()) {
                Tensor h = norm1.forwardSilu(ops, x);
                h = swap(h, conv1.forward(ops, h, cache));
                h = swap(h, norm2.forwardSilu(ops, h));
                h = swap(h, conv2.forward(ops, h, cache));
                Tensor res = shortcut == null ? x : shortcut.forward(ops, x, cache);
                return s.keep(ops.add(h, res));
            }
        }
    }

    /**
     * Mid-block attention, per frame: single-head self-attention over the H·W positions of width C, q/k/v from a 1×1
     * conv (to_qkv, channels [0, C) / [C, 2C) / [2C, 3C)) of the RMS-normed frame, 1×1 conv proj, residual.
     */
    record AttentionBlock(RmsNorm norm, Tensor qkvWeight, Tensor qkvBias, Tensor projWeight, Tensor projBias) {

        static AttentionBlock of(WanVaeWeights w, String p) {
            Tensor qkv = w.tensor(p + ".to_qkv.weight"), proj = w.tensor(p + ".proj.weight");
            return new AttentionBlock(RmsNorm.of(w, p + ".norm"), qkv.view(qkv.dim(0), qkv.dim(1)), w.tensor(p + ".to_qkv.bias"),
                    proj.view(proj.dim(0), proj.dim(1)), w.tensor(p + ".proj.bias"));
        }

        /** x:[N, C, T, H, W] → same shape. */
        Tensor forward(Ops ops, Tensor x) {
            long n = x.dim(0), c = x.dim(1), t = x.dim(2), h = x.dim(3), w = x.dim(4), b = n * t, l = h * w;
            try (Scope s = Scope.open()) {
                Tensor cl = ops.permute(x, 0, 2, 3, 4, 1);                               // [N, T, H, W, C]
                Tensor normed = ops.rmsNorm(cl.view(b, l, c), norm.gamma(), norm.eps());   // [N·T, HW, C]
                cl.close();
                Tensor qkv = ops.linear(normed, qkvWeight, qkvBias);                    // [N·T, HW, 3C]
                normed.close();
                Tensor q = ops.slice(qkv, 2, 0, c), k = ops.slice(qkv, 2, c, 2 * c), v = ops.slice(qkv, 2, 2 * c, 3 * c);
                qkv.close();
                Tensor a = ops.attention(q.view(b, l, 1, c), k.view(b, l, 1, c), v.view(b, l, 1, c), null,
                        (float) (1.0 / Math.sqrt(c)));                                  // [N·T, HW, 1, C]
                q.close();
                k.close();
                v.close();
                Tensor o = ops.linear(a.view(b, l, c), projWeight, projBias);
                a.close();
                Tensor back = ops.permute(o.view(n, t, h, w, c), 0, 4, 1, 2, 3);       // [N, C, T, H, W]
                o.close();
                return s.keep(ops.add(x, back));
            }
        }
    }

    /** Mid block: residual block, attention, residual block, at the deepest level's channels. */
    record MidBlock(ResidualBlock res0, AttentionBlock attention, ResidualBlock res1) {

        static MidBlock of(WanVaeWeights w, String part, Slots slots) {
            String p = part + ".middle.";
            return new MidBlock(ResidualBlock.of(w, p + "0", slots), AttentionBlock.of(w, p + "1"), ResidualBlock.of(w, p + "2", slots));
        }

        Tensor forward(Ops ops, Tensor x, CausalCache cache) {
            Tensor h = res0.forward(ops, x, cache);
            h = swap(h, attention.forward(ops, h));
            return swap(h, res1.forward(ops, h, cache));
        }
    }

    /** The resample modes of Wan2.1's VAE. */
    enum Mode { DOWNSAMPLE_2D, DOWNSAMPLE_3D, UPSAMPLE_2D, UPSAMPLE_3D }

    /**
     * Spatial ×½ or ×2, optionally with time ×½ or ×2:
     * <ul>
     *   <li>downsample2d: zero pad (0, 1) on H and W, then a 3×3 conv of stride 2, per frame;</li>
     *   <li>downsample3d: the same, then {@code time_conv} (C→C, kernel (3,1,1), stride (2,1,1), no padding) over the last
     *       frame of the previous chunk followed by this chunk. The stream's first frame passes unchanged, so frame
     *       j ≥ 1 of the output is time_conv(y[2j−2], y[2j−1], y[2j]) of the spatially downsampled y: T = 1 + 2k frames
     *       → 1 + k;</li>
     *   <li>upsample2d: nearest ×2 on H and W (nearest-exact: the same for a factor of 2), then a 3×3 conv C→C/2;</li>
     *   <li>upsample3d: first {@code time_conv} (C→2C, kernel (3,1,1), causal) on every frame but the stream's first,
     *       whose output frame t becomes frames 2t (channels [0, C)) and 2t+1 (channels [C, 2C)): T = 1 + k frames →
     *       1 + 2k; then as upsample2d. (The reference skips time_conv for its first chunk, which is that one frame,
     *       and starts the time conv's stream with zeros.)</li>
     * </ul>
     */
    record Resample(Mode mode, Tensor weight, Tensor bias, CausalConv3d upTime, Tensor downTimeWeight, Tensor downTimeBias,
                    int slot) implements Layer {

        static Resample of(WanVaeWeights w, String p, Mode mode, Slots slots) {
            Tensor w2 = w.tensor(p + ".resample.1.weight");                          // [O, C, 3, 3] → [O, C, 1, 3, 3]
            Tensor w3 = w2.view(w2.dim(0), w2.dim(1), 1, w2.dim(2), w2.dim(3));
            Tensor b = w.tensor(p + ".resample.1.bias");
            return switch (mode) {
                case DOWNSAMPLE_2D, UPSAMPLE_2D -> new Resample(mode, w3, b, null, null, null, -1);
                case DOWNSAMPLE_3D -> new Resample(mode, w3, b, null, w.tensor(p + ".time_conv.weight"),
                        w.tensor(p + ".time_conv.bias"), slots.frames());
                case UPSAMPLE_3D -> new Resample(mode, w3, b, CausalConv3d.of(w, p + ".time_conv", slots), null, null, slots.flag());
            };
        }

        @Override public Tensor forward(Ops ops, Tensor x, CausalCache cache) {
            try (Scope s = Scope.open()) {
                return s.keep(switch (mode) {
                    case DOWNSAMPLE_2D -> down2d(ops, x);
                    case DOWNSAMPLE_3D -> down3d(ops, x, cache);
                    case UPSAMPLE_2D -> up2d(ops, x);
                    case UPSAMPLE_3D -> up2d(ops, upTime(ops, x, cache));
                });
            }
        }

        private Tensor down2d(Ops ops, Tensor x) {
            Tensor p = ops.pad(x, new long[] {0, 1, 0, 1}, 0f);
            return ops.conv3d(p, weight, bias, new int[] {1, 2, 2}, new int[] {0, 0, 0});
        }

        private Tensor down3d(Ops ops, Tensor x, CausalCache cache) {
            Tensor y = down2d(ops, x);
            long t = y.dim(2);
            Tensor prev = cache.frames(slot);
            if ((prev == null) == (t % 2 == 0))
                throw new IllegalStateException("Wan VAE temporal downsample got a chunk of " + t + " frames "
                        + (prev == null ? "first (needs an odd count: 1 + 2k)" : "after the first (needs an even count)")
                        + "; encode in chunks of 1 + 4k frames, then 4k");
            Tensor in = prev == null ? y : ops.concat(2, prev, y);
            Tensor out;
            if (in.dim(2) < 3) {
                out = y;                                                              // the stream's first frame alone
            } else {
                Tensor tc = ops.conv3d(in, downTimeWeight, downTimeBias, new int[] {2, 1, 1}, new int[] {0, 0, 0});
                out = prev == null ? ops.concat(2, ops.slice(y, 2, 0, 1), tc) : tc;
            }
            cache.put(slot, ops.slice(y, 2, t - 1, t));
            return out;
        }

        private Tensor up2d(Ops ops, Tensor x) {
            Tensor u = ops.upsampleNearest2d(x, 2);
            return ops.conv3d(u, weight, bias, new int[] {1, 1, 1}, new int[] {0, 1, 1});
        }

        /** The temporal half of upsample3d: [N, C, t, H, W] → [N, C, t', H, W], t' = 2t (or 2t − 1 with the stream's first frame). */
        private Tensor upTime(Ops ops, Tensor x, CausalCache cache) {
            Tensor head = null, rest = x;
            if (!cache.started(slot)) {
                cache.start(slot);
                head = ops.slice(x, 2, 0, 1);
                rest = x.dim(2) > 1 ? ops.slice(x, 2, 1, x.dim(2)) : null;
            }
            if (rest == null) return head;
            long n = x.dim(0), c = x.dim(1), t = rest.dim(2), h = x.dim(3), w = x.dim(4);
            Tensor tc = upTime.forward(ops, rest, cache);                              // [N, 2C, t, H, W]
            Tensor il = ops.permute(tc.view(n, 2, c, t, h * w), 0, 2, 3, 1, 4)        // [N, C, t, 2, HW]
                    .view(n, c, 2 * t, h, w);
            return head == null ? il : ops.concat(2, head, il);
        }
    }
}
