package org.dit4j.engine.video;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.dit4j.engine.image.Png;
import org.dit4j.engine.image.RgbImage;
import org.jcodec.api.SequenceEncoder;
import org.jcodec.common.io.NIOUtils;
import org.jcodec.common.io.SeekableByteChannel;
import org.jcodec.common.model.ColorSpace;
import org.jcodec.common.model.Picture;
import org.jcodec.common.model.Rational;

/**
 * Writes generated videos: MP4 (H.264 in an ISO-BMFF container, by jcodec's pure-Java encoder) or lossless animated
 * WebP ({@link WebpWriter}) chosen by the {@code .mp4} / {@code .webp} extension of the output, and numbered PNG frames ({@code frame_00000.png}, …) into a folder.
 */
public final class VideoWriter {
    private VideoWriter() {}

    /** The output formats known by extension. */
    public enum Format { MP4, WEBP }

    /** The format of {@code out} from its extension; an unsupported extension is an error naming the alternatives. */
    public static Format formatOf(Path out) {
        String n = out.getFileName() == null ? "" : out.getFileName().toString().toLowerCase(Locale.ROOT);
        if (n.endsWith(".mp4")) return Format.MP4;
        if (n.endsWith(".webp")) return Format.WEBP;
        String ext = n.lastIndexOf('.') >= 0 ? n.substring(n.lastIndexOf('.')) : "(none)";
        throw new IllegalArgumentException("video output " + out + ": extension " + ext + " is not supported; use a .mp4 file "
                + "(H.264), a .webp file (lossless animated WebP) and/or --frames-dir DIR for PNG frames");
    }

    /** Writes {@code frames} to {@code out} in the format its extension names. */
    public static void write(Path out, List<RgbImage> frames, int fps) {
        switch (formatOf(out)) {
            case MP4 -> writeMp4(out, frames, fps);
            case WEBP -> WebpWriter.write(out, frames, fps);
        }
    }

    /**
     * H.264 (jcodec's baseline encoder, YUV 4:2:0) in an MP4 at {@code fps} frames per second. Width and height must
     * be even (4:2:0 chroma).
     */
    public static void writeMp4(Path out, List<RgbImage> frames, int fps) {
        if (frames.isEmpty()) throw new IllegalArgumentException("no frames to write to " + out);
        if (fps < 1) throw new IllegalArgumentException("--fps must be at least 1, got " + fps);
        int w = frames.getFirst().width(), h = frames.getFirst().height();
        if (w % 2 != 0 || h % 2 != 0)
            throw new IllegalArgumentException("MP4 (H.264 4:2:0) needs an even width and height, got " + w + "×" + h);
        createParent(out);
        try (SeekableByteChannel ch = NIOUtils.writableChannel(out.toFile())) {
            SequenceEncoder enc = SequenceEncoder.createWithFps(ch, Rational.R(fps, 1));
            Picture pic = Picture.create(w, h, ColorSpace.RGB);
            byte[] plane = pic.getPlaneData(0);
            for (int i = 0; i < frames.size(); i++) {
                RgbImage f = frames.get(i);
                if (f.width() != w || f.height() != h)
                    throw new IllegalArgumentException("frame " + i + " is " + f.width() + "×" + f.height() + ", frame 0 is " + w + "×" + h);
                byte[] rgb = f.rgb();
                for (int j = 0; j < rgb.length; j++) plane[j] = (byte) ((rgb[j] & 0xFF) - 128);   // jcodec: signed samples
                enc.encodeNativeFrame(pic);
            }
            enc.finish();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write MP4 " + out + ": " + e.getMessage(), e);
        }
    }

    /** Writes {@code frame_00000.png}, {@code frame_00001.png}, … into {@code dir} (created); returns the paths. */
    public static List<Path> writeFrames(Path dir, List<RgbImage> frames, Map<String, String> text) {
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the frames folder " + dir + ": " + e.getMessage(), e);
        }
        List<Path> out = new ArrayList<>();
        for (int i = 0; i < frames.size(); i++) {
            Path p = dir.resolve(String.format(Locale.ROOT, "frame_%05d.png", i));
            Png.write(p, frames.get(i), i == 0 ? text : Map.of());
            out.add(p);
        }
        return out;
    }

    private static void createParent(Path out) {
        Path parent = out.toAbsolutePath().getParent();
        if (parent == null) return;
        try {
            Files.createDirectories(parent);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create the folder of " + out + ": " + e.getMessage(), e);
        }
    }
}
