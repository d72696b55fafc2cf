package org.dit4j.server.sampling;

/**
 * ComfyUI's model sampling objects for flow-matching models, with the float32 sigma table ComfyUI registers.
 * <ul>
 *   <li>{@link Kind#FLUX} = {@code ModelSamplingFlux} (Flux dev/Kontext, ModelSamplingFlux node):
 *       σ(t) = e^shift / (e^shift + (1/t − 1)), table over t = k/10000, k = 1..10000; timestep(σ) = σ.</li>
 *   <li>{@link Kind#DISCRETE_FLOW} = {@code ModelSamplingDiscreteFlow} (Flux schnell: shift 1, multiplier 1;
 *       ModelSamplingSD3 node, Wan: multiplier 1000): σ(t) = s·t / (1 + (s − 1)·t) with t = timestep/multiplier,
 *       table over timestep = (k/1000)·multiplier, k = 1..1000; timestep(σ) = σ·multiplier.</li>
 * </ul>
 * Arithmetic follows PyTorch's float32 CPU evaluation of ComfyUI's expressions operation by operation (scalar
 * operands rounded to float32, {@code scalar / tensor} evaluated as {@code reciprocal(tensor) · scalar}).
 */
public record ModelSampling(Kind kind, double shift, double multiplier) {

    public enum Kind { FLUX, DISCRETE_FLOW }

    /** Table length of ModelSamplingFlux.set_parameters (timesteps=10000). */
    public static final int FLUX_TIMESTEPS = 10000;
    /** Table length of ModelSamplingDiscreteFlow.set_parameters (timesteps=1000). */
    public static final int FLOW_TIMESTEPS = 1000;

    public ModelSampling {
        if (!Double.isFinite(shift)) throw new IllegalArgumentException("shift must be finite, got " + shift);
        if (kind == Kind.DISCRETE_FLOW && !(multiplier > 0)) throw new IllegalArgumentException("multiplier must be > 0, got " + multiplier);
    }

    /** ModelSamplingFlux with the given shift (μ); Flux dev's checkpoint default is 1.15. */
    public static ModelSampling flux(double shift) { return new ModelSampling(Kind.FLUX, shift, 1.0); }

    /** ModelSamplingDiscreteFlow (Flux schnell: flow(1, 1); ModelSamplingSD3 node: flow(shift, 1000)). */
    public static ModelSampling flow(double shift, double multiplier) { return new ModelSampling(Kind.DISCRETE_FLOW, shift, multiplier); }

    /**
     * The shift the ModelSamplingFlux node computes for an image size: the line through (256, base_shift) and
     * (4096, max_shift) evaluated at the packed token count width·height/256 (Python double arithmetic).
     */
    public static double fluxShift(double maxShift, double baseShift, long width, long height) {
        double x1 = 256, x2 = 4096;
        double mm = (maxShift - baseShift) / (x2 - x1);
        double b = baseShift - mm * x1;
        return ((double) (width * height) / (8 * 8 * 2 * 2)) * mm + b;
    }

    /** The registered {@code sigmas} buffer, ascending (float32). */
    public float[] sigmaTable() {
        int n = kind == Kind.FLUX ? FLUX_TIMESTEPS : FLOW_TIMESTEPS;
        float[] out = new float[n];
        for (int k = 1; k <= n; k++) {
            float t = (float) k / (float) n;                       // arange(1, n+1) / n, promoted to float32
            out[k - 1] = kind == Kind.FLUX ? sigma(t) : sigma(t * (float) multiplier);
        }
        return out;
    }

    /** σ for a model timestep, float32 as the tensor expression evaluates. */
    public float sigma(float timestep) {
        if (kind == Kind.FLUX) {
            float e = (float) Math.exp(shift);
            float a = (1f / timestep) - 1f;                        // (1 / t - 1) ** 1.0 (pow by 1.0 is a copy)
            float denom = a + e;                                   // math.exp(mu) + tensor
            return (1f / denom) * e;                               // math.exp(mu) / tensor = reciprocal(tensor) * scalar
        }
        float t = timestep / (float) multiplier;
        if (shift == 1.0) return t;
        float alpha = (float) shift;
        float num = t * alpha;                                     // alpha * t
        float den = (t * (float) (shift - 1.0)) + 1f;              // 1 + (alpha - 1) * t
        return num / den;
    }

    /** Model timestep of a σ (Flux: σ itself; discrete flow: σ·multiplier). */
    public float timestep(float sigma) {
        return kind == Kind.FLUX ? sigma : sigma * (float) multiplier;
    }

    public float sigmaMin() { return sigmaTable()[0]; }

    public float sigmaMax() {
        float[] t = sigmaTable();
        return t[t.length - 1];
    }

    @Override public String toString() {
        return kind == Kind.FLUX ? "flux(shift=" + shift + ")" : "flow(shift=" + shift + ", multiplier=" + multiplier + ")";
    }
}
