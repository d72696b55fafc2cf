package org.dit4j.models.wan;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Linear;
import org.dit4j.models.nn.Timesteps;

/**
 * The Wan2.1 text-to-video transformer (models.md §2.2–2.5), written once against {@link Ops}:
 * <ol>
 *   <li>patch embedding: the (pt, ph, pw) Conv3d with stride = kernel, computed as a linear over the flattened
 *       patches (the conv weight [D, C, pt, ph, pw] viewed as [D, C·pt·ph·pw]); tokens in (f, h, w) order;</li>
 *   <li>time: e = time_embedding(sin_emb(t, 256)) (Linear, SiLU, Linear; F32), e0 = time_projection(SiLU(e)) as six
 *       modulation vectors; text: context = text_embedding(umT5 states) (Linear, GELU-tanh, Linear);</li>
 *   <li>the blocks ({@link WanBlock});</li>
 *   <li>head: LN(x)·(1 + mod₁ + e) + mod₀ + e (e is the raw time embedding, not e0), Linear to pt·ph·pw·C, then
 *       unpatchify in Wan's (ph, pw, c) feature order (c fastest).</li>
 * </ol>
 * The activation dtype is the latent's. Following diffusers' bf16 behaviour, e is computed in F32, rounded to the
 * activation dtype, and the six modulation vectors are taken in F32 after the time projection.
 */
public final class WanTransformer {
    private final Ops ops;
    private final Ops crossOps;                   // the cross-attention's core (ops itself unless sequence-parallel)
    private final WanConfig config;
    private final Linear patchEmbedding;          // [D, C·pt·ph·pw] view of the Conv3d weight
    private final Linear text0, text2, time0, time2, timeProjection;
    private final List<WanBlock> blocks = new ArrayList<>();
    private final Tensor headModulation;          // F32 [1, 2, D]
    private final Linear head;

    public WanTransformer(Ops ops, WanWeights w) {
        this(ops, ops, w);
    }

    /**
     * A transformer whose cross-attention core (softmax(q·kᵀ)·v over the text) runs on {@code crossOps} and everything
     * else on {@code ops}. For a sequence-parallel rank: {@code ops} is the decorator whose attention spans every rank's
     * video tokens, {@code crossOps} its local backend (every rank holds the whole text context, only the queries are
     * split). {@code new WanTransformer(ops, w)} is {@code new WanTransformer(ops, ops, w)}.
     */
    public WanTransformer(Ops ops, Ops crossOps, WanWeights w) {
        this.ops = ops;
        this.crossOps = crossOps;
        this.config = w.config();
        Tensor pe = w.tensor("patch_embedding.weight");
        this.patchEmbedding = new Linear(pe.view(config.dim(), config.patchFeaturesIn()), w.tensor("patch_embedding.bias"));
        this.text0 = w.linear("text_embedding.0");
        this.text2 = w.linear("text_embedding.2");
        this.time0 = w.linear("time_embedding.0");
        this.time2 = w.linear("time_embedding.2");
        this.timeProjection = w.linear("time_projection.1");
        for (int i = 0; i < config.numLayers(); i++) blocks.add(WanBlock.from(w, i));
        this.headModulation = w.tensor("head.modulation");
        this.head = w.linear("head.head");
    }

    public WanConfig config() { return config; }

    /**
     * One forward pass.
     *
     * @param latent    video latent [B, C, F, H, W] (F, H, W multiples of the patch size); its dtype is the activation dtype
     * @param timesteps diffusion timesteps on the 0..1000 scale (e.g. 999), [B] (host or device tensor)
     * @param context   umT5 states [B, Lc, textDim] (the reference zero-pads them to 512 rows)
     * @return velocity [B, outChannels, F, H, W] in the activation dtype, owned by the caller (or the caller's scope)
     */
    public Tensor forward(Tensor latent, Tensor timesteps, Tensor context) {
        requireLatent(latent);
        requireShape("timesteps", timesteps, latent.dim(0));
        int[] p = config.patch();
        try (Conditioning c = prepare(floats(timesteps), latent.dim(2) / p[0], latent.dim(3) / p[1], latent.dim(4) / p[2])) {
            return forward(latent, context, c);
        }
    }

