package org.dit4j.models.vae.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVideoFrames.Rounding;
import org.junit.jupiter.api.Test;

/** 8-bit frames ↔ video tensors: layout, the two roundings, edge values. (Against diffusers: WanVaeReferenceTest.) */
class WanVideoFramesTest {

    @Test void layoutIsChannelsThenFramesThenRows() {
        // 2 frames of 2×1 pixels; byte value = 10·frame + 3·pixel + channel
        byte[] f0 = {0, 1, 2, 3, 4, 5}, f1 = {10, 11, 12, 13, 14, 15};
        Tensor v = WanVideoFrames.fromRgb8(2, 1, List.of(f0, f1));
        assertEquals(List.of(1L, 3L, 2L, 1L, 2L), java.util.Arrays.stream(v.shape().dims()).boxed().toList());
        // [n, c, t, y, x] flat = ((c·2 + t)·1 + y)·2 + x
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < 2; t++)
                for (int x = 0; x < 2; x++)
                    assertEquals(WanVideoFrames.toUnit(10 * t + 3 * x + c), v.getFloat((c * 2L + t) * 2 + x), 0f);
        assertArrayEquals(f0, WanVideoFrames.toRgb8(v, 0, 0, Rounding.NEAREST_EVEN));
        assertArrayEquals(f1, WanVideoFrames.toRgb8(v, 0, 1, Rounding.NEAREST_EVEN));
    }

    /**
     * Every byte survives the round trip with rounding; truncation (diffusers' export_to_video) loses one step for the
     * bytes whose float round trip lands just below p: 63 of the 256, as numpy computes it in float32.
     */
    @Test void everyByteRoundTrips() {
        int lost = 0;
        for (int p = 0; p < 256; p++) {
            float x = WanVideoFrames.toUnit(p);
            assertEquals(2f * ((float) p / 255f) - 1f, x, 0f);
            assertEquals(p, WanVideoFrames.toByte(x, Rounding.NEAREST_EVEN), "byte " + p);
            int t = WanVideoFrames.toByte(x, Rounding.TRUNCATE);
            assertTrue(t == p || t == p - 1, "byte " + p + " truncates to " + t);
            if (t != p) lost++;
        }
        assertEquals(63, lost);
    }

    @Test void roundingAndClamping() {
        assertEquals(128, WanVideoFrames.toByte(0f, Rounding.NEAREST_EVEN));          // 127.5 → even
        assertEquals(127, WanVideoFrames.toByte(0f, Rounding.TRUNCATE));
        for (Rounding r : Rounding.values()) {
            assertEquals(0, WanVideoFrames.toByte(-1f, r));
            assertEquals(0, WanVideoFrames.toByte(-3f, r));
            assertEquals(255, WanVideoFrames.toByte(1f, r));
            assertEquals(255, WanVideoFrames.toByte(7f, r));
            assertEquals(0, WanVideoFrames.toByte(Float.NaN, r));
        }
    }

    @Test void badShapesAreNamed() {
        assertThrows(IllegalArgumentException.class, () -> WanVideoFrames.fromRgb8(2, 2, List.of(new byte[5])));
        Tensor img = Tensor.zeros(DType.F32, 1, 3, 4, 4);
        assertThrows(IllegalArgumentException.class, () -> WanVideoFrames.toRgb8(img, 0, 0, Rounding.NEAREST_EVEN));
        Tensor v = Tensor.zeros(DType.F32, 1, 3, 2, 4, 4);
        assertThrows(IndexOutOfBoundsException.class, () -> WanVideoFrames.toRgb8(v, 0, 2, Rounding.TRUNCATE));
    }
}
