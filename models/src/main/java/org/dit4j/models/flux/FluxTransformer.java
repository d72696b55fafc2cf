package org.dit4j.models.flux;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Chunks;
import org.dit4j.models.nn.Linear;

/**
 * The Flux.1 transformer (models.md §1): embeddings → depth double-stream blocks → depthSingle single-stream blocks
 * over [txt ‖ img] → final adaLN + linear on the image tokens. Returns the flow velocity for the packed image tokens.
 * Written once against {@link Ops}; the weights belong to the {@link FluxWeights} it was built from.
 */
public final class FluxTransformer {
    private final Ops ops;
    private final FluxConfig config;
    private final FluxEmbeddings embeddings;
    private final List<FluxDoubleBlock> doubleBlocks = new ArrayList<>();
    private final List<FluxSingleBlock> singleBlocks = new ArrayList<>();
    private final Linear finalModulation;   // SiLU(vec) → (shift, scale), BFL order
    private final Linear finalLinear;

    public FluxTransformer(Ops ops, FluxWeights w) {
        this.ops = ops;
        this.config = w.config();
        this.embeddings = FluxEmbeddings.from(w);
        for (int i = 0; i < config.depth(); i++) doubleBlocks.add(FluxDoubleBlock.from(w, i));
        for (int i = 0; i < config.depthSingle(); i++) singleBlocks.add(FluxSingleBlock.from(w, i));
        this.finalModulation = w.linear("final_layer.adaLN_modulation.1");
        this.finalLinear = w.linear("final_layer.linear");
    }

    public FluxConfig config() { return config; }

    /**
     * One forward pass.
     *
     * @param img       packed image tokens [B, Nimg, inChannels] (target tokens, then any Kontext reference tokens)
     * @param txt       text-encoder states [B, Ntxt, contextDim]
     * @param y         pooled vector [B, vecDim]
     * @param timesteps flow time t ∈ [0,1], [B] (host or device tensor)
     * @param guidance  guidance scale [B], or null for models without a guidance embedder
     * @param imgIds    position ids [Nimg, 3] (0, row, col), Kontext reference rows (1, row, col)
     * @param txtIds    position ids [Ntxt, 3] (all zeros in Flux)
     * @return velocity [B, Nimg, outChannels] in img's dtype, owned by the caller (or the caller's scope)
     */
    public Tensor forward(Tensor img, Tensor txt, Tensor y, Tensor timesteps, Tensor guidance, Tensor imgIds, Tensor txtIds) {
        long b = img.dim(0);
        requireShape("timesteps", timesteps, b);
        if (guidance != null) requireShape("guidance", guidance, b);
        try (Conditioning c = prepare(floats(timesteps), guidance == null ? null : floats(guidance), imgIds, txtIds, img.dtype())) {
            return forward(img, txt, y, c);
        }
    }

    /**
     * What a forward needs that is computed on the host: the sinusoidal time/guidance embeddings [B, 256] (in the
     * activation dtype) and the RoPE tables of the position ids. Uploaded to the device; owned by the caller.
     */
    public record Conditioning(Tensor timeSin, Tensor guidanceSin, FluxRope.Tables pe, long nTxt, long nImg) implements AutoCloseable {
        @Override public void close() {
            timeSin.close();
            if (guidanceSin != null) guidanceSin.close();
            pe.close();
        }
    }

    /** Host-side preparation of one forward (see {@link Conditioning}); t, g: one value per batch element. */
    public Conditioning prepare(float[] timesteps, float[] guidance, Tensor imgIds, Tensor txtIds, DType activation) {
        if (embeddings.embedsGuidance() && guidance == null)
            throw new IllegalArgumentException("this Flux model embeds guidance (dev/Kontext): pass one guidance value per "
                    + "batch element, e.g. 3.5");
        if (guidance != null && guidance.length != timesteps.length)
            throw new IllegalArgumentException("guidance has " + guidance.length + " values, expected one per batch element ("
                    + timesteps.length + ")");
        Tensor tSin = FluxEmbeddings.sinEmb(ops, timesteps, activation);
        Tensor gSin = embeddings.embedsGuidance() ? FluxEmbeddings.sinEmb(ops, guidance, activation) : null;
        FluxRope.Tables pe = FluxRope.tables(ops, config, FluxRope.ids(ops, txtIds), FluxRope.ids(ops, imgIds));
        return new Conditioning(tSin, gSin, pe, txtIds.dim(0), imgIds.dim(0));
    }

