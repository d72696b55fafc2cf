package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** Shared helpers: skip without a GPU (printing why), uploads, tolerances by dtype. */
final class CudaTestSupport {
    private CudaTestSupport() {}

    /** Skips the calling test class when CUDA is not usable here, printing the reason. */
    static void requireCuda() {
        String why = Cuda.unavailableReason();
        if (why != null) System.out.println("[dit4j-cuda] skipping GPU tests: " + why.lines().findFirst().orElse(why));
        assumeTrue(why == null, () -> "no usable CUDA GPU: " + why);
    }

    /** rel-L2 bound for results computed in dtype t against a double reference on the same (rounded) inputs. */
    static double tol(DType t) {
        return switch (t) {
            case F32 -> 1e-5;
            case F16 -> 4e-3;
            default -> 1e-2;
        };
    }

    static Tensor dev(CudaBackend b, DType t, float[] data, long... dims) {
        return b.upload(Tensor.of(t, data, dims));
    }

    /** data rounded to t (what the device sees). */
    static float[] rounded(DType t, float[] data) {
        try (Tensor h = Tensor.of(t, data, data.length)) {
            return h.toFloatArray();
        }
    }

    static float[] host(CudaBackend b, Tensor d) {
        try (Tensor h = b.toHost(d)) {
            return h.toFloatArray();
        }
    }

    static void assertClose(float[] got, float[] ref, double tol, String what) {
        double e = HostRef.relL2(got, ref);
        assertTrue(e <= tol, what + ": rel-L2 " + e + " > " + tol);
    }
}
