package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
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
            long d = img.dim(2);
            Modulation mi = Modulation.of(ops, this.img.mod, vecSilu, d);     // 6 × [B, D]
            Modulation mt = Modulation.of(ops, this.txt.mod, vecSilu, d);

            // q, k, v per stream: [B, N, H, hd]; QK-norm per head, then RoPE with the stream's rows of the tables
            Qkv qi = qkv(ops, this.img, ops.layerNormModulate(img, mi.shift1, mi.scale1, FluxConfig.EPS), pe.cosImg(), pe.sinImg());
            Qkv qt = qkv(ops, this.txt, ops.layerNormModulate(txt, mt.shift1, mt.scale1, FluxConfig.EPS), pe.cosTxt(), pe.sinTxt());

            // joint attention over [txt ‖ img]: [B, L, H, hd] → [B, L, D]
            Tensor q = ops.concat(1, qt.q, qi.q), k = ops.concat(1, qt.k, qi.k), v = ops.concat(1, qt.v, qi.v);
            long nTxt = txt.dim(1), len = q.dim(1);
            Tensor a = ops.reshape(ops.attention(q, k, v, null, (float) (1.0 / Math.sqrt(q.dim(3)))), img.dim(0), len, d);
            Tensor aTxt = ops.slice(a, 1, 0, nTxt), aImg = ops.slice(a, 1, nTxt, len);

            Tensor imgOut = streamUpdate(ops, this.img, mi, img, aImg);
            Tensor txtOut = streamUpdate(ops, this.txt, mt, txt, aTxt);
            return new Out(scope.keep(imgOut), scope.keep(txtOut));
        }
    }

    /** x + gate1·proj(a); then + gate2·mlp(modulate(LN(x), shift2, scale2)). x, a:[B, N, D]. */
    private static Tensor streamUpdate(Ops ops, Stream s, Modulation m, Tensor x, Tensor a) {
        Tensor x1 = ops.gatedResidual(x, m.gate1, s.proj.forward(ops, a));
        Tensor h = s.mlpIn.forwardGeluTanh(ops, ops.layerNormModulate(x1, m.shift2, m.scale2, FluxConfig.EPS));
        return ops.gatedResidual(x1, m.gate2, s.mlpOut.forward(ops, h));
    }

    private record Qkv(Tensor q, Tensor k, Tensor v) {}

    /** xm:[B, N, D] → q, k, v:[B, N, H, hd], q and k RMS-normed per head and rotated. */
    private Qkv qkv(Ops ops, Stream s, Tensor xm, Tensor cos, Tensor sin) {
        long b = xm.dim(0), n = xm.dim(1), hd = xm.dim(2) / numHeads;
        Tensor qkv = ops.reshape(s.qkv.forward(ops, xm), b, n, 3, numHeads, hd);   // [B, N, 3, H, hd]
        Tensor q = ops.reshape(ops.slice(qkv, 2, 0, 1), b, n, numHeads, hd);
        Tensor k = ops.reshape(ops.slice(qkv, 2, 1, 2), b, n, numHeads, hd);
        Tensor v = ops.reshape(ops.slice(qkv, 2, 2, 3), b, n, numHeads, hd);
        return new Qkv(ops.rmsNormRope(q, s.qNorm, FluxConfig.EPS, cos, sin), ops.rmsNormRope(k, s.kNorm, FluxConfig.EPS, cos, sin), v);
    }

    /** shift1, scale1, gate1, shift2, scale2, gate2 = chunk6(mod(SiLU(vec))), each [B, D]. */
    record Modulation(Tensor shift1, Tensor scale1, Tensor gate1, Tensor shift2, Tensor scale2, Tensor gate2) {
        static Modulation of(Ops ops, Linear mod, Tensor vecSilu, long d) {
            Tensor m = mod.forward(ops, vecSilu);
            return new Modulation(ops.slice(m, 1, 0, d), ops.slice(m, 1, d, 2 * d), ops.slice(m, 1, 2 * d, 3 * d),
                    ops.slice(m, 1, 3 * d, 4 * d), ops.slice(m, 1, 4 * d, 5 * d), ops.slice(m, 1, 5 * d, 6 * d));
        }
    }
}
