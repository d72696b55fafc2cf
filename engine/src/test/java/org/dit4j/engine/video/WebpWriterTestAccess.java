package org.dit4j.engine.video;

import java.nio.file.Path;

/** Test helpers of {@link WebpWriterTest} for other modules' tests: the Pillow decode check. */
public final class WebpWriterTestAccess {
    private WebpWriterTestAccess() {}

    /** A Python with Pillow's WebP support (DIT4J_PYTHON, /tmp/tvenv/bin/python, python3), or null. */
    public static String python() { return WebpWriterTest.python(); }

    /** scripts/check/webp_decode_check.py of this checkout. */
    public static Path script() { return WebpWriterTest.script(); }
}
