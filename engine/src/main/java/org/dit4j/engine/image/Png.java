package org.dit4j.engine.image;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * PNG encoding and decoding without java.desktop (ISO/IEC 15948, the W3C PNG specification).
 * <ul>
 *   <li>{@link #encode}: 8-bit RGB (or RGBA), non-interlaced, zlib-compressed rows with per-row adaptive filtering (the filter
 *       whose output has the smallest sum of absolute values, the spec's recommended heuristic), text chunks before
 *       the image data; RGBA and the zlib level for the server's ComfyUI SaveImage/PreviewImage. A text value that is Latin-1 is written as {@code tEXt}, otherwise as uncompressed UTF-8
 *       {@code iTXt}, as Pillow's {@code PngInfo.add_text} (which ComfyUI uses) does.</li>
 *   <li>{@link #decode}: every standard PNG — bit depths 1, 2, 4, 8, 16; grayscale, RGB, palette, grayscale+alpha,
 *       RGBA; non-interlaced or Adam7 — to 8-bit RGB. Alpha is dropped (as Pillow's {@code convert("RGB")} does),
 *       16-bit samples keep their high byte, gamma/ICC chunks are ignored. Text chunks (tEXt, zTXt, iTXt) are
 *       returned with the image.</li>
 * </ul>
 */
public final class Png {
    private Png() {}

    private static final byte[] SIGNATURE = {(byte) 0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    private static final long MAX_PIXELS = 1L << 28;

    /** A decoded PNG: the image and its text chunks in file order (keyword → text). */
    public record Decoded(RgbImage image, Map<String, String> text) {}

    // ------------------------------------------------------------------------------------------------ writing

    /** Writes {@code image} with {@code text} chunks (keyword → value; keywords 1–79 Latin-1 characters) to {@code file}. */
    public static void write(Path file, RgbImage image, Map<String, String> text) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            Files.write(file, encode(image, text));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write PNG " + file + ": " + e.getMessage(), e);
        }
    }

    /** The bytes of a PNG of {@code image} with {@code text} chunks (zlib level 6). */
    public static byte[] encode(RgbImage image, Map<String, String> text) {
        return encode(image.width(), image.height(), 3, image.rgb(), java.util.List.copyOf(text.entrySet()), 6);
    }

    /**
     * The bytes of an 8-bit RGB ({@code channels} 3) or RGBA ({@code channels} 4) PNG of interleaved row-major
     * {@code pixels}, with the {@code text} chunks in list order (a keyword may repeat, as with Pillow's
     * {@code PngInfo.add_text}) and the image data compressed at zlib {@code level} (0–9; ComfyUI's SaveImage uses 4,
     * PreviewImage 1).
     */
    public static byte[] encode(int width, int height, int channels, byte[] pixels,
                                java.util.List<Map.Entry<String, String>> text, int level) {
        if (channels != 3 && channels != 4)
            throw new IllegalArgumentException("PNG needs 3 (RGB) or 4 (RGBA) channels, got " + channels);
        if (width < 1 || height < 1)
            throw new IllegalArgumentException("a PNG needs a positive size, got " + width + "×" + height);
        if (pixels.length != (long) channels * width * height)
            throw new IllegalArgumentException("a " + width + "×" + height + "×" + channels + " PNG needs "
                    + (long) channels * width * height + " pixel bytes, got " + pixels.length);
        if (level < 0 || level > 9) throw new IllegalArgumentException("zlib level must be 0..9, got " + level);
        ByteArrayOutputStream out = new ByteArrayOutputStream(pixels.length / 2 + 1024);
        out.writeBytes(SIGNATURE);
        byte[] ihdr = new byte[13];
        putInt(ihdr, 0, width);
        putInt(ihdr, 4, height);
        ihdr[8] = 8;                                // bit depth
        ihdr[9] = (byte) (channels == 3 ? 2 : 6);   // colour type: truecolour / truecolour with alpha
        chunk(out, "IHDR", ihdr);
        for (Map.Entry<String, String> e : text) textChunk(out, e.getKey(), e.getValue());
        chunk(out, "IDAT", deflate(filterRows(width, height, channels, pixels), level));
        chunk(out, "IEND", new byte[0]);
        return out.toByteArray();
    }

    /** Pillow's rule: a Latin-1 keyword (here 1–79 characters, no NUL); a Latin-1 value as tEXt, else UTF-8 iTXt. */
    private static void textChunk(ByteArrayOutputStream out, String keyword, String value) {
        if (keyword.isEmpty() || keyword.length() > 79 || !StandardCharsets.ISO_8859_1.newEncoder().canEncode(keyword)
                || keyword.indexOf(0) >= 0)
            throw new IllegalArgumentException("PNG text keyword must be 1-79 Latin-1 characters without NUL, got \""
                    + keyword + "\"");
        byte[] k = keyword.getBytes(StandardCharsets.ISO_8859_1);
        ByteArrayOutputStream c = new ByteArrayOutputStream();
        c.writeBytes(k);
        c.write(0);
        if (StandardCharsets.ISO_8859_1.newEncoder().canEncode(value)) {
            c.writeBytes(value.getBytes(StandardCharsets.ISO_8859_1));
            chunk(out, "tEXt", c.toByteArray());
        } else {
            c.write(0);     // compression flag: uncompressed
            c.write(0);     // compression method
            c.write(0);     // empty language tag
            c.write(0);     // empty translated keyword
            c.writeBytes(value.getBytes(StandardCharsets.UTF_8));
            chunk(out, "iTXt", c.toByteArray());
        }
    }

    /**
     * Rows with a leading filter-type byte each; per row the filter with the least sum of |signed output|, the first
     * such on ties.
     */
    private static byte[] filterRows(int width, int h, int bpp, byte[] px) {
        int stride = bpp * width;
        byte[] out = new byte[(stride + 1) * h];
        byte[][] cand = new byte[5][stride];
        for (int y = 0; y < h; y++) {
            int row = y * stride, prev = row - stride;
            long best = Long.MAX_VALUE;
            int bestType = 0;
            for (int type = 0; type < 5; type++) {
                byte[] f = cand[type];
                long sum = 0;
                for (int i = 0; i < stride; i++) {
                    int x = px[row + i] & 0xFF;
                    int a = i >= bpp ? px[row + i - bpp] & 0xFF : 0;
                    int b = y > 0 ? px[prev + i] & 0xFF : 0;
                    int c = i >= bpp && y > 0 ? px[prev + i - bpp] & 0xFF : 0;
                    int v = switch (type) {
                        case 0 -> x;
                        case 1 -> x - a;
                        case 2 -> x - b;
                        case 3 -> x - ((a + b) >>> 1);
                        default -> x - paeth(a, b, c);
                    };
                    f[i] = (byte) v;
                    sum += Math.abs((byte) v);
                }
                if (sum < best) {
                    best = sum;
                    bestType = type;
                }
            }
            int o = y * (stride + 1);
            out[o] = (byte) bestType;
            System.arraycopy(cand[bestType], 0, out, o + 1, stride);
        }
        return out;
    }

    private static byte[] deflate(byte[] data, int level) {
        Deflater d = new Deflater(level);
        try {
            d.setInput(data);
            d.finish();
            ByteArrayOutputStream out = new ByteArrayOutputStream(data.length / 2 + 64);
            byte[] buf = new byte[1 << 16];
            while (!d.finished()) out.write(buf, 0, d.deflate(buf));
            return out.toByteArray();
        } finally {
            d.end();
        }
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

    private static int paeth(int a, int b, int c) {
        int p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        if (pa <= pb && pa <= pc) return a;
        return pb <= pc ? b : c;
    }

    // ------------------------------------------------------------------------------------------------ reading

    /** True when {@code head} starts with the PNG signature. */
    public static boolean isPng(byte[] head) {
        if (head.length < SIGNATURE.length) return false;
        for (int i = 0; i < SIGNATURE.length; i++) if (head[i] != SIGNATURE[i]) return false;
        return true;
    }

    /** Reads a PNG file; {@code source} names it in errors. */
    public static Decoded decode(byte[] bytes, String source) {
        if (!isPng(bytes)) throw new ImageFormatException(source + " is not a PNG file (no PNG signature)");
        int width = 0, height = 0, depth = 0, colour = -1, interlace = 0;
        byte[] palette = null;
        ByteArrayOutputStream idat = new ByteArrayOutputStream();
        Map<String, String> text = new LinkedHashMap<>();
        boolean ended = false;
        int pos = SIGNATURE.length;
        while (pos + 12 <= bytes.length) {
            int len = getInt(bytes, pos);
            String type = new String(bytes, pos + 4, 4, StandardCharsets.ISO_8859_1);
            if (len < 0 || pos + 12L + len > bytes.length)
                throw new ImageFormatException(source + ": chunk " + type + " at byte " + pos + " runs past the end of the file"
                        + " (the file is truncated)");
            CRC32 crc = new CRC32();
            crc.update(bytes, pos + 4, 4 + len);
            if ((int) crc.getValue() != getInt(bytes, pos + 8 + len))
                throw new ImageFormatException(source + ": chunk " + type + " at byte " + pos + " has a bad CRC (the file is damaged)");
            int d = pos + 8;
            switch (type) {
                case "IHDR" -> {
                    if (len != 13) throw new ImageFormatException(source + ": IHDR must be 13 bytes, got " + len);
                    width = getInt(bytes, d);
                    height = getInt(bytes, d + 4);
                    depth = bytes[d + 8] & 0xFF;
                    colour = bytes[d + 9] & 0xFF;
                    if ((bytes[d + 10] & 0xFF) != 0 || (bytes[d + 11] & 0xFF) != 0)
                        throw new ImageFormatException(source + ": unknown PNG compression/filter method");
                    interlace = bytes[d + 12] & 0xFF;
                    if (interlace > 1) throw new ImageFormatException(source + ": unknown interlace method " + interlace);
                }
                case "PLTE" -> {
                    if (len % 3 != 0 || len == 0 || len > 768)
                        throw new ImageFormatException(source + ": PLTE must hold 1-256 RGB entries, got " + len + " bytes");
                    palette = java.util.Arrays.copyOfRange(bytes, d, d + len);
                }
                case "IDAT" -> idat.write(bytes, d, len);
                case "tEXt" -> {
                    int z = indexOfZero(bytes, d, d + len);
                    if (z > d) text.put(new String(bytes, d, z - d, StandardCharsets.ISO_8859_1),
                            new String(bytes, z + 1, d + len - z - 1, StandardCharsets.ISO_8859_1));
                }
                case "zTXt" -> {
                    int z = indexOfZero(bytes, d, d + len);
                    if (z > d && z + 2 <= d + len) text.put(new String(bytes, d, z - d, StandardCharsets.ISO_8859_1),
                            new String(inflate(bytes, z + 2, d + len - z - 2, source), StandardCharsets.ISO_8859_1));
                }
                case "iTXt" -> readItxt(bytes, d, len, text, source);
                case "IEND" -> ended = true;
                default -> {
                    if (Character.isUpperCase(type.charAt(0)))
                        throw new ImageFormatException(source + ": unknown critical chunk " + type);
                }
            }
            pos += 12 + len;
            if (ended) break;
        }
        if (colour < 0) throw new ImageFormatException(source + ": no IHDR chunk");
        if (!ended && idat.size() == 0) throw new ImageFormatException(source + ": no image data (the file is truncated)");
        if (width <= 0 || height <= 0 || (long) width * height > MAX_PIXELS)
            throw new ImageFormatException(source + ": unsupported image size " + width + "×" + height);
        int channels = switch (colour) {
            case 0, 3 -> 1;
            case 2 -> 3;
            case 4 -> 2;
            case 6 -> 4;
            default -> throw new ImageFormatException(source + ": unknown PNG colour type " + colour);
        };
        boolean depthOk = switch (colour) {
            case 0 -> depth == 1 || depth == 2 || depth == 4 || depth == 8 || depth == 16;
            case 3 -> depth == 1 || depth == 2 || depth == 4 || depth == 8;
            default -> depth == 8 || depth == 16;
        };
        if (!depthOk) throw new ImageFormatException(source + ": bit depth " + depth + " is not allowed for colour type " + colour);
        if (colour == 3 && palette == null) throw new ImageFormatException(source + ": a palette image without a PLTE chunk");
        byte[] raw = inflate(idat.toByteArray(), 0, idat.size(), source);
        byte[] rgb = new byte[3 * width * height];
        final int w = width, ct = colour, bits = depth;
        final byte[] pal = palette;
        if (interlace == 0) {
            unfilterPass(raw, 0, width, height, channels, depth, source, (x, y, samples) ->
                    store(rgb, w, x, y, samples, ct, bits, pal, source));
        } else {
            int[][] adam7 = {{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}};
            int off = 0;
            for (int[] p : adam7) {
                int pw = (width - p[0] + p[2] - 1) / p[2], ph = (height - p[1] + p[3] - 1) / p[3];
                if (pw <= 0 || ph <= 0) continue;
                off = unfilterPass(raw, off, pw, ph, channels, depth, source, (x, y, samples) ->
                        store(rgb, w, p[0] + x * p[2], p[1] + y * p[3], samples, ct, bits, pal, source));
            }
        }
        return new Decoded(new RgbImage(width, height, rgb), text);
    }

    private interface PixelSink { void accept(int x, int y, int[] samples); }

    /** Undoes the row filters of one (sub-)image starting at {@code off}; returns the offset after it. */
    private static int unfilterPass(byte[] raw, int off, int w, int h, int channels, int depth, String source, PixelSink sink) {
        int bitsPerPixel = channels * depth;
        int stride = (int) (((long) w * bitsPerPixel + 7) / 8);
        int bpp = Math.max(1, bitsPerPixel / 8);
        if ((long) off + (long) (stride + 1) * h > raw.length)
            throw new ImageFormatException(source + ": the image data is shorter than its size requires (truncated file)");
        byte[] prev = new byte[stride], cur = new byte[stride];
        int[] samples = new int[channels];
        for (int y = 0; y < h; y++) {
            int type = raw[off++] & 0xFF;
            System.arraycopy(raw, off, cur, 0, stride);
            off += stride;
            for (int i = 0; i < stride; i++) {
                int a = i >= bpp ? cur[i - bpp] & 0xFF : 0, b = prev[i] & 0xFF, c = i >= bpp ? prev[i - bpp] & 0xFF : 0;
                int add = switch (type) {
                    case 0 -> 0;
                    case 1 -> a;
                    case 2 -> b;
                    case 3 -> (a + b) >>> 1;
                    case 4 -> paeth(a, b, c);
                    default -> throw new ImageFormatException(source + ": unknown row filter " + type + " in row " + y);
                };
                cur[i] = (byte) (cur[i] + add);
            }
            for (int x = 0; x < w; x++) {
                if (depth < 8) {
                    int bit = x * depth;
                    int v = (cur[bit >>> 3] & 0xFF) >>> (8 - depth - (bit & 7));
                    samples[0] = v & ((1 << depth) - 1);
                } else if (depth == 8) {
                    for (int k = 0; k < channels; k++) samples[k] = cur[x * channels + k] & 0xFF;
                } else {
                    for (int k = 0; k < channels; k++) samples[k] = ((cur[2 * (x * channels + k)] & 0xFF) << 8) | (cur[2 * (x * channels + k) + 1] & 0xFF);
                }
                sink.accept(x, y, samples);
            }
            byte[] t = prev;
            prev = cur;
            cur = t;
        }
        return off;
    }

    private static void store(byte[] rgb, int width, int x, int y, int[] s, int colour, int depth, byte[] palette, String source) {
        int o = 3 * (y * width + x);
        switch (colour) {
            case 0, 4 -> {
                int g = to8(s[0], depth);
                rgb[o] = rgb[o + 1] = rgb[o + 2] = (byte) g;
            }
            case 3 -> {
                int i = s[0];
                if (3 * i + 2 >= palette.length)
                    throw new ImageFormatException(source + ": palette index " + i + " beyond the " + palette.length / 3 + " PLTE entries");
                rgb[o] = palette[3 * i];
                rgb[o + 1] = palette[3 * i + 1];
                rgb[o + 2] = palette[3 * i + 2];
            }
            default -> {
                rgb[o] = (byte) to8(s[0], depth);
                rgb[o + 1] = (byte) to8(s[1], depth);
                rgb[o + 2] = (byte) to8(s[2], depth);
            }
        }
    }

    /** A sample of {@code depth} bits as 8 bits: low depths scaled to 0..255 (as Pillow), 16 bits → the high byte. */
    private static int to8(int v, int depth) {
        return switch (depth) {
            case 1 -> v * 255;
            case 2 -> v * 85;
            case 4 -> v * 17;
            case 8 -> v;
            default -> v >>> 8;
        };
    }

    private static void readItxt(byte[] b, int d, int len, Map<String, String> text, String source) {
        int end = d + len, z = indexOfZero(b, d, end);
        if (z <= d || z + 3 > end) return;
        String key = new String(b, d, z - d, StandardCharsets.ISO_8859_1);
        boolean compressed = b[z + 1] != 0;
        int lang = indexOfZero(b, z + 3, end);
        if (lang < 0) return;
        int trans = indexOfZero(b, lang + 1, end);
        if (trans < 0) return;
        byte[] value = compressed ? inflate(b, trans + 1, end - trans - 1, source)
                : java.util.Arrays.copyOfRange(b, trans + 1, end);
        text.put(key, new String(value, StandardCharsets.UTF_8));
    }

    private static int indexOfZero(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) if (b[i] == 0) return i;
        return -1;
    }

    private static byte[] inflate(byte[] data, int off, int len, String source) {
        Inflater inf = new Inflater();
        try {
            inf.setInput(data, off, len);
            ByteArrayOutputStream out = new ByteArrayOutputStream(Math.max(64, len * 3));
            byte[] buf = new byte[1 << 16];
            while (!inf.finished()) {
                int n = inf.inflate(buf);
                if (n == 0 && (inf.needsInput() || inf.needsDictionary()))
                    throw new ImageFormatException(source + ": the compressed image data ends early (truncated file)");
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        } catch (DataFormatException e) {
            throw new ImageFormatException(source + ": the compressed image data is damaged: " + e.getMessage());
        } finally {
            inf.end();
        }
    }

    private static int getInt(byte[] b, int off) {
        return ((b[off] & 0xFF) << 24) | ((b[off + 1] & 0xFF) << 16) | ((b[off + 2] & 0xFF) << 8) | (b[off + 3] & 0xFF);
    }
}
