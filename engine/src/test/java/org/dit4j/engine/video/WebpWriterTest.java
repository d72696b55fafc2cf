package org.dit4j.engine.video;

import org.dit4j.engine.image.RgbImage;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The animated lossless WebP writer: the RIFF structure is checked byte by byte against RFC 9649's layout, and — where
 * a Python with Pillow is available (DIT4J_PYTHON, /tmp/tvenv/bin/python or python3) — libwebp decodes every frame
 * and it must equal the input exactly (scripts/check/webp_decode_check.py). The frames exercise the code shapes:
 * noise (full Huffman codes up to the 15-bit limit), gradients, a flat frame (one symbol per channel: zero-bit codes),
 * two colours (two-symbol simple codes), odd sizes.
 */
class WebpWriterTest {

    @TempDir Path tmp;

    static List<RgbImage> frames(int w, int h) {
        Random rnd = new Random(7);
        List<RgbImage> out = new ArrayList<>();
        byte[] noise = new byte[w * h * 3];
        rnd.nextBytes(noise);
        out.add(new RgbImage(w, h, noise));
        byte[] grad = new byte[w * h * 3];
        for (int y = 0; y < h; y++) for (int x = 0; x < w; x++) {
            int i = 3 * (y * w + x);
            grad[i] = (byte) (x * 255 / Math.max(1, w - 1));
            grad[i + 1] = (byte) (y * 255 / Math.max(1, h - 1));
            grad[i + 2] = (byte) ((x * y) & 0xFF);
        }
        out.add(new RgbImage(w, h, grad));
        byte[] flat = new byte[w * h * 3];
        for (int i = 0; i < flat.length; i += 3) { flat[i] = 10; flat[i + 1] = (byte) 200; flat[i + 2] = 3; }
        out.add(new RgbImage(w, h, flat));
        byte[] two = new byte[w * h * 3];
        for (int i = 0; i < w * h; i++) { byte v = (byte) (i % 3 == 0 ? 255 : 0); two[3 * i] = v; two[3 * i + 1] = v; two[3 * i + 2] = v; }
        out.add(new RgbImage(w, h, two));
        // skewed histogram: one very frequent value and a long tail forces the 15-bit length limit
        byte[] skew = new byte[w * h * 3];
        for (int i = 0; i < skew.length; i++) skew[i] = (byte) (rnd.nextInt(1000) < 990 ? 128 : rnd.nextInt(256));
        out.add(new RgbImage(w, h, skew));
        return out;
    }

    @Test void riffLayoutFollowsTheSpec() {
        List<RgbImage> f = frames(37, 23);
        byte[] b = WebpWriter.encodeAnimated(f, 62, 0, new byte[] {1, 2, 3});
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("RIFF", ascii(b, 0));
        assertEquals(b.length - 8, bb.getInt(4), "RIFF size");
        assertEquals("WEBP", ascii(b, 8));
        assertEquals("VP8X", ascii(b, 12));
        assertEquals(10, bb.getInt(16));
        assertEquals(0x02 | 0x08, b[20], "animation and EXIF flags");
        assertEquals(36, u24(b, 24));
        assertEquals(22, u24(b, 27));
        assertEquals("ANIM", ascii(b, 30));
        assertEquals(6, bb.getInt(34));
        assertEquals(0, bb.getShort(42), "loop forever");
        int pos = 44, frames = 0;
        while (pos < b.length) {
            String id = ascii(b, pos);
            int size = bb.getInt(pos + 4);
            if (id.equals("ANMF")) {
                assertEquals(0, u24(b, pos + 8));
                assertEquals(0, u24(b, pos + 11));
                assertEquals(36, u24(b, pos + 14));
                assertEquals(22, u24(b, pos + 17));
                assertEquals(62, u24(b, pos + 20), "duration");
                assertEquals(0x02, b[pos + 23], "no blending, no disposal");
                assertEquals("VP8L", ascii(b, pos + 24));
                int vsize = bb.getInt(pos + 28);
                assertEquals(size, 16 + 8 + vsize + (vsize & 1), "ANMF holds exactly the VP8L chunk");
                assertEquals(0x2F, b[pos + 32] & 0xFF, "VP8L signature");
                int header = bb.getInt(pos + 33);
                assertEquals(36, header & 0x3FFF);
                assertEquals(22, (header >>> 14) & 0x3FFF);
                assertEquals(0, (header >>> 28) & 1, "alpha_is_used");
                assertEquals(0, header >>> 29, "version");
                frames++;
            } else {
                assertEquals("EXIF", id);
                assertEquals(3, size);
            }
            pos += 8 + size + (size & 1);
        }
        assertEquals(b.length, pos, "chunks fill the file");
        assertEquals(f.size(), frames);
    }

