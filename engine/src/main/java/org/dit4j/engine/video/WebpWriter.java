package org.dit4j.engine.video;

import org.dit4j.engine.image.RgbImage;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.PriorityQueue;

/**
 * Animated WebP, lossless (RFC 9649): a RIFF/WEBP file with a VP8X header (animation flag, canvas size), an ANIM chunk
 * (background, loop count), optionally an EXIF chunk, and one ANMF chunk per frame (full canvas, no blending, no
 * disposal) holding a VP8L bitstream.
 *
 * <p>The VP8L encoder is deliberately simple and exact: the subtract-green transform, then every pixel as literals
 * (no backward references, no colour cache, one prefix-code group) with length-limited canonical Huffman codes
 * built from the frame's own histograms (codes with one or two symbols use the "simple" form). Decoders (libwebp,
 * Pillow, browsers) reproduce the frames bit for bit. Files are larger than libwebp's (no LZ77).
 */
public final class WebpWriter {
    private WebpWriter() {}

    /** Largest width/height VP8L and the ANMF frame fields can hold. */
    public static final int MAX_SIDE = 1 << 14;

    /** Writes {@code frames} as an endlessly looping lossless animated WebP, {@code fps} frames per second. */
    public static void write(Path out, List<RgbImage> frames, double fps) {
        if (!(fps > 0)) throw new IllegalArgumentException("--fps must be positive, got " + fps);
        byte[] bytes = encodeAnimated(frames, (int) (1000.0 / fps), 0, null);
        try {
            Path parent = out.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            Files.write(out, bytes);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write WebP " + out + ": " + e.getMessage(), e);
        }
    }

