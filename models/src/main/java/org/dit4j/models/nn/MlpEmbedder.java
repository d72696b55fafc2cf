package org.dit4j.models.nn;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/** out(SiLU(in(x))): the two-layer embedder of Flux's time/guidance/vector inputs and of Wan's time embedding. */
public record MlpEmbedder(Linear in, Linear out) {

    /** x:[B, in] → [B, out]. */
    public Tensor forward(Ops ops, Tensor x) {
        Tensor h = in.forward(ops, x);
        Tensor a = ops.silu(h);
        h.close();
        Tensor y = out.forward(ops, a);
        a.close();
        return y;
    }
}
