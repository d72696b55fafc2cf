package org.dit4j.core.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class DTypeTest {

    @Test void bf16RoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0)
        assertEquals(1.0f, DType.bf16ToFloat(DType.floatToBf16(1f + 0x1p-8f)));
        // 1 + 3*2^-8 is halfway between 1.0078125 (odd) and 1.015625 (even): rounds up
        assertEquals(1.015625f, DType.bf16ToFloat(DType.floatToBf16(1f + 3 * 0x1p-8f)));
        assertEquals((short) 0x7FC0, DType.floatToBf16(Float.NaN));
        assertEquals(Float.POSITIVE_INFINITY, DType.bf16ToFloat(DType.floatToBf16(Float.MAX_VALUE)));
    }

    @Test void f16RoundTripAndOverflow() {
        assertEquals(65504f, DType.f16ToFloat(DType.floatToF16(65504f)));
        assertEquals(Float.POSITIVE_INFINITY, DType.f16ToFloat(DType.floatToF16(65520f)));
        assertEquals(0x1p-24f, DType.f16ToFloat(DType.floatToF16(0x1p-24f)));
    }

    @Test void e4m3fnDecodesEveryCode() {
        assertEquals(448f, DType.e4m3ToFloat((byte) 0x7E));
        assertTrue(Float.isNaN(DType.e4m3ToFloat((byte) 0x7F)));
        assertTrue(Float.isNaN(DType.e4m3ToFloat((byte) 0xFF)));
        assertEquals(0x1p-9f, DType.e4m3ToFloat((byte) 0x01));       // smallest subnormal
        assertEquals(0x1p-6f, DType.e4m3ToFloat((byte) 0x08));       // smallest normal
        assertEquals(-1.5f, DType.e4m3ToFloat((byte) 0xBC));
        // every non-NaN code survives a round trip
        for (int c = 0; c < 256; c++) {
            float f = DType.e4m3ToFloat((byte) c);
            if (Float.isNaN(f)) continue;
            byte back = DType.floatToE4M3(f);
            if (f == 0f) assertEquals(0, back & 0x7F); else assertEquals((byte) c, back, "code " + c);
        }
    }

    @Test void e4m3fnOverflowFollowsPyTorch() {
        assertEquals(448f, DType.e4m3ToFloat(DType.floatToE4M3(460f)));
        assertEquals(448f, DType.e4m3ToFloat(DType.floatToE4M3(464f)));   // tie to even mantissa 110
        assertTrue(Float.isNaN(DType.e4m3ToFloat(DType.floatToE4M3(465f))));
        assertTrue(Float.isNaN(DType.e4m3ToFloat(DType.floatToE4M3(1e6f))));
        assertTrue(Float.isNaN(DType.e4m3ToFloat(DType.floatToE4M3(Float.POSITIVE_INFINITY))));
        assertEquals(-448f, DType.e4m3ToFloat(DType.F8_E4M3.fromFloatSaturating(-1e6f)));
        // subnormal rounding: 2^-10 is half of the smallest subnormal -> ties to even (0)
        assertEquals(0f, DType.e4m3ToFloat(DType.floatToE4M3(0x1p-10f)));
        assertEquals(0x1p-8f, DType.e4m3ToFloat(DType.floatToE4M3(3 * 0x1p-10f)));
    }

    @Test void e5m2MatchesHalfTopByte() {
        for (int c = 0; c < 256; c++) {
            float f = DType.e5m2ToFloat((byte) c);
            if (Float.isNaN(f)) { assertTrue(Float.isNaN(DType.e5m2ToFloat(DType.floatToE5M2(f)))); continue; }
            byte back = DType.floatToE5M2(f);
            if (f == 0f) assertEquals(0, back & 0x7F); else assertEquals((byte) c, back, "code " + c);
        }
        assertEquals(57344f, DType.e5m2ToFloat(DType.floatToE5M2(60000f)));
        assertEquals(Float.POSITIVE_INFINITY, DType.e5m2ToFloat(DType.floatToE5M2(61440f))); // tie -> even (inf)
        assertEquals(57344f, DType.e5m2ToFloat(DType.F8_E5M2.fromFloatSaturating(1e9f)));
    }

    @Test void scopeReleasesIntermediatesAndKeepsResults() {
        Tensor kept;
        Tensor dropped;
        try (Scope outer = Scope.open()) {
            try (Scope s = Scope.open()) {
                dropped = Tensor.zeros(DType.F32, 4);
                kept = s.keep(Tensor.of(new float[]{1, 2}, 2));
            }
            assertTrue(dropped.isReleased());
            assertFalse(kept.isReleased());
            assertEquals(2f, kept.getFloat(1));
            assertEquals(1, outer.size());
        }
        assertTrue(kept.isReleased());
        assertThrows(IllegalStateException.class, () -> dropped.toFloatArray());
    }
}