    /**
     * What a forward needs that is computed on the host: the sinusoidal time embedding F32 [B, freqDim] and the RoPE
     * tables of the token rows [rowStart, rowEnd) of the frames×height×width patch grid that the forward computes —
     * the whole grid, or a sequence-parallel shard ({@link #prepareRows}, {@link #forwardRows}). Uploaded to the
     * device; owned by the caller.
     */
    public record Conditioning(Tensor timeSin, WanRope.Tables rope, long frames, long height, long width, long rowStart, long rowEnd)
            implements AutoCloseable {
        public Conditioning {
            long grid = frames * height * width;
            if (rowStart < 0 || rowEnd > grid || rowStart >= rowEnd)
                throw new IllegalArgumentException("Wan conditioning: token rows [" + rowStart + ", " + rowEnd + ") must lie in the "
                        + frames + "×" + height + "×" + width + " patch grid of " + grid + " tokens");
        }

        /** The conditioning of the whole patch grid. */
        public Conditioning(Tensor timeSin, WanRope.Tables rope, long frames, long height, long width) {
            this(timeSin, rope, frames, height, width, 0, frames * height * width);
        }

        /** Tokens a forward computes: the whole patch grid, or the shard's rows. */
        public long tokens() { return rowEnd - rowStart; }

        /** Tokens of the whole patch grid. */
        public long gridTokens() { return frames * height * width; }

        /** Whether this covers only some rows of the grid (a sequence-parallel shard). */
        public boolean isShard() { return tokens() != gridTokens(); }

        /** The same rows with another time embedding (e.g. this step's). */
        public Conditioning withTimeSin(Tensor t) { return new Conditioning(t, rope, frames, height, width, rowStart, rowEnd); }

        @Override public void close() {
            timeSin.close();
            rope.close();
        }
    }

    /**
     * Host-side preparation of one forward (see {@link Conditioning}) for a patch grid of frames×height×width tokens
     * (latent sizes divided by the patch size). t: one timestep per batch element on the 0..1000 scale.
     */
    public Conditioning prepare(float[] timesteps, long frames, long height, long width) {
        Tensor host = Timesteps.embedding(timesteps, config.freqDim(), 1f);
        Tensor tSin = ops.upload(host);
        host.close();
        return new Conditioning(tSin, WanRope.tables(ops, config, frames, height, width), frames, height, width);
    }

    /**
     * {@link #prepare} for the token rows [start, end) of the patch grid (tokens in (f, h, w) order, w fastest): the
     * RoPE tables of those rows only, for {@link #forwardRows} on a sequence-parallel shard.
     */
    public Conditioning prepareRows(float[] timesteps, long frames, long height, long width, long start, long end) {
        WanRope.Tables rope = WanRope.tables(ops, config, frames, height, width, start, end);
        Tensor host = Timesteps.embedding(timesteps, config.freqDim(), 1f);
        Tensor tSin = ops.upload(host);
        host.close();
        return new Conditioning(tSin, rope, frames, height, width, start, end);
    }

    /** context = text_embedding(umT5 states): [B, Lc, textDim] → [B, Lc, D], in the states' dtype. */
    public Tensor embedText(Tensor context) {
        if (context.rank() != 3 || context.dim(2) != config.textDim())
            throw new IllegalArgumentException("Wan forward: context must be [B, Lc, " + config.textDim() + "] (umT5 states), got "
                    + context.shape());
        try (Scope scope = Scope.open()) {
            return scope.keep(text2.forward(ops, text0.forwardGeluTanh(ops, context)));
        }
    }

    /** One forward from device tensors only (see {@link #forwardEmbedded}), embedding the text first. */
    public Tensor forward(Tensor latent, Tensor context, Conditioning c) {
        try (Scope scope = Scope.open()) {
            return scope.keep(forwardEmbedded(latent, embedText(context), c));
        }
    }

    /**
     * One forward from device tensors only: no host transfer and no synchronisation, so the whole call can be captured
     * in a CUDA graph and replayed after new values are copied into the same input tensors. The embedded text
     * ({@link #embedText}) does not change over a generation and may be computed once.
     * latent:[B, C, F, H, W], text:[B, Lc, D] → velocity [B, outChannels, F, H, W].
     */
    public Tensor forwardEmbedded(Tensor latent, Tensor text, Conditioning c) {
        requireWhole(c, "forwardEmbedded");
        try (Scope scope = Scope.open()) {
            return scope.keep(unpatchifyTokens(forwardTokens(latent, text, c), c));
        }
    }

    /**
     * A sequence-parallel shard's forward: the whole latent [B, C, F, H, W] in, the head's output for the token rows
     * [c.rowStart, c.rowEnd) out, [B, rows, pt·ph·pw·C] before unpatchify. Every op but self-attention works per token,
     * so with this model's ops a sequence-parallel decorator (self-attention over every rank's rows) the ranks' outputs
     * concatenated in row order are {@link #unpatchifyTokens}' input. Device tensors only (capturable in a CUDA graph).
     */
    public Tensor forwardRows(Tensor latent, Tensor text, Conditioning c) { return forwardTokens(latent, text, c); }

