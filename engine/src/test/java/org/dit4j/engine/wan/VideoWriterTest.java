package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.dit4j.engine.image.Images;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.engine.video.VideoWriter;
import org.jcodec.api.FrameGrab;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.model.Picture;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** MP4 box structure, frame count and decodability; PNG frames. */
class VideoWriterTest {
    @TempDir Path tmp;

    static List<RgbImage> frames(int n, int w, int h) {
        List<RgbImage> out = new ArrayList<>();
        for (int f = 0; f < n; f++) {
            byte[] rgb = new byte[3 * w * h];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++) {
                    int o = 3 * (y * w + x);
                    rgb[o] = (byte) (x * 255 / (w - 1));
                    rgb[o + 1] = (byte) (y * 255 / (h - 1));
                    rgb[o + 2] = (byte) (f * 255 / Math.max(1, n - 1));
                }
            out.add(new RgbImage(w, h, rgb));
        }
        return out;
    }

    @Test void mp4HasFtypMoovMdatAndEveryFrame() throws Exception {
        Path out = tmp.resolve("sub/v.mp4");
        List<RgbImage> frames = frames(9, 48, 32);
        VideoWriter.write(out, frames, 16);
        ByteBuffer buf = ByteBuffer.wrap(Files.readAllBytes(out));
        List<String> top = new ArrayList<>();
        ByteBuffer moov = null;
        while (buf.remaining() >= 8) {
            int start = buf.position();
            long size = Integer.toUnsignedLong(buf.getInt());
            String type = fourcc(buf);
            if (size == 1) size = buf.getLong();
            top.add(type);
            if (type.equals("moov")) moov = buf.duplicate().position(buf.position()).limit(start + (int) size).slice();
            buf.position(start + (int) size);
        }
        assertEquals(0, buf.remaining(), "boxes cover the whole file");
        assertEquals("ftyp", top.getFirst());
        assertTrue(top.contains("moov") && top.contains("mdat"), "top-level boxes " + top);
        byte[] moovBytes = new byte[moov.remaining()];
        moov.get(moovBytes);
        String m = new String(moovBytes, StandardCharsets.ISO_8859_1);
        assertTrue(m.contains("avc1") && m.contains("avcC"), "H.264 sample entry");
        int stsz = m.indexOf("stsz");
        ByteBuffer s = ByteBuffer.wrap(moovBytes, stsz + 4 + 4 + 4, 4);   // version/flags, sample_size, sample_count
        assertEquals(9, s.getInt(), "stsz sample count");
        int mdhd = m.indexOf("mdhd");
        ByteBuffer md = ByteBuffer.wrap(moovBytes, mdhd + 4 + 4 + 8, 8);  // v0: flags, ctime, mtime, timescale, duration
        int timescale = md.getInt(), duration = md.getInt();
        assertEquals(9.0 / 16, (double) duration / timescale, 1e-6, "9 frames at 16 fps");
        // decodes back to the frames, within H.264's loss
        try (var ch = NIOUtils.readableChannel(out.toFile())) {
            FrameGrab grab = FrameGrab.createFrameGrab(ch);
            int n = 0;
            Picture p;
            while ((p = grab.getNativeFrame()) != null) {
                assertEquals(48, p.getWidth());
                assertEquals(32, p.getHeight());
                n++;
            }
            assertEquals(9, n, "decoded frames");
        }
    }

    @Test void pngFramesAndBadExtensions() {
        List<RgbImage> frames = frames(3, 10, 6);
        List<Path> written = VideoWriter.writeFrames(tmp.resolve("frames"), frames, Map.of("prompt", "x"));
        assertEquals(List.of("frame_00000.png", "frame_00001.png", "frame_00002.png"),
                written.stream().map(p -> p.getFileName().toString()).toList());
        for (int i = 0; i < 3; i++) assertArrayEquals(frames.get(i).rgb(), Images.read(written.get(i)).rgb(), "lossless frame " + i);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> VideoWriter.write(tmp.resolve("v.gif"), frames, 16));
        assertTrue(e.getMessage().contains(".mp4") && e.getMessage().contains(".webp") && e.getMessage().contains("--frames-dir"), e.getMessage());
        assertEquals(VideoWriter.Format.WEBP, VideoWriter.formatOf(tmp.resolve("V.WebP")));
        VideoWriter.write(tmp.resolve("v.webp"), frames, 16);
        byte[] webp = org.junit.jupiter.api.Assertions.assertDoesNotThrow(() -> java.nio.file.Files.readAllBytes(tmp.resolve("v.webp")));
        assertEquals("RIFF", new String(webp, 0, 4, StandardCharsets.ISO_8859_1));
        assertEquals("WEBP", new String(webp, 8, 4, StandardCharsets.ISO_8859_1));
        assertThrows(IllegalArgumentException.class, () -> VideoWriter.writeMp4(tmp.resolve("odd.mp4"), frames(2, 9, 6), 16));
    }

    private static String fourcc(ByteBuffer b) {
        byte[] t = new byte[4];
        b.get(t);
        return new String(t, StandardCharsets.ISO_8859_1);
    }
}
