package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Chunks;
import org.dit4j.models.nn.Linear;

/**
 * Double-stream block (models.md §1.5): image and text tokens keep separate weights (modulation, qkv, QK-norm,
 * projection, MLP) and meet in one joint attention over [txt ‖ img].
 */
public record FluxDoubleBlock(Stream img, Stream txt, int numHeads) {

    /** The weights of one stream. */
    public record Stream(Linear mod, Linear qkv, Tensor qNorm, Tensor kNorm, Linear proj, Linear mlpIn, Linear mlpOut) {
        static Stream from(FluxWeights w, String p) {
            return new Stream(w.linear(p + "_mod.lin"), w.linear(p + "_attn.qkv"), w.tensor(p + "_attn.norm.query_norm.scale"),
                    w.tensor(p + "_attn.norm.key_norm.scale"), w.linear(p + "_attn.proj"), w.linear(p + "_mlp.0"),
                    w.linear(p + "_mlp.2"));
        }
    }

    /** The block's outputs. */
    public record Out(Tensor img, Tensor txt) {}

    public static FluxDoubleBlock from(FluxWeights w, int i) {
        String b = "double_blocks." + i + ".";
        return new FluxDoubleBlock(Stream.from(w, b + "img"), Stream.from(w, b + "txt"), w.config().numHeads());
    }

    /**
     * img:[B, Nimg, D] txt:[B, Ntxt, D] vecSilu = SiLU(vec):[B, D], rope tables split into text and image rows
     * → img':[B, Nimg, D], txt':[B, Ntxt, D]. Intermediates are freed; only the outputs survive.
     */
    public Out forward(Ops ops, Tensor img, Tensor txt, Tensor vecSilu, FluxRope.Tables pe) {
        try (Scope scope = Scope.open()) {
            long b = img.dim(0), d = img.dim(2), hd = d / numHeads, nTxt = txt.dim(1), len = nTxt + img.dim(1);
            Modulation mi = Modulation.of(ops, this.img.mod, vecSilu, d);     // 6 × [B, D]
            Modulation mt = Modulation.of(ops, this.txt.mod, vecSilu, d);

            // joint q, k, v over [txt ‖ img]: [B, L, H, hd]; each stream's projection is split, QK-normed per head and
            // rotated with its rows of the tables straight into its rows of the joint tensors
            Shape heads = Shape.of(b, len, numHeads, hd);
            Tensor q = ops.empty(img.dtype(), heads), k = ops.empty(img.dtype(), heads), v = ops.empty(img.dtype(), heads);
            qkvInto(ops, this.txt, ops.layerNormModulate(txt, mt.shift1, mt.scale1, FluxConfig.EPS), pe.cosTxt(), pe.sinTxt(), q, k, v, 0);
            qkvInto(ops, this.img, ops.layerNormModulate(img, mi.shift1, mi.scale1, FluxConfig.EPS), pe.cosImg(), pe.sinImg(), q, k, v, nTxt);

            Tensor a = ops.reshape(ops.attention(q, k, v, null, (float) (1.0 / Math.sqrt(hd))), b, len, d);   // [B, L, D]
            Tensor aTxt = rows(ops, a, 0, nTxt), aImg = rows(ops, a, nTxt, len);

            Tensor imgOut = streamUpdate(ops, this.img, mi, img, aImg);
            Tensor txtOut = streamUpdate(ops, this.txt, mt, txt, aTxt);
            return new Out(scope.keep(imgOut), scope.keep(txtOut));
        }
    }

    /** Sequence rows [start, end) of x:[B, L, D]: a zero-copy view for B = 1, else a copy. */
    private static Tensor rows(Ops ops, Tensor x, long start, long end) {
        if (x.dim(0) != 1) return ops.slice(x, 1, start, end);
        return x.view(x.dim(1), x.dim(2)).narrowOuter(start, end).view(1, end - start, x.dim(2));
    }

    /** x + gate1·proj(a); then + gate2·mlp(modulate(LN(x), shift2, scale2)). x, a:[B, N, D]. */
    private static Tensor streamUpdate(Ops ops, Stream s, Modulation m, Tensor x, Tensor a) {
        Tensor x1 = ops.gatedResidual(x, m.gate1, s.proj.forward(ops, a));
        Tensor h = s.mlpIn.forwardGeluTanh(ops, ops.layerNormModulate(x1, m.shift2, m.scale2, FluxConfig.EPS));
        return ops.gatedResidual(x1, m.gate2, s.mlpOut.forward(ops, h));
    }

    /** xm:[B, N, D] → rows [offset, offset + N) of q, k, v:[B, L, H, hd], q and k RMS-normed per head and rotated. */
    private static void qkvInto(Ops ops, Stream s, Tensor xm, Tensor cos, Tensor sin, Tensor q, Tensor k, Tensor v, long offset) {
        Tensor qkv = s.qkv.forward(ops, xm);                                        // [B, N, 3D]
        ops.qkvNormRopeInto(qkv, s.qNorm, s.kNorm, FluxConfig.EPS, cos, sin, q, k, v, offset);
        qkv.close();
    }

    /** shift1, scale1, gate1, shift2, scale2, gate2 = chunk6(mod(SiLU(vec))), each [B, D]. */
    record Modulation(Tensor shift1, Tensor scale1, Tensor gate1, Tensor shift2, Tensor scale2, Tensor gate2) {
        static Modulation of(Ops ops, Linear mod, Tensor vecSilu, long d) {
            Tensor m = mod.forward(ops, vecSilu);
            return new Modulation(Chunks.chunk(ops, m, 0, 6), Chunks.chunk(ops, m, 1, 6), Chunks.chunk(ops, m, 2, 6),
                    Chunks.chunk(ops, m, 3, 6), Chunks.chunk(ops, m, 4, 6), Chunks.chunk(ops, m, 5, 6));
        }
    }
}