    /** Embed, blocks and the head's linear over c's rows: [B, rows, pt·ph·pw·C]. */
    private Tensor forwardTokens(Tensor latent, Tensor text, Conditioning c) {
        requireLatent(latent);
        long b = latent.dim(0), d = config.dim();
        int[] p = config.patch();
        if (latent.dim(2) != c.frames() * p[0] || latent.dim(3) != c.height() * p[1] || latent.dim(4) != c.width() * p[2])
            throw new IllegalArgumentException("Wan forward: latent " + latent.shape() + " does not match the prepared patch grid "
                    + c.frames() + "×" + c.height() + "×" + c.width() + " (patch " + java.util.Arrays.toString(p) + ")");
        if (text.rank() != 3 || text.dim(0) != b || text.dim(2) != d)
            throw new IllegalArgumentException("Wan forward: embedded text must be [" + b + ", Lc, " + d + "], got " + text.shape());
        requireShape("time embedding", c.timeSin(), b, config.freqDim());
        try (Scope scope = Scope.open()) {
            Embedded e = embed(latent, c);
            Tensor x = runBlocks(e.tokens(), text, e, c, 0, blocks.size(), true);
            return scope.keep(headTokens(x, e));
        }
    }

    // ------------------------------------------------------------------------------------------------ stages

    /**
     * What the blocks and the head need besides the text: the patch-embedded tokens and the time embeddings.
     * {@link #forwardEmbedded} is {@code head(blocks(embed))}; the step caches run the stages separately.
     *
     * @param tokens     patch-embedded video tokens [B, L, D] in the activation dtype
     * @param time       e = time_embedding(sin_emb(t)) F32 [B, D] (TeaCache4Wan2.1's signal {@code e})
     * @param timeAct    e rounded to the activation dtype [B, D] (what the time projection and the head read)
     * @param modulation e0 = time_projection(SiLU(e)) as F32 [B, 6, D] (the blocks' modulation input; TeaCache4Wan2.1's
     *                   ret-mode signal {@code e0})
     */
    public record Embedded(Tensor tokens, Tensor time, Tensor timeAct, Tensor modulation) {}

    /**
     * Stage 1: the time embeddings (e in F32, rounded to the activation dtype as diffusers does; e0 from the rounded e,
     * taken in F32) and the patch embedding of latent [B, C, F, H, W]. Results belong to the caller's scope.
     */
    public Embedded embed(Tensor latent, Conditioning c) {
        requireLatent(latent);
        long b = latent.dim(0), d = config.dim();
        requireShape("time embedding", c.timeSin(), b, config.freqDim());
        DType act = latent.dtype();
        Tensor x, eF32, e, projF32;
        try (Scope scope = Scope.open()) {
            // time: e in F32 (diffusers keeps time_embedder in float32), rounded to the activation dtype as diffusers does
            eF32 = time2.forward(ops, ops.silu(time0.forward(ops, c.timeSin())));                  // [B, D] F32
            e = eF32.dtype() == act ? eF32 : ops.cast(eF32, act);
            Tensor proj = timeProjection.forward(ops, ops.silu(e));                                  // [B, 6·D]
            projF32 = proj.dtype() == DType.F32 ? proj : ops.cast(proj, DType.F32);
            Tensor patches = patchify(latent);                                                       // [B, grid, C·vol]
            if (c.isShard()) patches = ops.slice(patches, 1, c.rowStart(), c.rowEnd());              // the shard's rows
            x = patchEmbedding.forward(ops, patches);                                                // [B, L, D]
            scope.keep(x);
            scope.keep(eF32);
            if (e != eF32) scope.keep(e);
            scope.keep(projF32);
        }
        // the six modulation vectors: a view of the projection, taken in the caller's scope (which owns the projection)
        return new Embedded(x, eF32, e, ops.reshape(projF32, b, 6, d));
    }

