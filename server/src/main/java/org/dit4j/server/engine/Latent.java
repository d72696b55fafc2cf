package org.dit4j.server.engine;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * ComfyUI's LATENT value: {@code samples} shaped [B, C, H, W] (images) or [B, C, T, H, W] (video), float32 on the
 * host, row-major; plus the optional reference-free extras ComfyUI carries ({@code noise_mask}).
 * The arrays are never mutated after construction: nodes build new latents.
 */
public record Latent(long[] shape, float[] samples, Mask noiseMask) {

    public Latent {
        Objects.requireNonNull(shape, "shape");
        Objects.requireNonNull(samples, "samples");
        shape = shape.clone();
        long n = 1;
        for (long d : shape) {
            if (d <= 0) throw new IllegalArgumentException("latent dimensions must be positive, got " + Arrays.toString(shape));
            n *= d;
        }
        if (n != samples.length)
            throw new IllegalArgumentException("latent shape " + Arrays.toString(shape) + " needs " + n + " values, got " + samples.length);
    }

    public Latent(long[] shape, float[] samples) { this(shape, samples, null); }

    /** A zero latent of the given shape (EmptyLatentImage, EmptySD3LatentImage, ...). */
    public static Latent zeros(long... shape) {
        long n = 1;
        for (long d : shape) n *= d;
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("latent " + Arrays.toString(shape) + " is too large for one host array");
        return new Latent(shape, new float[(int) n]);
    }

    public int batch() { return (int) shape[0]; }

    public int channels() { return (int) shape[1]; }

    /** Height of the latent grid (second to last dimension). */
    public int height() { return (int) shape[shape.length - 2]; }

    /** Width of the latent grid (last dimension). */
    public int width() { return (int) shape[shape.length - 1]; }

    @Override public long[] shape() { return shape.clone(); }

    public List<Long> shapeList() { return Arrays.stream(shape).boxed().toList(); }

    /** True when every sample is exactly 0 (ComfyUI skips the latent-format shift for empty latents). */
    public boolean isAllZero() {
        for (float v : samples) if (v != 0f) return false;
        return true;
    }

    @Override public boolean equals(Object o) {
        return o instanceof Latent l && Arrays.equals(shape, l.shape) && Arrays.equals(samples, l.samples)
                && Objects.equals(noiseMask, l.noiseMask);
    }

    @Override public int hashCode() { return Arrays.hashCode(shape) * 31 + Arrays.hashCode(samples); }

    @Override public String toString() { return "<LATENT " + Arrays.toString(shape) + ">"; }
}
