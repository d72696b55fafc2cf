package org.dit4j.server.preview;

import org.junit.jupiter.api.Test;

import javax.imageio.ImageIO;
import java.awt.image.BufferedImage;
import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/** latent2rgb previews: the projection, ComfyUI's byte conversion, PIL's contain size, the binary message. */
class LatentPreviewTest {

    @Test void projectionUsesFactorsBiasAndTheFirstFrameOfTheFirstVideo() {
        // [B=2, C=16, T=2, H=1, W=2]: only batch 0, frame 0 may matter
        long[] shape = {2, 16, 2, 1, 2};
        float[] x0 = new float[2 * 16 * 2 * 2];
        java.util.Arrays.fill(x0, 5f);                                         // everything else saturates if it leaks in
        for (int c = 0; c < 16; c++) {
            x0[(c * 2) * 2] = 0f;                                              // (b0, c, t0, 0, 0): zero → bias only
            x0[(c * 2) * 2 + 1] = c == 2 ? 1f : 0f;                            // (b0, c, t0, 0, 1): channel 2 = 1
        }
        BufferedImage img = LatentPreview.latentToImage(LatentFormat.WAN21, x0, shape);
        assertEquals(2, img.getWidth());
        assertEquals(1, img.getHeight());
        int[] bias = rgb(img.getRGB(0, 0)), ch2 = rgb(img.getRGB(1, 0));
        // bias (-0.1835, -0.0868, -0.3360): (v + 1)·127.5 = 104.10, 116.43, 84.66 → 104, 116, 85
        assertArrayEquals(new int[] {104, 116, 85}, bias);
        // + channel 2's factors (0.3568, 0.2548, 0.1747): 0.1733, 0.1680, -0.1613 → 149.60, 148.92, 106.93 → 150, 149, 107
        assertArrayEquals(new int[] {150, 149, 107}, ch2);
    }

    @Test void byteConversionClampsAndRoundsHalfToEven() {
        assertEquals(0, LatentPreview.toByte(-3f));
        assertEquals(255, LatentPreview.toByte(2f));
        assertEquals(128, LatentPreview.toByte(0.0039215684f));          // (1 + v)·127.5 = 128.0
        assertEquals(128, LatentPreview.toByte(0f));                     // 127.5 → 128 (even)
        assertEquals(0, LatentPreview.toByte(Float.NaN));
    }

    @Test void containSizeAsPil() {
        assertArrayEquals(new int[] {512, 341}, LatentPreview.containSize(6, 4, 512));
        assertArrayEquals(new int[] {341, 512}, LatentPreview.containSize(4, 6, 512));
        assertArrayEquals(new int[] {512, 512}, LatentPreview.containSize(128, 128, 512));
        assertArrayEquals(new int[] {512, 288}, LatentPreview.containSize(1920 / 8, 1080 / 8, 512));
    }

    @Test void messageIsEventTypeImageTypeAndJpegBytes() throws Exception {
        float[] x0 = new float[16 * 8 * 12];
        for (int i = 0; i < x0.length; i++) x0[i] = (float) Math.sin(i * 0.37);
        byte[] jpeg = LatentPreview.jpeg(LatentFormat.FLUX, x0, new long[] {1, 16, 8, 12}, 96);
        byte[] msg = LatentPreview.message(LatentPreview.JPEG, jpeg);
        ByteBuffer bb = ByteBuffer.wrap(msg);
        assertEquals(1, bb.getInt(0));
        assertEquals(1, bb.getInt(4));
        assertEquals(jpeg.length + 8, msg.length);
        BufferedImage img = ImageIO.read(new ByteArrayInputStream(msg, 8, msg.length - 8));
        assertEquals(96, img.getWidth());
        assertEquals(64, img.getHeight());
        assertThrows(IllegalArgumentException.class, () -> LatentPreview.jpeg(LatentFormat.FLUX, new float[4 * 4], new long[] {1, 4, 2, 2}, 512),
                "4-channel latents have no Flux factors");
    }

    @Test void methodNames() {
        assertEquals(LatentPreview.Method.NONE, LatentPreview.Method.parse("none"));
        assertEquals(LatentPreview.Method.LATENT2RGB, LatentPreview.Method.parse("auto"));
        assertEquals(LatentPreview.Method.LATENT2RGB, LatentPreview.Method.parse("Latent2RGB"));
        assertThrows(IllegalArgumentException.class, () -> LatentPreview.Method.parse("taesd"));
    }

    private static int[] rgb(int p) { return new int[] {(p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff}; }
}
