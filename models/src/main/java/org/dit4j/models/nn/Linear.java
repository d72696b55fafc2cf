package org.dit4j.models.nn;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/**
 * A linear layer: y = x·Wᵀ + b, with W:[out, in] (PyTorch layout) and b:[out] or null.
 * The tensors belong to whoever loaded them; this record only names them.
 */
public record Linear(Tensor weight, Tensor bias) {

    public Linear {
        if (weight.rank() != 2) throw new IllegalArgumentException("linear weight must be [out, in], got " + weight.shape());
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != weight.dim(0)))
            throw new IllegalArgumentException("linear bias must be [" + weight.dim(0) + "], got " + bias.shape());
    }

    public int in() { return weight.shape().dimInt(1); }

    public int out() { return weight.shape().dimInt(0); }

    /** x:[..., in] → [..., out]. */
    public Tensor forward(Ops ops, Tensor x) { return ops.linear(x, weight, bias); }

    /** gelu_tanh(x·Wᵀ + b), through the backend's fused form. */
    public Tensor forwardGeluTanh(Ops ops, Tensor x) { return ops.linearGelu(x, weight, bias, true); }

    /** Output rows [start, end) of this layer as a layer of its own: zero-copy views of W and b. */
    public Linear rows(long start, long end) {
        return new Linear(weight.narrowOuter(start, end), bias == null ? null : bias.narrowOuter(start, end));
    }

    /** Multiply-adds ×2 for {@code tokens} input rows. */
    public double flops(double tokens) { return 2.0 * tokens * in() * out(); }
}
