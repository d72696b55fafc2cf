package org.dit4j.engine.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.dit4j.engine.flux.Kontext;
import org.junit.jupiter.api.Test;

/** Pillow-style Lanczos resizing on cases whose fixed-point results can be worked out by hand, and Kontext sizing. */
class ImageResizeTest {

    static RgbImage gray(int w, int h, int... values) {
        byte[] b = new byte[3 * w * h];
        for (int i = 0; i < w * h; i++) for (int c = 0; c < 3; c++) b[3 * i + c] = (byte) values[i];
        return new RgbImage(w, h, b);
    }

    @Test void halvingTwoPixelsAveragesThemRoundingHalfUp() {
        // out = 1, scale 2: center 1.0, support 6 → taps x = 0, 1 with equal Lanczos weights 2^21 each (of 2^22);
        // (2^21 + (a + b)·2^21) >> 22 = ⌊(a + b + 1)/2⌋
        assertEquals(128, ImageResize.lanczos(gray(2, 1, 0, 255), 1, 1).get(0, 0, 0));
        assertEquals(11, ImageResize.lanczos(gray(2, 1, 10, 11), 1, 1).get(0, 0, 0));
        assertEquals(10, ImageResize.lanczos(gray(2, 1, 10, 10), 1, 1).get(0, 0, 2));
        // vertical pass the same
        assertEquals(128, ImageResize.lanczos(gray(1, 2, 0, 255), 1, 1).get(0, 0, 1));
    }

    @Test void constantImagesStayConstantAndSameSizeIsACopy() {
        int[] v = new int[35];
        java.util.Arrays.fill(v, 77);
        RgbImage c = gray(7, 5, v);
        for (int[] wh : new int[][] {{3, 2}, {20, 11}, {7, 9}, {1, 1}}) {
            RgbImage r = ImageResize.lanczos(c, wh[0], wh[1]);
            assertEquals(wh[0], r.width());
            for (byte b : r.rgb()) assertEquals(77, b & 0xFF, "a constant stays constant (weights sum to one)");
        }
        RgbImage same = ImageResize.lanczos(c, 7, 5);
        assertNotSame(c.rgb(), same.rgb());
        assertArrayEquals(c.rgb(), same.rgb());
    }

    @Test void upscalingARampStaysMonotoneInsideAndClampsOvershoot() {
        int[] v = new int[16];
        for (int i = 0; i < 16; i++) v[i] = i < 8 ? 0 : 255;   // a step: Lanczos rings, clamped to 0..255
        RgbImage up = ImageResize.lanczos(gray(16, 1, v), 64, 1);
        assertEquals(0, up.get(0, 0, 0));
        assertEquals(255, up.get(63, 0, 0));
        int[] ramp = new int[16];
        for (int i = 0; i < 16; i++) ramp[i] = 10 + 15 * i;
        RgbImage r = ImageResize.lanczos(gray(16, 1, ramp), 48, 1);
        for (int x = 6; x < 42; x++) assertTrue(r.get(x + 1, 0, 0) >= r.get(x, 0, 0), "monotone ramp at " + x);
    }

    @Test void kontextPicksTheClosestPreferredResolution() {
        assertArrayEquals(new int[] {1024, 1024}, Kontext.preferredSize(512, 512));
        assertArrayEquals(new int[] {1328, 800}, Kontext.preferredSize(100, 60));          // 1.667 vs 1.66
        assertArrayEquals(new int[] {1392, 752}, Kontext.preferredSize(1920, 1080));       // 1.778: 1.851 beats 1.66
        assertArrayEquals(new int[] {752, 1392}, Kontext.preferredSize(1080, 1920));
        assertArrayEquals(new int[] {1568, 672}, Kontext.preferredSize(4000, 100));         // extreme: the widest entry
        assertArrayEquals(new int[] {672, 1568}, Kontext.preferredSize(10, 4000));
        RgbImage s = Kontext.scale(gray(4, 4, new int[16]));
        assertEquals(1024, s.width());
        assertEquals(1024, s.height());
        for (int[] r : Kontext.PREFERRED_RESOLUTIONS) assertTrue(r[0] % 16 == 0 && r[1] % 16 == 0);
    }
}
