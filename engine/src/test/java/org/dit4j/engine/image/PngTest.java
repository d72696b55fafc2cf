package org.dit4j.engine.image;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** PNG round trips, and decoding of PNG variants assembled here byte by byte from the specification. */
class PngTest {
    @TempDir Path tmp;

    static RgbImage noise(int w, int h, long seed) {
        byte[] b = new byte[3 * w * h];
        Random r = new Random(seed);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++)   // smooth gradient plus noise: every filter type wins somewhere
                    b[3 * (y * w + x) + c] = (byte) ((x * 3 + y * 2 + c * 40) + (y % 7 == 0 ? r.nextInt(256) : r.nextInt(4)));
        return new RgbImage(w, h, b);
    }

    @Test void roundTripWithTextChunks() {
        RgbImage img = noise(37, 23, 1);
        Map<String, String> text = new LinkedHashMap<>();
        text.put("parameters", "a red fox\nSteps: 4, Seed: 42");
        text.put("prompt", "{\"1\": {\"inputs\": {}}}");
        text.put("unicode", "東京タワーの夜景 — ünïcödé");
        Path f = tmp.resolve("a.png");
        Png.write(f, img, text);
        Png.Decoded d = Png.decode(readAll(f), f.toString());
        assertEquals(37, d.image().width());
        assertEquals(23, d.image().height());
        assertArrayEquals(img.rgb(), d.image().rgb());
        assertEquals(text, d.text());
        byte[] bytes = readAll(f);
        String raw = new String(bytes, StandardCharsets.ISO_8859_1);
        assertTrue(raw.contains("tEXtparameters\0a red fox"), "Latin-1 text goes into tEXt");
        assertTrue(raw.contains("iTXtunicode\0\0\0\0\0"), "other text into uncompressed UTF-8 iTXt");
        assertTrue(raw.indexOf("tEXt") < raw.indexOf("IDAT"), "text chunks come before the image data");
        assertArrayEquals(img.rgb(), Images.read(f).rgb());
    }

    @Test void decodesOtherColourTypesAndDepths() {
        int w = 13, h = 7;
        Random r = new Random(5);
        // grayscale 8-bit
        byte[] g8 = new byte[w * h];
        r.nextBytes(g8);
        RgbImage gray = decode(w, h, 8, 0, g8, 1, null, false);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) assertEquals(g8[i], gray.rgb()[3 * i + c]);
        // grayscale 16-bit: the high byte
        byte[] g16 = new byte[2 * w * h];
        r.nextBytes(g16);
        RgbImage gray16 = decode(w, h, 16, 0, g16, 2, null, false);
        for (int i = 0; i < w * h; i++) assertEquals(g16[2 * i], gray16.rgb()[3 * i]);
        // RGBA 8-bit: alpha dropped
        byte[] rgba = new byte[4 * w * h];
        r.nextBytes(rgba);
        RgbImage noAlpha = decode(w, h, 8, 6, rgba, 4, null, false);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) assertEquals(rgba[4 * i + c], noAlpha.rgb()[3 * i + c]);
        // palette, 2 bits per pixel (rows padded to whole bytes)
        byte[] plte = {10, 20, 30, 40, 50, 60, 70, 80, 90, (byte) 200, (byte) 210, (byte) 220};
        int[] idx = new int[w * h];
        int stride = (w * 2 + 7) / 8;
        byte[] packed = new byte[stride * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                int v = r.nextInt(4);
                idx[y * w + x] = v;
                packed[y * stride + x / 4] |= (byte) (v << (6 - 2 * (x % 4)));
            }
        RgbImage pal = decodeRows(w, h, 2, 3, packed, stride, plte, false);
        for (int i = 0; i < w * h; i++)
            for (int c = 0; c < 3; c++) assertEquals(plte[3 * idx[i] + c], pal.rgb()[3 * i + c]);
        // grayscale 1-bit scales 1 → 255
        byte[] bits = new byte[((w + 7) / 8) * h];
        bits[0] = (byte) 0b1010_0000;
        RgbImage bw = decodeRows(w, h, 1, 0, bits, (w + 7) / 8, null, false);
        assertEquals(255, bw.get(0, 0, 0));
        assertEquals(0, bw.get(1, 0, 0));
        assertEquals(255, bw.get(2, 0, 1));
    }

    @Test void decodesAdam7Interlacing() {
        RgbImage img = noise(11, 9, 3);
        RgbImage back = decode(11, 9, 8, 2, img.rgb(), 3, null, true);
        assertArrayEquals(img.rgb(), back.rgb());
    }

    @Test void errorsSayWhatIsWrong() throws Exception {
        byte[] good = Png.encode(noise(8, 8, 2), Map.of());
        byte[] bad = good.clone();
        bad[40] ^= 0x55;       // inside IDAT: CRC mismatch
        ImageFormatException e = assertThrows(ImageFormatException.class, () -> Png.decode(bad, "bad.png"));
        assertTrue(e.getMessage().contains("CRC"), e.getMessage());
        byte[] cut = java.util.Arrays.copyOf(good, good.length - 30);
        assertThrows(ImageFormatException.class, () -> Png.decode(cut, "cut.png"));
        Path jpg = tmp.resolve("photo.jpg");
        Files.write(jpg, new byte[] {(byte) 0xFF, (byte) 0xD8, (byte) 0xFF, (byte) 0xE0, 0, 0});
        ImageFormatException j = assertThrows(ImageFormatException.class, () -> Images.read(jpg));
        assertTrue(j.getMessage().contains("JPEG") && j.getMessage().contains("PNG"), j.getMessage());
        assertTrue(assertThrows(ImageFormatException.class, () -> Images.read(tmp.resolve("none.png"))).getMessage().contains("does not exist"));
    }

    // ------------------------------------------------------------------------------------------------ a minimal encoder

    /** Whole-byte samples: rows of w·bytesPerPixel bytes. */
    static RgbImage decode(int w, int h, int depth, int colour, byte[] samples, int bytesPerPixel, byte[] plte, boolean adam7) {
        if (!adam7) return decodeRows(w, h, depth, colour, samples, w * bytesPerPixel, plte, false);
        // Adam7: each pass is a sub-image of the pixels at (x0 + i·dx, y0 + j·dy), filtered on its own
        int[][] passes = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
        ByteArrayOutputStream raw = new ByteArrayOutputStream();
        for (int[] p : passes) {
            for (int y = p[1]; y < h; y += p[3]) {
                boolean any = false;
                for (int x = p[0]; x < w; x += p[2]) {
                    if (!any) raw.write(0);
                    any = true;
                    raw.write(samples, (y * w + x) * bytesPerPixel, bytesPerPixel);
                }
            }
        }
        return png(w, h, depth, colour, raw.toByteArray(), plte, true);
    }

    static RgbImage decodeRows(int w, int h, int depth, int colour, byte[] rows, int stride, byte[] plte, boolean adam7) {
        ByteArrayOutputStream raw = new ByteArrayOutputStream();
        for (int y = 0; y < h; y++) {
            raw.write(0);     // filter: none
            raw.write(rows, y * stride, stride);
        }
        return png(w, h, depth, colour, raw.toByteArray(), plte, adam7);
    }

    static RgbImage png(int w, int h, int depth, int colour, byte[] filtered, byte[] plte, boolean adam7) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(new byte[] {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'});
        byte[] ihdr = {0, 0, 0, 0, 0, 0, 0, 0, (byte) depth, (byte) colour, 0, 0, (byte) (adam7 ? 1 : 0)};
        ihdr[2] = (byte) (w >> 8);
        ihdr[3] = (byte) w;
        ihdr[6] = (byte) (h >> 8);
        ihdr[7] = (byte) h;
        chunk(out, "IHDR", ihdr);
        if (plte != null) chunk(out, "PLTE", plte);
        Deflater d = new Deflater();
        d.setInput(filtered);
        d.finish();
        byte[] buf = new byte[filtered.length + 1024];
        int n = d.deflate(buf);
        d.end();
        chunk(out, "IDAT", java.util.Arrays.copyOf(buf, n));
        chunk(out, "IEND", new byte[0]);
        return Png.decode(out.toByteArray(), "test.png").image();
    }

    static void chunk(ByteArrayOutputStream out, String type, byte[] data) {
        out.writeBytes(new byte[] {(byte) (data.length >>> 24), (byte) (data.length >>> 16), (byte) (data.length >>> 8), (byte) data.length});
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        out.writeBytes(t);
        out.writeBytes(data);
        CRC32 c = new CRC32();
        c.update(t);
        c.update(data);
        long v = c.getValue();
        out.writeBytes(new byte[] {(byte) (v >>> 24), (byte) (v >>> 16), (byte) (v >>> 8), (byte) v});
    }

    static byte[] readAll(Path f) {
        try {
            return Files.readAllBytes(f);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
