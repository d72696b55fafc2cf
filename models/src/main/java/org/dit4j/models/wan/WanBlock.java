package org.dit4j.models.wan;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Linear;

/**
 * One WanAttentionBlock (models.md §2.4). With e = modulation + e0 (F32 [B, 6, D]: shift, scale, gate of the
 * self-attention, then of the FFN):
 * <pre>
 * x = x + gate_sa · SelfAttn(LN(x)·(1 + scale_sa) + shift_sa)          LN without affine, eps 1e-6
 * x = x + CrossAttn(LN3(x), context)                                  LN3 affine (original norm3, diffusers norm2)
 * x = x + gate_ff · FFN(LN(x)·(1 + scale_ff) + shift_ff)              FFN = Linear, GELU-tanh, Linear
 * </pre>
 * Both attentions RMS-normalise q and k over the whole hidden size (all heads together) before splitting heads;
 * self-attention then rotates q and k with the 3-D RoPE tables. The residual stream and the attention/FFN inputs keep
 * the activation dtype; modulation, norms and gating are computed in F32 and rounded once, as diffusers does.
 */
public record WanBlock(Tensor modulation, Attention selfAttn, Tensor norm3Weight, Tensor norm3Bias, Attention crossAttn,
                       Linear ffnIn, Linear ffnOut, int numHeads) {

    /** q, k, v, o projections and the q/k RMSNorm scales [D] of one attention. */
    public record Attention(Linear q, Linear k, Linear v, Linear o, Tensor normQ, Tensor normK) {
        static Attention from(WanWeights w, String p) {
            return new Attention(w.linear(p + ".q"), w.linear(p + ".k"), w.linear(p + ".v"), w.linear(p + ".o"),
                    w.tensor(p + ".norm_q.weight"), w.tensor(p + ".norm_k.weight"));
        }
    }

    public static WanBlock from(WanWeights w, int i) {
        String b = "blocks." + i + ".";
        boolean norm = w.config().crossAttnNorm();
        return new WanBlock(w.tensor(b + "modulation"), Attention.from(w, b + "self_attn"),
                norm ? w.tensor(b + "norm3.weight") : null, norm ? w.tensor(b + "norm3.bias") : null,
                Attention.from(w, b + "cross_attn"), w.linear(b + "ffn.0"), w.linear(b + "ffn.2"), w.config().numHeads());
    }

    /**
     * x:[B, L, D] (activation dtype), context = embedded text [B, Lc, D], e0 = time projection F32 [B, 6, D], RoPE tables
     * F32 [L, d/2] → x':[B, L, D]. Intermediates are freed; only the output survives.
     */
    public Tensor forward(Ops ops, Tensor x, Tensor context, Tensor e0, Tensor cos, Tensor sin) {
        return forward(ops, ops, x, context, e0, cos, sin);
    }

    /**
     * {@link #forward(Ops, Tensor, Tensor, Tensor, Tensor, Tensor)} with the cross-attention's softmax(q·kᵀ)·v on
     * {@code crossOps} and everything else on {@code ops}: on a sequence-parallel rank {@code ops} is the decorator whose
     * attention spans every rank's tokens, and {@code crossOps} its local backend, since every rank holds the whole text.
     */
    public Tensor forward(Ops ops, Ops crossOps, Tensor x, Tensor context, Tensor e0, Tensor cos, Tensor sin) {
        try (Scope scope = Scope.open()) {
            long b = x.dim(0), d = x.dim(2);
            Tensor e = ops.add(e0, modulation);                                  // F32 [B, 6, D]
            Tensor[] m = new Tensor[6];
            for (int k = 0; k < 6; k++) m[k] = ops.reshape(ops.slice(e, 1, k, k + 1), b, d);

            Tensor h = ops.layerNormModulate(x, m[0], m[1], WanConfig.EPS);
            Tensor y = attention(ops, ops, selfAttn, h, h, cos, sin);
            Tensor x1 = ops.gatedResidual(x, m[2], y);

            Tensor hc = norm3Weight == null ? x1 : ops.layerNorm(x1, norm3Weight, norm3Bias, WanConfig.EPS);
            Tensor x2 = ops.add(x1, attention(ops, crossOps, crossAttn, hc, context, null, null));

            Tensor hf = ops.layerNormModulate(x2, m[3], m[4], WanConfig.EPS);
            Tensor f = ffnOut.forward(ops, ffnIn.forwardGeluTanh(ops, hf));
            return scope.keep(ops.gatedResidual(x2, m[5], f));
        }
    }

    /**
     * q from xq:[B, Lq, D], k and v from xkv:[B, Lk, D]; q and k RMS-normed over D, rotated when cos/sin are given;
     * softmax(q·kᵀ/√d)·v per head (on {@code core}); output projection → [B, Lq, D].
     */
    private Tensor attention(Ops ops, Ops core, Attention a, Tensor xq, Tensor xkv, Tensor cos, Tensor sin) {
        long b = xq.dim(0), lq = xq.dim(1), lk = xkv.dim(1), d = xq.dim(2), hd = d / numHeads;
        Tensor q, k;
        if (cos != null) {      // self-attention: norm across heads and RoPE in one pass
            q = ops.rmsNormAcrossHeadsRope(ops.reshape(a.q.forward(ops, xq), b, lq, numHeads, hd), a.normQ, WanConfig.EPS, cos, sin);
            k = ops.rmsNormAcrossHeadsRope(ops.reshape(a.k.forward(ops, xkv), b, lk, numHeads, hd), a.normK, WanConfig.EPS, cos, sin);
        } else {
            q = ops.reshape(ops.rmsNorm(a.q.forward(ops, xq), a.normQ, WanConfig.EPS), b, lq, numHeads, hd);
            k = ops.reshape(ops.rmsNorm(a.k.forward(ops, xkv), a.normK, WanConfig.EPS), b, lk, numHeads, hd);
        }
        Tensor v = ops.reshape(a.v.forward(ops, xkv), b, lk, numHeads, hd);
        Tensor o = ops.reshape(core.attention(q, k, v, null, (float) (1.0 / Math.sqrt(hd))), b, lq, d);
        return a.o.forward(ops, o);
    }
}