    /**
     * Stage 2: blocks {@code [from, to)} over tokens x:[B, L, D] with the embedded text [B, Lc, D] and e's modulation;
     * x is not consumed. Returns the tokens after block {@code to − 1} (x itself when the range is empty).
     */
    public Tensor blocks(Tensor x, Tensor text, Embedded e, Conditioning c, int from, int to) {
        if (from < 0 || to > blocks.size() || from > to)
            throw new IllegalArgumentException("Wan blocks: range [" + from + ", " + to + ") must lie in [0, " + blocks.size() + "]");
        if (text.rank() != 3 || text.dim(0) != x.dim(0) || text.dim(2) != config.dim())
            throw new IllegalArgumentException("Wan forward: embedded text must be [" + x.dim(0) + ", Lc, " + config.dim() + "], got "
                    + text.shape());
        if (x.rank() != 3 || x.dim(1) != c.tokens() || x.dim(2) != config.dim())
            throw new IllegalArgumentException("Wan blocks: tokens must be [B, " + c.tokens() + ", " + config.dim() + "], got " + x.shape());
        try (Scope scope = Scope.open()) {
            Tensor out = runBlocks(x, text, e, c, from, to, false);
            return out == x ? x : scope.keep(out);
        }
    }

    /** Number of transformer blocks. */
    public int depth() { return blocks.size(); }

    /** The blocks loop; intermediates (and the input when {@code consumeInput}) are closed as soon as they are used. */
    private Tensor runBlocks(Tensor x, Tensor text, Embedded e, Conditioning c, int from, int to, boolean consumeInput) {
        Tensor cur = x;
        for (int i = from; i < to; i++) {
            Tensor next = blocks.get(i).forward(ops, crossOps, cur, text, e.modulation(), c.rope().cos(), c.rope().sin());
            if (cur != x || consumeInput) cur.close();
            cur = next;
        }
        return cur;
    }

    /**
     * Stage 3: the head over the tokens after the last block: LN(x)·(1 + mod₁ + e) + mod₀ + e, Linear, unpatchify →
     * velocity [B, outChannels, F, H, W] (owning its memory).
     */
    public Tensor head(Tensor x, Embedded e, Conditioning c) {
        requireWhole(c, "head");
        try (Scope scope = Scope.open()) {
            return scope.keep(unpatchifyTokens(headTokens(x, e), c));
        }
    }

    /** The head without unpatchify: LN(x)·(1 + mod₁ + e) + mod₀ + e, Linear → [B, L, pt·ph·pw·C] (per token). */
    public Tensor headTokens(Tensor x, Embedded e) {
        long b = x.dim(0), d = config.dim();
        try (Scope scope = Scope.open()) {
            Tensor mod = ops.add(headModulation, ops.reshape(e.timeAct(), b, 1, d));                  // F32 [B, 2, D]
            Tensor shift = ops.reshape(ops.slice(mod, 1, 0, 1), b, d), scale = ops.reshape(ops.slice(mod, 1, 1, 2), b, d);
            return scope.keep(head.forward(ops, ops.layerNormModulate(x, shift, scale, WanConfig.EPS)));    // [B, L, vol·C]
        }
    }

    /**
     * The head's output tokens of the whole patch grid [B, F'·H'·W', pt·ph·pw·C] (e.g. the sequence-parallel ranks'
     * {@link #forwardRows} gathered in row order) → velocity [B, outChannels, F, H, W], owning its memory.
     */
    public Tensor unpatchifyTokens(Tensor tokens, Conditioning c) {
        if (tokens.rank() != 3 || tokens.dim(1) != c.gridTokens() || tokens.dim(2) != config.patchFeaturesOut())
            throw new IllegalArgumentException("Wan unpatchify: tokens must be [B, " + c.gridTokens() + ", " + config.patchFeaturesOut()
                    + "] (the whole " + c.frames() + "×" + c.height() + "×" + c.width() + " patch grid), got " + tokens.shape());
        try (Scope scope = Scope.open()) {
            // the reshape of unpatchify is a view of the permuted tensor: copy it so that the result owns its memory
            return scope.keep(ops.copy(unpatchify(tokens, c.frames(), c.height(), c.width())));
        }
    }

    /** The step caches' residual path: head(x + residual), with the residual cached from an earlier computed call. */
    public Tensor applyResidual(Tensor x, Tensor residual, Embedded e, Conditioning c) {
        if (!x.shape().equals(residual.shape()))
            throw new IllegalArgumentException("Wan residual path: the cached residual " + residual.shape()
                    + " does not match the tokens " + x.shape() + " (same request, same size?)");
        try (Scope scope = Scope.open()) {
            return scope.keep(head(ops.add(x, residual), e, c));
        }
    }

    /** [B, C, F, H, W] → [B, L, C·pt·ph·pw]: token (f, h, w), feature c·pt·ph·pw + (i·ph + j)·pw + k (the conv order). */
    Tensor patchify(Tensor latent) {
        int[] p = config.patch();
        long b = latent.dim(0), ch = latent.dim(1), f = latent.dim(2) / p[0], h = latent.dim(3) / p[1], w = latent.dim(4) / p[2];
        Tensor v = ops.reshape(latent, b, ch, f, p[0], h, p[1], w, p[2]);
        Tensor t = ops.permute(v, 0, 2, 4, 6, 1, 3, 5, 7);                                           // [B, f, h, w, C, pt, ph, pw]
        return ops.reshape(t, b, f * h * w, (long) config.patchFeaturesIn());
    }

