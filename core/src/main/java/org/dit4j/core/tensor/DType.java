package org.dit4j.core.tensor;

/**
 * Element types. Names follow the safetensors header spelling ({@link #safetensorsName()}).
 * Conversions from float follow PyTorch exactly: round-to-nearest-even everywhere; NaN stays NaN;
 * F8_E4M3 ("e4m3fn": no infinities, max 448) turns values that round past 448 (|x| > 464) and ±inf into NaN
 * (what {@code tensor.to(float8_e4m3fn)} does), F8_E5M2 overflows to ±inf. {@link #fromFloatSaturating} clamps to ±max instead (what quantizers want).
 */
public enum DType {
    F32(4, "F32"),
    BF16(2, "BF16"),
    F16(2, "F16"),
    F8_E4M3(1, "F8_E4M3"),
    F8_E5M2(1, "F8_E5M2"),
    I32(4, "I32"),
    I64(8, "I64"),
    BOOL(1, "BOOL");

    private final int byteSize;
    private final String safetensorsName;

    DType(int byteSize, String safetensorsName) {
        this.byteSize = byteSize;
        this.safetensorsName = safetensorsName;
    }

    public int byteSize() { return byteSize; }

    public String safetensorsName() { return safetensorsName; }

    public boolean isFloating() { return this != I32 && this != I64 && this != BOOL; }

    /** The dtype named {@code name} in a safetensors header, or null when dit4j does not know it. */
    public static DType fromSafetensorsName(String name) {
        for (DType d : values()) if (d.safetensorsName.equals(name)) return d;
        return null;
    }

    /** Largest finite value of a floating type. */
    public double maxFinite() {
        return switch (this) {
            case F32 -> Float.MAX_VALUE;
            case BF16 -> Float.intBitsToFloat(0x7F7F0000);
            case F16 -> 65504.0;
            case F8_E4M3 -> 448.0;
            case F8_E5M2 -> 57344.0;
            default -> throw new IllegalArgumentException(this + " is not a floating type");
        };
    }

    // ---------------------------------------------------------------- bf16

    public static float bf16ToFloat(short h) { return Float.intBitsToFloat((h & 0xFFFF) << 16); }

    /** float -> bf16 bits, round-to-nearest-even, NaN -> 0x7FC0 (as c10::BFloat16). */
    public static short floatToBf16(float f) {
        if (Float.isNaN(f)) return (short) 0x7FC0;
        int bits = Float.floatToRawIntBits(f);
        int rounding = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + rounding) >>> 16);
    }

    // ---------------------------------------------------------------- f16

    public static float f16ToFloat(short h) { return Float.float16ToFloat(h); }

    /** float -> IEEE half bits, round-to-nearest-even, overflow to ±inf. */
    public static short floatToF16(float f) { return Float.floatToFloat16(f); }

    // ---------------------------------------------------------------- fp8 e4m3fn

    /** e4m3fn bits -> float: bias 7, subnormals, S.1111.111 is NaN, no infinities. */
    public static float e4m3ToFloat(byte b) {
        int v = b & 0xFF;
        int sign = v >>> 7, exp = (v >>> 3) & 0xF, man = v & 7;
        float r;
        if (exp == 0xF && man == 7) return Float.NaN;
        if (exp == 0) r = man * 0x1p-9f;                       // subnormal: man/8 * 2^-6
        else r = Float.intBitsToFloat(((exp - 7 + 127) << 23) | (man << 20));
        return sign == 1 ? -r : r;
    }

    /** float -> e4m3fn as PyTorch casts: RNE; values rounding past 448 (|x| > 464), inf and NaN give NaN. */
    public static byte floatToE4M3(float f) {
        return floatToFp8(f, 4, 3, 7, false, false);
    }

    // ---------------------------------------------------------------- fp8 e5m2

    /** e5m2 bits -> float: the top byte of an IEEE half. */
    public static float e5m2ToFloat(byte b) { return Float.float16ToFloat((short) ((b & 0xFF) << 8)); }

    /** float -> e5m2 as PyTorch casts: RNE, overflow to ±inf, NaN stays NaN. */
    public static byte floatToE5M2(float f) {
        return floatToFp8(f, 5, 2, 15, true, false);
    }

    /** Cast with clamping to ±maxFinite (NaN stays NaN); used when quantizing weights or activations. */
    public byte fromFloatSaturating(float f) {
        return switch (this) {
            case F8_E4M3 -> floatToFp8(f, 4, 3, 7, false, true);
            case F8_E5M2 -> floatToFp8(f, 5, 2, 15, true, true);
            default -> throw new IllegalArgumentException("saturating byte cast is for fp8 types, not " + this);
        };
    }

    /**
     * Generic RNE float -> small float. Exact for e4m3fn/e5m2: the value is rounded on the target's grid
     * (subnormal spacing below the minimum normal), then overflow is resolved per format.
     */
    private static byte floatToFp8(float f, int expBits, int manBits, int bias, boolean hasInf, boolean saturate) {
        int bits = Float.floatToRawIntBits(f);
        int sign = (bits >>> 31) << 7;
        int nanCode = 0x7F; // e5m2: S.11111.11, e4m3fn: S.1111.111
        if (Float.isNaN(f)) return (byte) (sign | nanCode);
        float a = Math.abs(f);
        int maxCode = hasInf ? ((((1 << expBits) - 2) << manBits) | ((1 << manBits) - 1))   // 0x7B for e5m2
                             : ((((1 << expBits) - 1) << manBits) | ((1 << manBits) - 2)); // 0x7E for e4m3fn
        if (Float.isInfinite(a)) {
            if (saturate) return (byte) (sign | maxCode);
            return (byte) (sign | (hasInf ? ((1 << expBits) - 1) << manBits : nanCode));
        }
        int minNormalExp = 1 - bias;                       // unbiased exponent of the smallest normal
        int e = Math.getExponent(a);                       // floor(log2 a) for normals, -127 for 0/subnormal f32
        int q = Math.max(e, minNormalExp) - manBits;       // grid spacing 2^q around a
        // scale to integer grid units exactly (power-of-two scaling is exact in float unless it underflows;
        // a <= 2^q * 2^(manBits+1) so the result is small; use double to stay exact for tiny a)
        double units = a * Math.pow(2, -q);
        double r = Math.rint(units);                       // RNE
        long m = (long) r;
        // rebuild code: m is in [0, 2^(manBits+1)]
        int expField;
        int manField;
        if (e < minNormalExp) {                            // subnormal range (m may round up into the first normal)
            if (m >= (1L << manBits)) { expField = 1; manField = (int) (m - (1L << manBits)); }
            else { expField = 0; manField = (int) m; }
        } else {
            int ee = e;
            if (m >= (2L << manBits)) { m >>= 1; ee++; }    // mantissa overflowed into the next binade
            expField = ee + bias;
            manField = (int) (m - (1L << manBits));
        }
        int code = (expField << manBits) | manField;
        boolean overflow = hasInf ? expField >= (1 << expBits) - 1 : code > maxCode;
        if (overflow) {
            if (saturate) return (byte) (sign | maxCode);
            return (byte) (sign | (hasInf ? ((1 << expBits) - 1) << manBits : nanCode));
        }
        return (byte) (sign | code);
    }
}
