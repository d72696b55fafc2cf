package org.dit4j.models.nn;

import org.dit4j.core.tensor.Tensor;

/**
 * Rotary-embedding tables for multi-axis positions (models.md §0, adjacent-pair convention).
 *
 * <p>For each token l and axis k of even width a_k, pairs j = 0..a_k/2−1 rotate by θ = pos[l][k]·ω_j with
 * ω_j = theta^(−2j/a_k). The pair blocks of the axes are concatenated in axis order, giving tables
 * cos, sin:[L, Σa_k/2] for {@link org.dit4j.core.ops.Ops#rope}. Angles are computed in double, as diffusers
 * ({@code freqs_dtype=float64}) and BFL do, and rounded to F32 once.
 */
public final class Rope {
    private Rope() {}

    /** cos and sin tables, host F32 [L, Σ axesDim / 2]. */
    public record Tables(Tensor cos, Tensor sin) {}

    /**
     * @param pos     positions [L][axes] (float values as in the reference ids tensors)
     * @param axesDim width of each axis in the head dim (each even)
     */
    public static Tables tables(float[][] pos, int[] axesDim, double theta) {
        int pairs = 0;
        for (int a : axesDim) {
            if (a % 2 != 0) throw new IllegalArgumentException("every RoPE axis width must be even, got " + java.util.Arrays.toString(axesDim));
            pairs += a / 2;
        }
        double[] omega = new double[pairs];
        int[] axisOf = new int[pairs];
        for (int k = 0, c = 0; k < axesDim.length; k++) {
            for (int j = 0; j < axesDim[k] / 2; j++, c++) {
                omega[c] = 1.0 / Math.pow(theta, (2.0 * j) / axesDim[k]);
                axisOf[c] = k;
            }
        }
        int len = pos.length;
        float[] cos = new float[len * pairs];
        float[] sin = new float[len * pairs];
        for (int l = 0; l < len; l++) {
            if (pos[l].length != axesDim.length)
                throw new IllegalArgumentException("position " + l + " has " + pos[l].length + " axes, expected " + axesDim.length);
            for (int c = 0; c < pairs; c++) {
                double angle = pos[l][axisOf[c]] * omega[c];
                cos[l * pairs + c] = (float) Math.cos(angle);
                sin[l * pairs + c] = (float) Math.sin(angle);
            }
        }
        return new Tables(Tensor.of(cos, len, pairs), Tensor.of(sin, len, pairs));
    }
}