    /** [B, L, pt·ph·pw·C] (feature ((i·ph + j)·pw + k)·C + c) → [B, C, F, H, W]. */
    Tensor unpatchify(Tensor out, long f, long h, long w) {
        int[] p = config.patch();
        long b = out.dim(0), ch = config.outChannels();
        Tensor v = ops.reshape(out, b, f, h, w, p[0], p[1], p[2], ch);
        Tensor t = ops.permute(v, 0, 7, 1, 4, 2, 5, 3, 6);                                           // [B, C, f, pt, h, ph, w, pw]
        return ops.reshape(t, b, ch, f * p[0], h * p[1], w * p[2]);
    }

    private static void requireWhole(Conditioning c, String method) {
        if (c.isShard())
            throw new IllegalArgumentException("Wan " + method + ": the conditioning covers token rows [" + c.rowStart() + ", " + c.rowEnd()
                    + ") of " + c.gridTokens() + " (a sequence-parallel shard); run forwardRows and unpatchify the gathered rows");
    }

    private void requireLatent(Tensor latent) {
        int[] p = config.patch();
        if (latent.rank() != 5 || latent.dim(1) != config.inChannels() || latent.dim(2) % p[0] != 0
                || latent.dim(3) % p[1] != 0 || latent.dim(4) % p[2] != 0)
            throw new IllegalArgumentException("Wan forward: latent must be [B, " + config.inChannels() + ", F, H, W] with F, H, W "
                    + "multiples of the patch size " + java.util.Arrays.toString(p) + ", got " + latent.shape());
    }

    private float[] floats(Tensor t) {
        Tensor h = t.device().isCpu() ? t : ops.toHost(t);
        float[] v = h.toFloatArray();
        if (h != t) h.close();
        return v;
    }

    private static void requireShape(String arg, Tensor t, long... dims) {
        if (!t.shape().equals(Shape.of(dims)))
            throw new IllegalArgumentException("Wan forward: " + arg + " must have shape " + Shape.of(dims) + ", got " + t.shape()
                    + " (B from the latent, widths from the config)");
    }

    // ------------------------------------------------------------------------------------------------ cost model

    /** Floating-point operations of one forward: matrix products of linears and of attention (QKᵀ and PV). */
    public record Flops(double linear, double attention) {
        public double total() { return linear + attention; }
    }

    /** FLOPs of this model's forward for batch 1 (multiply by B for a batch). */
    public Flops flops(long tokens, long textTokens) { return flops(config, tokens, textTokens); }

    /**
     * FLOPs of a forward with batch 1 over {@code tokens} video tokens and {@code textTokens} context rows, counting
     * 2 per multiply-add of every linear (patch and text embeddings, time MLP and projection, per block q/k/v/o of both
     * attentions with the cross-attention k/v over the context rows, FFN, head) and 4·Lq·Lk·D per attention (QKᵀ and
     * PV). Element-wise work is not counted. Wan2.1-14B at 640×640×65 frames (17×40×40 = 27200 tokens, 512 context
     * rows): linear 652.5 T, attention 617.5 T, total 1.270 P; Wan2.1-1.3B at 832×480×81 (21×30×52 = 32760 tokens):
     * linear 82.1 T, attention 200.9 T, total 283.0 T.
     */
    public static Flops flops(WanConfig c, long tokens, long textTokens) {
        double d = c.dim(), f = c.ffnDim(), l = tokens, lc = textTokens;
        double lin = 2 * l * c.patchFeaturesIn() * d + 2 * lc * (c.textDim() * d + d * d);            // patch, text embeddings
        lin += 2 * (c.freqDim() * d + d * d) + 2 * d * 6 * d;                                          // time MLP, projection
        double perBlock = 2 * l * 4 * d * d                                                            // self q, k, v, o
                + 2 * l * 2 * d * d + 2 * lc * 2 * d * d                                               // cross q, o; k, v
                + 2 * l * 2 * d * f;                                                                   // FFN
        lin += c.numLayers() * perBlock + 2 * l * d * c.patchFeaturesOut();                            // blocks, head
        double att = c.numLayers() * (4 * l * l * d + 4 * l * lc * d);
        return new Flops(lin, att);
    }
}
