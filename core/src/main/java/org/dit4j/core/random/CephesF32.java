package org.dit4j.core.random;

/**
 * The float32 log and sincos that PyTorch's AVX2 normal kernel uses (Cephes polynomials as in Pommier's
 * sse_mathfun / Garberoglio's avx_mathfun), evaluated operation by operation in float so the results are bit-identical.
 * PyTorch compiles them with GCC, {@code -O2 -mavx2 -mfma} and GCC's default {@code -ffp-contract=fast}: a multiply
 * whose only use is an add or subtract becomes one fused multiply-add. Each {@link Math#fma} below stands for such a
 * contraction and each plain {@code a * b + c} for a pair GCC leaves separate. This pattern reproduces torch 2.11's
 * output bit for bit (TorchGeneratorTest); evaluating without any contraction changes about 1% of the normals by 1–3 ulps.
 *
 * <p>Valid for the arguments the normal kernel passes: log on [2^-24, 1], sincos on [0, 2π).
 */
final class CephesF32 {
    private CephesF32() {}

    /** {@code 2.0f * c10::pi<double>} rounded to float, as {@code _mm256_set1_ps} does. */
    static final float TWO_PI = (float) (2.0 * Math.PI);

    // constants are C double literals converted to float, exactly as the C++ initialisers do
    private static final float SQRTHF = (float) 0.707106781186547524;
    private static final float LOG_P0 = (float) 7.0376836292E-2;
    private static final float LOG_P1 = (float) -1.1514610310E-1;
    private static final float LOG_P2 = (float) 1.1676998740E-1;
    private static final float LOG_P3 = (float) -1.2420140846E-1;
    private static final float LOG_P4 = (float) 1.4249322787E-1;
    private static final float LOG_P5 = (float) -1.6668057665E-1;
    private static final float LOG_P6 = (float) 2.0000714765E-1;
    private static final float LOG_P7 = (float) -2.4999993993E-1;
    private static final float LOG_P8 = (float) 3.3333331174E-1;
    private static final float LOG_Q1 = (float) -2.12194440e-4;
    private static final float LOG_Q2 = (float) 0.693359375;

    private static final float MINUS_DP1 = (float) -0.78515625;
    private static final float MINUS_DP2 = (float) -2.4187564849853515625e-4;
    private static final float MINUS_DP3 = (float) -3.77489497744594108e-8;
    private static final float SIN_P0 = (float) -1.9515295891E-4;
    private static final float SIN_P1 = (float) 8.3321608736E-3;
    private static final float SIN_P2 = (float) -1.6666654611E-1;
    private static final float COS_P0 = (float) 2.443315711809948E-005;
    private static final float COS_P1 = (float) -1.388731625493765E-003;
    private static final float COS_P2 = (float) 4.166664568298827E-002;
    private static final float FOUR_OVER_PI = (float) 1.27323954473516;

    /** Natural log of a positive normal float (log256_ps lane). */
    static float log(float v) {
        int bits = Float.floatToRawIntBits(v);
        float e = (float) ((bits >>> 23) - 0x7f) + 1f;
        float x = Float.intBitsToFloat((bits & ~0x7f800000) | 0x3f000000); // mantissa in [0.5, 1)
        // if x < sqrt(1/2): e -= 1, x = 2x - 1; else x = x - 1 (both exact)
        if (x < SQRTHF) {
            e = e - 1f;
            x = (x - 1f) + x;
        } else {
            x = x - 1f;
        }
        float z = x * x;
        float y = Math.fma(LOG_P0, x, LOG_P1);
        y = Math.fma(y, x, LOG_P2);
        y = Math.fma(y, x, LOG_P3);
        y = Math.fma(y, x, LOG_P4);
        y = Math.fma(y, x, LOG_P5);
        y = Math.fma(y, x, LOG_P6);
        y = Math.fma(y, x, LOG_P7);
        y = Math.fma(y, x, LOG_P8);
        y = y * x;
        y = Math.fma(y, z, e * LOG_Q1);
        y = Math.fma(-z, 0.5f, y);
        x = x + y;
        return Math.fma(e, LOG_Q2, x);
    }

    /**
     * sin and cos of {@code x >= 0} (sincos256_ps lane), packed as {@code (bits(sin) << 32) | bits(cos)}.
     */
    static long sincos(float x) {
        float y = x * FOUR_OVER_PI;
        int j = (int) y;             // truncation, as _mm256_cvttps_epi32
        j = (j + 1) & ~1;
        y = (float) j;
        boolean sinNegative = (j & 4) != 0;
        boolean cosNegative = ((j - 2) & 4) == 0;
        boolean sinPoly = (j & 2) == 0;   // the sine polynomial gives sin (else it gives cos)

        // extended precision modular arithmetic: x = ((x - y*DP1) - y*DP2) - y*DP3
        x = Math.fma(y, MINUS_DP1, x);
        x = Math.fma(y, MINUS_DP2, x);
        x = Math.fma(y, MINUS_DP3, x);

        float z = x * x;
        float c = Math.fma(COS_P0, z, COS_P1);
        c = Math.fma(c, z, COS_P2);
        c = c * z;
        c = Math.fma(c, z, -(z * 0.5f));
        c = c + 1f;

        float s = Math.fma(SIN_P0, z, SIN_P1);
        s = Math.fma(s, z, SIN_P2);
        s = s * z;
        s = Math.fma(s, x, x);

        // the kernel selects with bit masks and adds +0 to the selected value (turns -0 into +0)
        float sin = (sinPoly ? s : c) + 0f;
        float cos = (sinPoly ? c : s) + 0f;
        if (sinNegative) sin = -sin;
        if (cosNegative) cos = -cos;
        return ((long) Float.floatToRawIntBits(sin) << 32) | (Float.floatToRawIntBits(cos) & 0xFFFFFFFFL);
    }
}
