/**
 * 8-bit RGB images without java.desktop: {@link org.dit4j.engine.image.Png} (encode with text chunks, decode every
 * standard PNG), {@link org.dit4j.engine.image.ImageResize} (Pillow's Lanczos in its fixed-point arithmetic) and
 * {@link org.dit4j.engine.image.Images#read} (format by content; PNG only, other formats get a conversion hint).
 */
package org.dit4j.engine.image;