    /**
     * One forward from device tensors only: no host transfer and no synchronisation, so the whole call can be captured
     * in a CUDA graph and replayed after new values are copied into the same input tensors.
     * img:[B, Nimg, inChannels], txt:[B, Ntxt, contextDim], y:[B, vecDim] → velocity [B, Nimg, outChannels].
     */
    public Tensor forward(Tensor img, Tensor txt, Tensor y, Conditioning c) {
        try (Scope scope = Scope.open()) {
            Hidden h = embed(img, txt, y, c);
            Tensor imgTokens = remainingBlocks(h, c, 0);
            return scope.keep(finalLayer(imgTokens, h.vecSilu()));
        }
    }

    // ------------------------------------------------------------------------------------------------ stages
    // The forward split where step caches need it (engine.cache): embeddings (a), double block 0 (b), the remaining
    // blocks (c), the final layer (d). forward = finalLayer(remainingBlocks(embed(…), 0)), the same ops in the same
    // order, so it is bit for bit the composition. Every stage is device work only (capturable in a CUDA graph); its
    // outputs belong to the caller's scope, its inputs are never closed.

    /**
     * The state between stages: SiLU(vec) [B, D] and the image [B, Nimg, D] and text [B, Ntxt, D] tokens as they enter
     * the next block.
     */
    public record Hidden(Tensor vecSilu, Tensor img, Tensor txt) {}

    /**
     * Stage (a): the conditioning vector (time, guidance, pooled text) through SiLU, img_in and txt_in.
     * img:[B, Nimg, inChannels], txt:[B, Ntxt, contextDim], y:[B, vecDim].
     */
    public Hidden embed(Tensor img, Tensor txt, Tensor y, Conditioning c) {
        long b = img.dim(0);
        requireShape("img", img, b, c.nImg(), config.inChannels());
        requireShape("txt", txt, b, c.nTxt(), config.contextDim());
        requireShape("y", y, b, config.vecDim());
        requireShape("timesteps embedding", c.timeSin(), b, FluxEmbeddings.TIME_DIM);
        try (Scope scope = Scope.open()) {
            Tensor vec = embeddings.vec(ops, c.timeSin(), c.guidanceSin(), y);       // [B, D]
            Tensor vecSilu = ops.silu(vec);
            Tensor xImg = embeddings.imgIn().forward(ops, img);     // [B, Nimg, D]
            Tensor xTxt = embeddings.txtIn().forward(ops, txt);     // [B, Ntxt, D]
            return new Hidden(scope.keep(vecSilu), scope.keep(xImg), scope.keep(xTxt));
        }
    }

    /**
     * TeaCache's Flux signal: the modulated image input of double block 0, LayerNorm(img)·(1 + scale1) + shift1 with
     * block 0's first image modulation (diffusers' {@code transformer_blocks[0].norm1(hidden_states, temb)[0]}) — the
     * tensor block 0 feeds to its image qkv projection, computed by the same ops. h: from {@link #embed}. [B, Nimg, D].
     */
    public Tensor modulatedInput(Hidden h) {
        requireDoubleBlock("the block-0 modulated input (TeaCache)");
        try (Scope scope = Scope.open()) {
            FluxDoubleBlock.Modulation m = FluxDoubleBlock.Modulation.of(ops, doubleBlocks.getFirst().img().mod(), h.vecSilu(),
                    config.hiddenSize());
            return scope.keep(ops.layerNormModulate(h.img(), m.shift1(), m.scale1(), FluxConfig.EPS));
        }
    }

    /** Stage (b): double block 0 only (First-Block Cache: its image residual is {@code result.img − h.img}). */
    public Hidden firstBlock(Hidden h, Conditioning c) {
        requireDoubleBlock("the first block (First-Block Cache)");
        FluxDoubleBlock.Out o = doubleBlocks.getFirst().forward(ops, h.img(), h.txt(), h.vecSilu(), c.pe());
        return new Hidden(h.vecSilu(), o.img(), o.txt());
    }

    /**
     * Stage (c): double blocks {@code fromDouble} … depth−1, then every single block over [txt ‖ img]; returns the
     * image tokens of the last block's output [B, Nimg, D] (what TeaCache and MagCache take the residual of, against
     * the img_in output; First-Block Cache against block 0's output).
     */
    public Tensor remainingBlocks(Hidden h, Conditioning c, int fromDouble) {
        if (fromDouble < 0 || fromDouble > doubleBlocks.size())
            throw new IllegalArgumentException("fromDouble must be in [0, " + doubleBlocks.size() + "], got " + fromDouble);
        try (Scope scope = Scope.open()) {
            Tensor vecSilu = h.vecSilu();
            FluxRope.Tables pe = c.pe();
            Tensor xImg = h.img(), xTxt = h.txt();
            for (FluxDoubleBlock block : doubleBlocks.subList(fromDouble, doubleBlocks.size())) {
                FluxDoubleBlock.Out o = block.forward(ops, xImg, xTxt, vecSilu, pe);
                if (xImg != h.img()) xImg.close();
                if (xTxt != h.txt()) xTxt.close();
                xImg = o.img();
                xTxt = o.txt();
            }

            Tensor x = ops.concat(1, xTxt, xImg);                   // [B, Ntxt+Nimg, D]
            if (xImg != h.img()) xImg.close();
            if (xTxt != h.txt()) xTxt.close();
            for (FluxSingleBlock block : singleBlocks) {
                Tensor next = block.forward(ops, x, vecSilu, pe);
                x.close();
                x = next;
            }
            long nTxt = c.nTxt(), len = x.dim(1);
            Tensor imgTokens = ops.slice(x, 1, nTxt, len);          // [B, Nimg, D]
            x.close();
            return scope.keep(imgTokens);
        }
    }

