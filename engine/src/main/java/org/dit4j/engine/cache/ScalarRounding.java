package org.dit4j.engine.cache;

import org.dit4j.core.tensor.DType;

/**
 * How the scalar means of a relative-L1 signal are rounded before the decision. The published implementations take
 * {@code (a - b).abs().mean() / b.abs().mean()} of tensors in the model's dtype, so PyTorch rounds each mean and the
 * quotient to that dtype (bf16 for the usual checkpoints) before {@code .item()}. Emulating that rounding makes
 * decisions at a threshold boundary agree with the reference run; {@link #NONE} keeps the exact double value.
 */
public enum ScalarRounding {
    /** No rounding: means and quotient in double precision. */
    NONE,
    /** Means and quotient rounded to float32, as PyTorch does for f32 tensors. */
    F32,
    /** Means and quotient rounded to bfloat16 (round to nearest even), as PyTorch does for bf16 tensors. */
    BF16;

    /** Rounds one scalar as a tensor of this dtype would hold it. */
    public double round(double v) {
        return switch (this) {
            case NONE -> v;
            case F32 -> (float) v;
            case BF16 -> DType.bf16ToFloat(DType.floatToBf16((float) v));
        };
    }
}