    /**
     * The bytes of an animated WebP.
     *
     * @param durationMs display time of each frame in milliseconds (0 … 2²⁴−1)
     * @param loops      loop count (0 = forever)
     * @param exif       an EXIF payload (a TIFF structure) to store, or null
     */
    public static byte[] encodeAnimated(List<RgbImage> frames, int durationMs, int loops, byte[] exif) {
        if (frames.isEmpty()) throw new IllegalArgumentException("no frames to write as WebP");
        if (durationMs < 0 || durationMs >= (1 << 24)) throw new IllegalArgumentException("frame duration " + durationMs + " ms is outside 0 … 16777215");
        if (loops < 0 || loops > 0xFFFF) throw new IllegalArgumentException("loop count " + loops + " is outside 0 … 65535");
        int w = frames.getFirst().width(), h = frames.getFirst().height();
        if (w < 1 || h < 1 || w > MAX_SIDE || h > MAX_SIDE)
            throw new IllegalArgumentException("WebP frames must be 1 … " + MAX_SIDE + " pixels on each side, got " + w + "×" + h);
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        byte[] vp8x = new byte[10];
        vp8x[0] = (byte) (0x02 | (exif != null ? 0x08 : 0));              // animation (+ EXIF) flags
        le24(vp8x, 4, w - 1);
        le24(vp8x, 7, h - 1);
        chunk(body, "VP8X", vp8x);
        byte[] anim = new byte[6];                                          // background 0 (BGRA), loop count
        anim[4] = (byte) loops;
        anim[5] = (byte) (loops >>> 8);
        chunk(body, "ANIM", anim);
        for (int i = 0; i < frames.size(); i++) {
            RgbImage f = frames.get(i);
            if (f.width() != w || f.height() != h)
                throw new IllegalArgumentException("frame " + i + " is " + f.width() + "×" + f.height() + ", frame 0 is " + w + "×" + h);
            ByteArrayOutputStream frame = new ByteArrayOutputStream();
            byte[] head = new byte[16];
            le24(head, 6, w - 1);                                           // x, y offsets 0
            le24(head, 9, h - 1);
            le24(head, 12, durationMs);
            head[15] = 0x02;                                                // do not blend, no disposal
            frame.writeBytes(head);
            chunk(frame, "VP8L", encodeLossless(f));
            chunk(body, "ANMF", frame.toByteArray());
        }
        if (exif != null) chunk(body, "EXIF", exif);
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.writeBytes("RIFF".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        byte[] size = new byte[4];
        le32(size, 0, 4 + body.size());
        file.writeBytes(size);
        file.writeBytes("WEBP".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        file.writeBytes(body.toByteArray());
        return file.toByteArray();
    }

    /** A VP8L bitstream (the VP8L chunk payload) of an opaque RGB image. */
    public static byte[] encodeLossless(RgbImage img) {
        int w = img.width(), h = img.height(), n = w * h;
        byte[] rgb = img.rgb();
        // subtract-green transform: red and blue minus green (mod 256); alpha 255
        int[] g = new int[n], r = new int[n], b = new int[n];
        for (int i = 0; i < n; i++) {
            int rr = rgb[3 * i] & 0xFF, gg = rgb[3 * i + 1] & 0xFF, bb = rgb[3 * i + 2] & 0xFF;
            g[i] = gg;
            r[i] = (rr - gg) & 0xFF;
            b[i] = (bb - gg) & 0xFF;
        }
        BitWriter out = new BitWriter(n);
        out.bits(0x2F, 8);                                                  // signature
        out.bits(w - 1, 14);
        out.bits(h - 1, 14);
        out.bits(0, 1);                                                     // alpha_is_used: no
        out.bits(0, 3);                                                     // version 0
        out.bits(1, 1);                                                     // a transform follows
        out.bits(2, 2);                                                     // SUBTRACT_GREEN
        out.bits(0, 1);                                                     // no more transforms
        out.bits(0, 1);                                                     // no colour cache
        out.bits(0, 1);                                                     // no meta prefix codes
        int[] alpha = new int[n];
        Arrays.fill(alpha, 255);
        Code green = Code.of(histogram(g, 256 + 24), out);                  // green + 24 length prefixes (unused)
        Code red = Code.of(histogram(r, 256), out);
        Code blue = Code.of(histogram(b, 256), out);
        Code alp = Code.of(histogram(alpha, 256), out);
        Code.of(new long[40], out);                                         // distance codes (unused)
        for (int i = 0; i < n; i++) {
            green.put(out, g[i]);
            red.put(out, r[i]);
            blue.put(out, b[i]);
            alp.put(out, 255);
        }
        return out.toByteArray();
    }

    private static long[] histogram(int[] v, int size) {
        long[] h = new long[size];
        for (int x : v) h[x]++;
        return h;
    }

    /** A canonical prefix code over an alphabet, written into the stream by {@link #of}. */
    private static final class Code {
        final int[] lengths, codes;       // codes bit-reversed for the LSB-first writer
        final boolean zeroBits;           // one used symbol: decoders read it with no bits

        private Code(int[] lengths, boolean zeroBits) {
            this.lengths = lengths;
            this.zeroBits = zeroBits;
            this.codes = canonical(lengths);
        }

        void put(BitWriter out, int symbol) {
            if (zeroBits) return;
            int len = lengths[symbol];
            if (len == 0) throw new IllegalStateException("symbol " + symbol + " has no code");
            out.bits(codes[symbol], len);
        }

        /** Builds the code for a histogram and writes its description (simple or normal form). */
        static Code of(long[] hist, BitWriter out) {
            List<Integer> used = new ArrayList<>();
            for (int s = 0; s < hist.length; s++) if (hist[s] > 0) used.add(s);
            if (used.size() <= 2 && (used.isEmpty() || used.getLast() < 256)) {
                out.bits(1, 1);                                             // simple code
                int first = used.isEmpty() ? 0 : used.getFirst();
                out.bits(used.size() == 2 ? 1 : 0, 1);                      // num_symbols − 1
                boolean eight = first > 1;
                out.bits(eight ? 1 : 0, 1);
                out.bits(first, eight ? 8 : 1);
                int[] len = new int[hist.length];
                if (used.size() == 2) {
                    out.bits(used.get(1), 8);
                    len[used.get(0)] = 1;
                    len[used.get(1)] = 1;
                    return new Code(len, false);
                }
                len[first] = 1;
                return new Code(len, true);
            }
            int[] len = lengths(hist, 15);
            out.bits(0, 1);                                                 // normal code
            writeLengths(out, len);
            return new Code(len, false);
        }
    }

    /** The order in which code-length code lengths are stored. */
    private static final int[] CODE_LENGTH_ORDER = {17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

    /** Writes code lengths with the code-length code (literal lengths 0–15, zero runs as 17 and 18). */
    private static void writeLengths(BitWriter out, int[] len) {
        List<int[]> tokens = new ArrayList<>();                             // {symbol, extra bits value, extra bit count}
        for (int i = 0; i < len.length; ) {
            if (len[i] == 0) {
                int run = 0;
                while (i + run < len.length && len[i + run] == 0 && run < 138) run++;
                if (run >= 11) tokens.add(new int[] {18, run - 11, 7});
                else if (run >= 3) tokens.add(new int[] {17, run - 3, 3});
                else for (int k = 0; k < run; k++) tokens.add(new int[] {0, 0, 0});
                i += run;
            } else {
                tokens.add(new int[] {len[i], 0, 0});
                i++;
            }
        }
        long[] hist = new long[19];
        for (int[] t : tokens) hist[t[0]]++;
        int[] clen = lengths(hist, 7);
        int used = 0;
        for (int s : clen) if (s > 0) used++;
        int count = 19;
        while (count > 4 && clen[CODE_LENGTH_ORDER[count - 1]] == 0) count--;
        out.bits(count - 4, 4);
        for (int i = 0; i < count; i++) out.bits(clen[CODE_LENGTH_ORDER[i]], 3);
        out.bits(0, 1);                                                     // max_symbol = alphabet size
        int[] codes = canonical(clen);
        for (int[] t : tokens) {
            if (used > 1) out.bits(codes[t[0]], clen[t[0]]);                // a single-symbol code is read with no bits
            if (t[2] > 0) out.bits(t[1], t[2]);
        }
    }

    /**
     * Huffman code lengths of at most {@code maxLen} bits for the used symbols (a lone symbol gets length 1). When the
     * tree is too deep the counts are halved (kept ≥ 1) and the code rebuilt.
     */
    static int[] lengths(long[] hist, int maxLen) {
        long[] f = hist.clone();
        while (true) {
            int[] len = huffman(f);
            int max = 0;
            for (int l : len) max = Math.max(max, l);
            if (max <= maxLen) return len;
            for (int i = 0; i < f.length; i++) if (f[i] > 0) f[i] = Math.max(1, f[i] >> 1);
        }
    }

    private static int[] huffman(long[] f) {
        int n = f.length;
        int[] len = new int[n];
        // nodes: leaves 0..n-1, internal n..; parent links to read depths
        int[] parent = new int[2 * n];
        long[] weight = new long[2 * n];
        PriorityQueue<Integer> pq = new PriorityQueue<>((a, b) -> weight[a] != weight[b] ? Long.compare(weight[a], weight[b]) : Integer.compare(a, b));
        int used = 0;
        for (int s = 0; s < n; s++) if (f[s] > 0) {
            weight[s] = f[s];
            pq.add(s);
            used++;
        }
        if (used == 0) return len;
        if (used == 1) {
            len[pq.peek()] = 1;
            return len;
        }
        int next = n;
        while (pq.size() > 1) {
            int a = pq.poll(), b = pq.poll();
            weight[next] = weight[a] + weight[b];
            parent[a] = next;
            parent[b] = next;
            pq.add(next++);
        }
        int root = pq.poll();
        for (int s = 0; s < n; s++) {
            if (f[s] == 0) continue;
            int d = 0;
            for (int v = s; v != root; v = parent[v]) d++;
            len[s] = d;
        }
        return len;
    }

    /** Canonical codes (DEFLATE's assignment) for the lengths, bit-reversed for an LSB-first writer. */
    private static int[] canonical(int[] len) {
        int max = 0;
        for (int l : len) max = Math.max(max, l);
        int[] count = new int[max + 2];
        for (int l : len) if (l > 0) count[l]++;
        int[] next = new int[max + 2];
        int code = 0;
        for (int bits = 1; bits <= max; bits++) {
            code = (code + count[bits - 1]) << 1;
            next[bits] = code;
        }
        int[] out = new int[len.length];
        for (int s = 0; s < len.length; s++) {
            int l = len[s];
            if (l == 0) continue;
            int c = next[l]++;
            out[s] = Integer.reverse(c) >>> (32 - l);
        }
        return out;
    }

    /** LSB-first bit packing. */
    private static final class BitWriter {
        private byte[] buf;
        private int pos;
        private long acc;
        private int nacc;

        BitWriter(int pixels) { buf = new byte[Math.max(64, pixels * 2)]; }

        void bits(int value, int n) {
            acc |= ((long) value & ((1L << n) - 1)) << nacc;
            nacc += n;
            while (nacc >= 8) {
                if (pos == buf.length) buf = Arrays.copyOf(buf, buf.length * 2);
                buf[pos++] = (byte) acc;
                acc >>>= 8;
                nacc -= 8;
            }
        }

        byte[] toByteArray() {
            if (nacc > 0) bits(0, 8 - nacc);
            return Arrays.copyOf(buf, pos);
        }
    }

    private static void chunk(ByteArrayOutputStream out, String fourcc, byte[] payload) {
        out.writeBytes(fourcc.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        byte[] size = new byte[4];
        le32(size, 0, payload.length);
        out.writeBytes(size);
        out.writeBytes(payload);
        if ((payload.length & 1) != 0) out.write(0);
    }

    private static void le24(byte[] b, int off, int v) {
        b[off] = (byte) v;
        b[off + 1] = (byte) (v >>> 8);
        b[off + 2] = (byte) (v >>> 16);
    }

    private static void le32(byte[] b, int off, int v) {
        le24(b, off, v);
        b[off + 3] = (byte) (v >>> 24);
    }
}
