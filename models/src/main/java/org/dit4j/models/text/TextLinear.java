package org.dit4j.models.text;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/**
 * A linear layer of a text encoder: y = (x·Wᵀ)·s + b, W:[out, in] in its stored dtype, b:[out] or null, and s the
 * ComfyUI scaled-fp8 weight scale: a scalar {@code scale} (1 when there is none) or per output row
 * ({@code rowScale}, F32 [out], else null). Applying the scale to the output keeps fp8 weights fp8 on the device;
 * since s is constant per output row this equals x·(W·s)ᵀ up to f32 rounding.
 * The tensors belong to the model that loaded them.
 */
record TextLinear(Tensor weight, Tensor bias, float scale, Tensor rowScale) {

    TextLinear {
        if (weight.rank() != 2) throw new IllegalArgumentException("linear weight must be [out, in], got " + weight.shape());
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != weight.dim(0)))
            throw new IllegalArgumentException("linear bias must be [" + weight.dim(0) + "], got " + bias.shape());
        if (rowScale != null && (rowScale.rank() != 1 || rowScale.dim(0) != weight.dim(0)))
            throw new IllegalArgumentException("linear row scale must be [" + weight.dim(0) + "], got " + rowScale.shape());
    }

    /** A plain layer (no weight scale). */
    TextLinear(Tensor weight, Tensor bias) { this(weight, bias, 1f, null); }

    private boolean scaled() { return scale != 1f || rowScale != null; }

    /** x:[..., in] → [..., out]. */
    Tensor forward(Ops ops, Tensor x) {
        if (!scaled()) return ops.linear(x, weight, bias);
        Tensor y = ops.linear(x, weight, null);
        Tensor scaled = rowScale != null ? ops.mul(y, rowScale) : ops.scale(y, scale);
        y.close();
        if (bias == null) return scaled;
        Tensor out = ops.add(scaled, bias);
        scaled.close();
        return out;
    }

    /** gelu_tanh(forward(x)), through the backend's fused form when there is no scale. */
    Tensor forwardGeluTanh(Ops ops, Tensor x) {
        if (!scaled()) return ops.linearGelu(x, weight, bias, true);
        Tensor y = forward(ops, x);
        Tensor out = ops.gelu(y, true);
        y.close();
        return out;
    }
}
