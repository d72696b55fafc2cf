package org.dit4j.models.nn;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/**
 * A square-stride 2-D convolution as {@code torch.nn.Conv2d}: W:[O, C, kh, kw], b:[O] or null, zero padding
 * {@code padding} on every side. The tensors belong to whoever loaded them; this record only names them.
 */
public record Conv2d(Tensor weight, Tensor bias, int stride, int padding) {

    public Conv2d {
        if (weight.rank() != 4) throw new IllegalArgumentException("conv2d weight must be [O, C, kh, kw], got " + weight.shape());
        if (bias != null && (bias.rank() != 1 || bias.dim(0) != weight.dim(0)))
            throw new IllegalArgumentException("conv2d bias must be [" + weight.dim(0) + "], got " + bias.shape());
        if (stride < 1 || padding < 0)
            throw new IllegalArgumentException("conv2d needs stride >= 1 and padding >= 0, got stride " + stride + ", padding " + padding);
    }

    /** Stride 1 with "same" padding for an odd kernel (3×3 → padding 1, 1×1 → padding 0). */
    public static Conv2d same(Tensor weight, Tensor bias) {
        return new Conv2d(weight, bias, 1, weight.shape().dimInt(2) / 2);
    }

    public int in() { return weight.shape().dimInt(1); }

    public int out() { return weight.shape().dimInt(0); }

    /** x:[N, C, H, W] → [N, O, H', W']. */
    public Tensor forward(Ops ops, Tensor x) {
        return ops.conv2d(x, weight, bias, new int[] {stride, stride}, new int[] {padding, padding}, 1);
    }
}
