package org.dit4j.models.nn;

import org.dit4j.core.tensor.Tensor;

/**
 * Sinusoidal timestep embedding, cos first (models.md §0 {@code sin_emb}; diffusers
 * {@code Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0)}; BFL {@code timestep_embedding}).
 *
 * <p>half = dim/2, f_j = exp(−ln(10000)·j/half), a = factor·t·f, emb = [cos(a) ‖ sin(a)]. Computed on the host in the
 * same float32 steps as the references (the frequency exponent, the product and the angle are float32), so the
 * angles are bit-identical to PyTorch's up to the last ulp of exp; only sin/cos are evaluated in double.
 */
public final class Timesteps {
    private Timesteps() {}

    /**
     * @param t      timesteps, one per batch element
     * @param dim    embedding width (even)
     * @param factor multiplier applied to t first (1000 for Flux, whose t is in [0,1])
     * @return host F32 tensor [B, dim]
     */
    public static Tensor embedding(float[] t, int dim, float factor) {
        if (dim % 2 != 0) throw new IllegalArgumentException("timestep embedding width must be even, got " + dim);
        int half = dim / 2;
        float[] freqs = new float[half];
        float lnMax = (float) -Math.log(10000.0);
        for (int j = 0; j < half; j++) freqs[j] = (float) Math.exp((lnMax * j) / half);
        float[] out = new float[t.length * dim];
        for (int b = 0; b < t.length; b++) {
            float tb = t[b] * factor;
            for (int j = 0; j < half; j++) {
                float a = tb * freqs[j];
                out[b * dim + j] = (float) Math.cos(a);
                out[b * dim + half + j] = (float) Math.sin(a);
            }
        }
        return Tensor.of(out, t.length, dim);
    }
}
