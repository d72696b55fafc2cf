package org.dit4j.core.testing;

import org.dit4j.core.ops.DoubleTensor;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** Numeric comparisons of host tensors with reference values, with the error stated in the failure message. */
public final class TensorAsserts {
    private TensorAsserts() {}

    /** ‖actual − expected‖₂ / ‖expected‖₂ (absolute L2 when the expected norm is 0). */
    public static double relL2(float[] actual, double[] expected) {
        if (actual.length != expected.length)
            throw new IllegalArgumentException(actual.length + " values vs " + expected.length + " expected");
        double num = 0, den = 0;
        for (int i = 0; i < actual.length; i++) {
            double d = actual[i] - expected[i];
            num += d * d;
            den += expected[i] * expected[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    public static double maxAbsDiff(float[] actual, double[] expected) {
        double m = 0;
        for (int i = 0; i < actual.length; i++) m = Math.max(m, Math.abs(actual[i] - expected[i]));
        return m;
    }

    public static double maxAbs(double[] v) {
        double m = 0;
        for (double x : v) m = Math.max(m, Math.abs(x));
        return m;
    }

    /**
     * Asserts that a host tensor matches reference values: same shape, every value finite where the reference is,
     * relative L2 error ≤ {@code relL2Tol} and max abs error ≤ {@code maxAbsFactor}·relL2Tol·max|expected|.
     */
    public static void assertClose(String what, Tensor actual, DoubleTensor expected, double relL2Tol, double maxAbsFactor) {
        assertEquals(expected.shape(), actual.shape(), what + ": shape");
        float[] a = actual.toFloatArray();
        double[] e = expected.data();
        for (int i = 0; i < a.length; i++) {
            boolean finiteE = Double.isFinite(e[i]), finiteA = Float.isFinite(a[i]);
            if (finiteE != finiteA || (!finiteE && !(Double.isNaN(e[i]) && Float.isNaN(a[i])) && a[i] != e[i]))
                fail(what + ": element " + i + " " + java.util.Arrays.toString(expected.unravel(i)) + " is " + a[i]
                        + ", expected " + e[i]);
        }
        float[] af = a.clone();
        double[] ef = e.clone();
        for (int i = 0; i < af.length; i++) if (!Double.isFinite(ef[i])) { af[i] = 0; ef[i] = 0; }
        double rel = relL2(af, ef), maxErr = maxAbsDiff(af, ef), bound = maxAbsFactor * relL2Tol * Math.max(maxAbs(ef), 1e-30);
        if (rel > relL2Tol || maxErr > bound)
            fail(String.format("%s: rel-L2 error %.3g (tolerance %.3g), max abs error %.3g (bound %.3g) over %d values",
                    what, rel, relL2Tol, maxErr, bound, a.length));
    }

    /** {@link #assertClose(String, Tensor, DoubleTensor, double, double)} with a max-abs factor of 8. */
    public static void assertClose(String what, Tensor actual, DoubleTensor expected, double relL2Tol) {
        assertClose(what, actual, expected, relL2Tol, 8);
    }

    /**
     * Asserts bit-exact equality after rounding the expected values to the actual dtype (layout ops and casts):
     * NaN matches any NaN; +0 and −0 differ.
     */
    public static void assertExact(String what, Tensor actual, DoubleTensor expected) {
        assertEquals(expected.shape(), actual.shape(), what + ": shape");
        DType t = actual.dtype();
        for (int i = 0; i < expected.numel(); i++) {
            float want = t.isFloating() ? roundTo((float) expected.data()[i], t) : (float) expected.data()[i];
            float got = actual.getFloat(i);
            if (!sameFloat(got, want))
                fail(what + ": element " + i + " " + java.util.Arrays.toString(expected.unravel(i)) + " is " + got
                        + ", expected " + want + " (" + t + ")");
        }
    }

    /** Same float value, NaN == NaN, +0 ≠ −0. */
    public static boolean sameFloat(float a, float b) {
        if (Float.isNaN(a) || Float.isNaN(b)) return Float.isNaN(a) && Float.isNaN(b);
        return Float.floatToIntBits(a) == Float.floatToIntBits(b);
    }

    private static float roundTo(float v, DType t) {
        return org.dit4j.core.ops.ReferenceOps.castValue(v, t);
    }
}