    @Test void badInputsAreRefused() {
        List<RgbImage> f = frames(4, 4);
        assertThrows(IllegalArgumentException.class, () -> WebpWriter.encodeAnimated(List.of(), 10, 0, null));
        assertThrows(IllegalArgumentException.class, () -> WebpWriter.encodeAnimated(List.of(f.get(0), new RgbImage(5, 4, new byte[60])), 10, 0, null));
        assertThrows(IllegalArgumentException.class, () -> WebpWriter.encodeAnimated(f, -1, 0, null));
    }

    @Test void codeLengthsRespectTheLimitAndFormACompleteCode() {
        long[] hist = new long[280];
        long v = 1;
        for (int i = 0; i < 40; i++) { hist[i] = v; v = Math.min(v * 2, 1L << 40); }   // Fibonacci-like skew: unlimited depth > 15
        int[] len = WebpWriter.lengths(hist, 15);
        double kraft = 0;
        for (int i = 0; i < len.length; i++) {
            if (hist[i] > 0) assertTrue(len[i] >= 1 && len[i] <= 15, "symbol " + i + " length " + len[i]);
            if (len[i] > 0) kraft += Math.pow(2, -len[i]);
        }
        assertEquals(1.0, kraft, 1e-12, "Kraft sum of a complete prefix code");
    }

    @Test void pillowDecodesEveryFrameExactly() throws Exception {
        String python = python();
        Assumptions.assumeTrue(python != null, "no Python with Pillow here (set DIT4J_PYTHON); the structural tests still ran");
        for (int[] wh : new int[][] {{37, 23}, {1, 1}, {64, 48}}) {
            List<RgbImage> f = frames(wh[0], wh[1]);
            Path webp = tmp.resolve("a" + wh[0] + ".webp"), raw = tmp.resolve("a" + wh[0] + ".rgb");
            WebpWriter.write(webp, f, 16.0);
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            for (RgbImage i : f) all.writeBytes(i.rgb());
            Files.write(raw, all.toByteArray());
            Process p = new ProcessBuilder(python, script().toString(), webp.toString(), raw.toString(), "" + wh[0], "" + wh[1], "62")
                    .redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor(), "Pillow check of " + wh[0] + "×" + wh[1] + ": " + out);
            assertTrue(out.contains("\"ok\": true"), out);
        }
    }

    static Path script() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve("scripts/check/webp_decode_check.py"))) p = p.getParent();
        assertTrue(p != null, "scripts/check/webp_decode_check.py not found above " + Path.of("").toAbsolutePath());
        return p.resolve("scripts/check/webp_decode_check.py");
    }

    static String python() {
        List<String> candidates = new ArrayList<>();
        if (System.getenv("DIT4J_PYTHON") != null) candidates.add(System.getenv("DIT4J_PYTHON"));
        candidates.add("/tmp/tvenv/bin/python");
        candidates.add("python3");
        for (String c : candidates) {
            try {
                Process p = new ProcessBuilder(c, "-c", "import PIL.Image, PIL.features; assert PIL.features.check('webp_anim') or PIL.features.check('webp')")
                        .redirectErrorStream(true).start();
                p.getInputStream().readAllBytes();
                if (p.waitFor() == 0) return c;
            } catch (Exception e) {
                // not this one
            }
        }
        return null;
    }

    static String ascii(byte[] b, int off) { return new String(b, off, 4, StandardCharsets.US_ASCII); }

    static int u24(byte[] b, int off) { return (b[off] & 0xFF) | (b[off + 1] & 0xFF) << 8 | (b[off + 2] & 0xFF) << 16; }
}
