package org.dit4j.engine.image;

/** An image file that dit4j cannot read: not an image, damaged, or of a format it does not decode. */
public class ImageFormatException extends RuntimeException {
    public ImageFormatException(String message) { super(message); }
}