    /** Stage (d): final adaLN + linear, imgTokens:[B, Nimg, D] → velocity [B, Nimg, outChannels]. */
    public Tensor finalLayer(Tensor imgTokens, Tensor vecSilu) {
        try (Scope scope = Scope.open()) {
            Tensor m = finalModulation.forward(ops, vecSilu);       // [B, 2D] = (shift, scale)
            Tensor h = ops.layerNormModulate(imgTokens, Chunks.chunk(ops, m, 0, 2), Chunks.chunk(ops, m, 1, 2), FluxConfig.EPS);
            return scope.keep(finalLinear.forward(ops, h));        // [B, Nimg, out]
        }
    }

    /**
     * The residual path of a skipped step: finalLayer(base + residual), where base is what the cached residual was
     * taken against (img_in output for TeaCache/MagCache, block 0's image output for First-Block Cache).
     */
    public Tensor applyResidual(Tensor base, Tensor residual, Tensor vecSilu) {
        if (!base.shape().equals(residual.shape()))
            throw new IllegalArgumentException("Flux residual path: the cached residual " + residual.shape()
                    + " does not match the image tokens " + base.shape() + " (same request, same size?)");
        try (Scope scope = Scope.open()) {
            return scope.keep(finalLayer(ops.add(base, residual), vecSilu));
        }
    }

    private void requireDoubleBlock(String what) {
        if (doubleBlocks.isEmpty())
            throw new IllegalStateException("this Flux model has no double blocks, so " + what + " does not exist");
    }

    private float[] floats(Tensor t) {
        Tensor h = t.device().isCpu() ? t : ops.toHost(t);
        float[] v = h.toFloatArray();
        if (h != t) h.close();
        return v;
    }

    private static void requireShape(String arg, Tensor t, long... dims) {
        if (!t.shape().equals(Shape.of(dims)))
            throw new IllegalArgumentException("Flux forward: " + arg + " must have shape " + Shape.of(dims) + ", got " + t.shape()
                    + " (B from img, token counts from the ids, widths from the config)");
    }

    // ------------------------------------------------------------------------------------------------ cost model

    /** Floating-point operations of one forward: matrix products of linears and of attention (QKᵀ and PV). */
    public record Flops(double linear, double attention) {
        public double total() { return linear + attention; }
    }

    /** FLOPs of this model's forward for batch 1 (multiply by B for a batch). */
    public Flops flops(long nImg, long nTxt) { return flops(config, nImg, nTxt); }

    /**
     * FLOPs of a forward with batch 1, counting 2 per multiply-add of every linear (embeddings, modulations, blocks,
     * final layer) and 4·L²·D per attention (QKᵀ and PV). Flux.1-dev at 4096 + 512 tokens: linear 59.5 T,
     * attention 14.9 T, total 74.4 T. Element-wise work is not counted.
     */
    public static Flops flops(FluxConfig c, long nImg, long nTxt) {
        double d = c.hiddenSize(), m = c.mlpHidden(), len = nImg + nTxt;
        double lin = 2 * nImg * c.inChannels() * d + 2 * nTxt * c.contextDim() * d;                  // img_in, txt_in
        lin += 2 * (FluxEmbeddings.TIME_DIM * d + d * d) * (c.guidanceEmbed() ? 2 : 1) + 2 * (c.vecDim() * d + d * d);
        double perDouble = 2 * len * (3 * d * d + d * d + 2 * d * m) + 2 * 2 * d * 6 * d;             // qkv, proj, mlp; mods
        double perSingle = 2 * len * ((3 * d + m) * d + (d + m) * d) + 2 * d * 3 * d;                 // linear1, linear2; mod
        lin += c.depth() * perDouble + c.depthSingle() * perSingle;
        lin += 2 * d * 2 * d + 2 * nImg * d * c.outChannels();                                        // final layer
        double att = (c.depth() + c.depthSingle()) * 4 * len * len * d;
        return new Flops(lin, att);
    }
}
