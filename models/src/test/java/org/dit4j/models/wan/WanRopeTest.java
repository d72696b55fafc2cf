package org.dit4j.models.wan;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.dit4j.models.nn.Rope;
import org.junit.jupiter.api.Test;

/** The 3-D RoPE tables of the released head dim 128: 22 frame pairs, 21 height pairs, 21 width pairs. */
class WanRopeTest {

    @Test void tablesSplitTheHeadIntoFrameHeightWidth() {
        WanConfig cfg = WanConfig.t2v1_3B();
        long f = 3, h = 4, w = 5;
        Rope.Tables t = WanRope.hostTables(cfg, f, h, w);
        assertEquals(64, t.cos().dim(1));
        assertEquals(f * h * w, t.cos().dim(0));
        float[] cos = t.cos().toFloatArray(), sin = t.sin().toFloatArray();
        for (int fi = 0; fi < f; fi++)
            for (int hi = 0; hi < h; hi++)
                for (int wi = 0; wi < w; wi++) {
                    int row = (int) ((fi * h + hi) * w + wi);                 // (f, h, w) order, w fastest
                    for (int c = 0; c < 64; c++) {
                        double angle;
                        if (c < 22) angle = fi * Math.pow(10000, -2.0 * c / 44);
                        else if (c < 43) angle = hi * Math.pow(10000, -2.0 * (c - 22) / 42);
                        else angle = wi * Math.pow(10000, -2.0 * (c - 43) / 42);
                        assertEquals((float) Math.cos(angle), cos[row * 64 + c], 0f, "cos row " + row + " pair " + c);
                        assertEquals((float) Math.sin(angle), sin[row * 64 + c], 0f, "sin row " + row + " pair " + c);
                    }
                }
    }
}
