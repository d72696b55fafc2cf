package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Chunks;
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

    /**
     * x:[B, L, D] vecSilu:[B, D], rope tables over all L rows → x':[B, L, D]. The attention output and the MLP's hidden
     * activations are written side by side into one [B, L, D+M] tensor, so linear2 reads their concatenation without
     * a copy; q, k, v come out of the qkv projection in one pass (split, QK-norm, RoPE). The MLP runs before attention
     * (announced with {@link Ops#prefetchAttention}), so a sequence-parallel exchange of q, k, v overlaps it.
     */
    public Tensor forward(Ops ops, Tensor x, Tensor vecSilu, FluxRope.Tables pe) {
        try (Scope scope = Scope.open()) {
            long b = x.dim(0), len = x.dim(1), d = x.dim(2), hd = d / numHeads;
            Tensor m = mod.forward(ops, vecSilu);                                        // [B, 3D]
            Tensor shift = Chunks.chunk(ops, m, 0, 3), scale = Chunks.chunk(ops, m, 1, 3), gate = Chunks.chunk(ops, m, 2, 3);
            Tensor xm = ops.layerNormModulate(x, shift, scale, FluxConfig.EPS);           // [B, L, D]

            Shape heads = Shape.of(b, len, numHeads, hd);
            Tensor q = ops.empty(x.dtype(), heads), k = ops.empty(x.dtype(), heads), v = ops.empty(x.dtype(), heads);
            Tensor qkvOut = qkv.forward(ops, xm);                                        // [B, L, 3D]
            ops.qkvNormRopeInto(qkvOut, qNorm, kNorm, FluxConfig.EPS, pe.cos(), pe.sin(), q, k, v, 0);
            qkvOut.close();

            Tensor h = ops.empty(x.dtype(), Shape.of(b, len, d + mlpIn.out()));           // [B, L, D+M] = attn ‖ gelu(mlp)
            // the MLP does not read q, k, v: under sequence parallelism their exchange runs meanwhile
            ops.prefetchAttention(q, k, v);
            ops.linearGeluInto(h, d, xm, mlpIn.weight(), mlpIn.bias(), true);
            ops.attentionInto(h, 0, q, k, v, null, (float) (1.0 / Math.sqrt(hd)));
            Tensor out = linear2.forward(ops, h);                                         // [B, L, D]
            return scope.keep(ops.gatedResidual(x, gate, out));
        }
    }
}
