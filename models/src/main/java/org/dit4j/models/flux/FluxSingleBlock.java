package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Linear;

/**
 * Single-stream block (models.md §1.6) over x = [txt ‖ img]: one modulation, linear1 producing qkv and the MLP
 * input side by side, attention and MLP in parallel, linear2 over their concatenation.
 */
public record FluxSingleBlock(Linear mod, Linear qkv, Linear mlpIn, Tensor qNorm, Tensor kNorm, Linear linear2, int numHeads) {

    public static FluxSingleBlock from(FluxWeights w, int i) {
        String b = "single_blocks." + i + ".";
        long d = w.config().hiddenSize();
        Linear linear1 = w.linear(b + "linear1");   // rows [0, 3D): q, k, v; rows [3D, 3D+M): MLP input
        return new FluxSingleBlock(w.linear(b + "modulation.lin"), linear1.rows(0, 3 * d),
                linear1.rows(3 * d, linear1.out()), w.tensor(b + "norm.query_norm.scale"),
                w.tensor(b + "norm.key_norm.scale"), w.linear(b + "linear2"), w.config().numHeads());
    }

    /** x:[B, L, D] vecSilu:[B, D], rope tables over all L rows → x':[B, L, D]. */
    public Tensor forward(Ops ops, Tensor x, Tensor vecSilu, FluxRope.Tables pe) {
        try (Scope scope = Scope.open()) {
            long b = x.dim(0), len = x.dim(1), d = x.dim(2), hd = d / numHeads;
            Tensor m = mod.forward(ops, vecSilu);                                        // [B, 3D]
            Tensor shift = ops.slice(m, 1, 0, d), scale = ops.slice(m, 1, d, 2 * d), gate = ops.slice(m, 1, 2 * d, 3 * d);
            Tensor xm = ops.layerNormModulate(x, shift, scale, FluxConfig.EPS);           // [B, L, D]

            Tensor qkv5 = ops.reshape(qkv.forward(ops, xm), b, len, 3, numHeads, hd);      // [B, L, 3, H, hd]
            Tensor q = ops.rmsNormRope(ops.reshape(ops.slice(qkv5, 2, 0, 1), b, len, numHeads, hd), qNorm, FluxConfig.EPS, pe.cos(), pe.sin());
            Tensor k = ops.rmsNormRope(ops.reshape(ops.slice(qkv5, 2, 1, 2), b, len, numHeads, hd), kNorm, FluxConfig.EPS, pe.cos(), pe.sin());
            Tensor v = ops.reshape(ops.slice(qkv5, 2, 2, 3), b, len, numHeads, hd);
            Tensor a = ops.reshape(ops.attention(q, k, v, null, (float) (1.0 / Math.sqrt(hd))), b, len, d);   // [B, L, D]

            Tensor mlp = mlpIn.forwardGeluTanh(ops, xm);                                  // [B, L, M]
            Tensor out = linear2.forward(ops, ops.concat(2, a, mlp));                      // [B, L, D]
            return scope.keep(ops.gatedResidual(x, gate, out));
        }
    }
}
