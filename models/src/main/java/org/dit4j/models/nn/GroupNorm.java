package org.dit4j.models.nn;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/**
 * Group normalisation as {@code torch.nn.GroupNorm(groups, C, eps, affine)}: statistics over each group of C/groups
 * channels and all positions, then y·w + b per channel (w, b:[C] or null).
 */
public record GroupNorm(Tensor weight, Tensor bias, int groups, float eps) {

    public GroupNorm {
        if (groups < 1) throw new IllegalArgumentException("group norm needs at least one group, got " + groups);
        if (weight != null && (weight.rank() != 1 || weight.dim(0) % groups != 0))
            throw new IllegalArgumentException("group norm weight must be [C] with C divisible by " + groups + " groups, got "
                    + weight.shape());
        if (bias != null && weight != null && !bias.shape().equals(weight.shape()))
            throw new IllegalArgumentException("group norm bias must match its weight " + weight.shape() + ", got " + bias.shape());
    }

    /** x:[N, C, ...] → same shape. */
    public Tensor forward(Ops ops, Tensor x) { return ops.groupNorm(x, groups, weight, bias, eps); }

    /** silu(forward(x)), fused where the backend can ({@link Ops#groupNormSilu}). */
    public Tensor forwardSilu(Ops ops, Tensor x) { return ops.groupNormSilu(x, groups, weight, bias, eps); }
}
