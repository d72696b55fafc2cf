package org.dit4j.engine.image;

/**
 * An 8-bit RGB image: interleaved bytes, row-major, byte {@code 3·(y·width + x) + c} (PIL's "RGB" layout, what
 * {@link org.dit4j.models.vae.VaeImages} reads and writes).
 */
public record RgbImage(int width, int height, byte[] rgb) {
    public RgbImage {
        if (width < 1 || height < 1)
            throw new IllegalArgumentException("an image needs a positive size, got " + width + "×" + height);
        if (rgb.length != 3L * width * height)
            throw new IllegalArgumentException("a " + width + "×" + height + " RGB image holds " + 3L * width * height
                    + " bytes, got " + rgb.length);
    }

    /** Channel c (0 red, 1 green, 2 blue) of pixel (x, y), 0..255. */
    public int get(int x, int y, int c) { return rgb[3 * (y * width + x) + c] & 0xFF; }

    @Override public String toString() { return "RgbImage[" + width + "×" + height + "]"; }
}
