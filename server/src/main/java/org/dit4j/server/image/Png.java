package org.dit4j.server.image;

import org.dit4j.server.engine.ImageBatch;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.Deflater;

/**
 * An 8-bit RGB PNG encoder with tEXt chunks, written before the image data as PIL writes ComfyUI's
 * {@code prompt} and {@code workflow} metadata. Pixels are converted as ComfyUI's SaveImage does:
 * {@code clip(255·x, 0, 255).astype(uint8)} in float32, i.e. truncated, not rounded.
 */
public final class Png {

    private Png() {}

    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

    /** ComfyUI's float → uint8 conversion of one channel value. */
    public static int toByte(float v) {
        float s = 255f * v;
        if (!(s > 0f)) return 0;            // also maps NaN to 0, as numpy's clip + astype does on x86
        if (s >= 255f) return 255;
        return (int) s;
    }

    /**
     * Encodes image {@code index} of the batch.
     * @param texts    tEXt chunks in order (keyword → Latin-1 text)
     * @param level    zlib level (SaveImage: 4, PreviewImage: 1)
     */
    public static byte[] encode(ImageBatch images, int index, List<Map.Entry<String, String>> texts, int level) {
        int w = images.width(), h = images.height(), c = images.channels();
        if (c != 3 && c != 4) throw new IllegalArgumentException("PNG needs 3 (RGB) or 4 (RGBA) channels, got " + c);
        int bpp = c;
        byte[] raw = new byte[h * (1 + w * bpp)];
        byte[] row = new byte[w * bpp], prev = new byte[w * bpp], best = new byte[w * bpp], trial = new byte[w * bpp];
        int o = 0;
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++)
                for (int k = 0; k < c; k++) row[x * bpp + k] = (byte) toByte(images.pixels()[images.index(index, y, x, k)]);
            int bestType = 0;
            long bestCost = Long.MAX_VALUE;
            for (int type = 0; type <= 4; type++) {
                filter(type, row, prev, bpp, trial);
                long cost = 0;
                for (byte b : trial) cost += Math.abs((int) b);
                if (cost < bestCost) {
                    bestCost = cost;
                    bestType = type;
                    System.arraycopy(trial, 0, best, 0, trial.length);
                }
            }
            raw[o++] = (byte) bestType;
            System.arraycopy(best, 0, raw, o, best.length);
            o += best.length;
            byte[] t = prev;
            prev = row;
            row = t;
        }
        ByteArrayOutputStream out = new ByteArrayOutputStream(raw.length / 2 + 1024);
        out.writeBytes(SIGNATURE);
        byte[] ihdr = new byte[13];
        putInt(ihdr, 0, w);
        putInt(ihdr, 4, h);
        ihdr[8] = 8;
        ihdr[9] = (byte) (c == 3 ? 2 : 6);
        chunk(out, "IHDR", ihdr);
        for (var t : texts) {
            byte[] k = t.getKey().getBytes(StandardCharsets.ISO_8859_1);
            byte[] v = t.getValue().getBytes(StandardCharsets.ISO_8859_1);
            if (k.length < 1 || k.length > 79) throw new IllegalArgumentException("PNG text keyword must have 1..79 bytes: '" + t.getKey() + "'");
            byte[] data = new byte[k.length + 1 + v.length];
            System.arraycopy(k, 0, data, 0, k.length);
            System.arraycopy(v, 0, data, k.length + 1, v.length);
            chunk(out, "tEXt", data);
        }
        Deflater d = new Deflater(level);
        d.setInput(raw);
        d.finish();
        ByteArrayOutputStream z = new ByteArrayOutputStream(raw.length / 2 + 64);
        byte[] buf = new byte[1 << 16];
        while (!d.finished()) z.write(buf, 0, d.deflate(buf));
        d.end();
        chunk(out, "IDAT", z.toByteArray());
        chunk(out, "IEND", new byte[0]);
        return out.toByteArray();
    }

    private static void filter(int type, byte[] row, byte[] prev, int bpp, byte[] out) {
        for (int i = 0; i < row.length; i++) {
            int a = i >= bpp ? row[i - bpp] & 0xff : 0;
            int b = prev[i] & 0xff;
            int cc = i >= bpp ? prev[i - bpp] & 0xff : 0;
            int x = row[i] & 0xff;
            int pred = switch (type) {
                case 0 -> 0;
                case 1 -> a;
                case 2 -> b;
                case 3 -> (a + b) >>> 1;
                default -> paeth(a, b, cc);
            };
            out[i] = (byte) (x - pred);
        }
    }

    private static int paeth(int a, int b, int c) {
        int p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    private static void chunk(ByteArrayOutputStream out, String type, byte[] data) {
        byte[] len = new byte[4];
        putInt(len, 0, data.length);
        out.writeBytes(len);
        byte[] t = type.getBytes(StandardCharsets.US_ASCII);
        out.writeBytes(t);
        out.writeBytes(data);
        CRC32 crc = new CRC32();
        crc.update(t);
        crc.update(data);
        byte[] c = new byte[4];
        putInt(c, 0, (int) crc.getValue());
        out.writeBytes(c);
    }

    private static void putInt(byte[] b, int off, int v) {
        b[off] = (byte) (v >>> 24);
        b[off + 1] = (byte) (v >>> 16);
        b[off + 2] = (byte) (v >>> 8);
        b[off + 3] = (byte) v;
    }
}
