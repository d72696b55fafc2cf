package org.dit4j.core.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/** Small Vector API kernels on float arrays. */
final class Vec {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();

    private Vec() {}

    /** Σ a[ao+i]·b[bo+i] for i < n, f32 FMA in 2 vector accumulators. */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector s0 = FloatVector.zero(SPECIES), s1 = FloatVector.zero(SPECIES);
        int i = 0;
        for (int upper = n - 2 * LANES + 1; i < upper; i += 2 * LANES) {
            s0 = FloatVector.fromArray(SPECIES, a, ao + i).fma(FloatVector.fromArray(SPECIES, b, bo + i), s0);
            s1 = FloatVector.fromArray(SPECIES, a, ao + i + LANES).fma(FloatVector.fromArray(SPECIES, b, bo + i + LANES), s1);
        }
        for (int upper = SPECIES.loopBound(n); i < upper; i += LANES)
            s0 = FloatVector.fromArray(SPECIES, a, ao + i).fma(FloatVector.fromArray(SPECIES, b, bo + i), s0);
        float sum = sumLanes(s0.add(s1));
        for (; i < n; i++) sum = Math.fma(a[ao + i], b[bo + i], sum);
        return sum;
    }

    /**
     * The lanes of v added in lane order. {@code reduceLanes(ADD)} leaves the order open, and its compiled and
     * interpreted forms differ in the last bits, which made results depend on JIT timing.
     */
    static float sumLanes(FloatVector v) {
        float s = 0;
        for (int l = 0; l < LANES; l++) s += v.lane(l);
        return s;
    }
}
