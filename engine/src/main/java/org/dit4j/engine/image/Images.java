package org.dit4j.engine.image;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.NoSuchFileException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Reading input images (Kontext references) by content, not by file name. */
public final class Images {
    private Images() {}

    /** Reads a PNG as 8-bit RGB; other formats fail with a message saying what to convert them to. */
    public static RgbImage read(Path file) {
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new ImageFormatException("input image " + file + " does not exist; check the path");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read input image " + file + ": " + e.getMessage(), e);
        }
        if (Png.isPng(bytes)) return Png.decode(bytes, file.toString()).image();
        String kind = sniff(bytes);
        throw new ImageFormatException("input image " + file + (kind == null ? " is not a PNG file" : " is a " + kind + " file")
                + "; dit4j reads PNG only. Convert it first, e.g. `magick " + file.getFileName() + " input.png` "
                + "or `python3 -c \"from PIL import Image; Image.open('" + file.getFileName() + "').save('input.png')\"`");
    }

    private static String sniff(byte[] b) {
        if (b.length >= 3 && (b[0] & 0xFF) == 0xFF && (b[1] & 0xFF) == 0xD8 && (b[2] & 0xFF) == 0xFF) return "JPEG";
        if (b.length >= 12 && b[0] == 'R' && b[1] == 'I' && b[2] == 'F' && b[3] == 'F' && b[8] == 'W' && b[9] == 'E' && b[10] == 'B' && b[11] == 'P')
            return "WebP";
        if (b.length >= 6 && b[0] == 'G' && b[1] == 'I' && b[2] == 'F' && b[3] == '8') return "GIF";
        if (b.length >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
        return null;
    }
}
