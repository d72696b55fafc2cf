package org.dit4j.engine.flux;

import java.io.IOException;
import java.nio.file.Path;

/** {@link TinyFlux} for tests of other packages. */
public final class TinyFluxAccess {
    private TinyFluxAccess() {}

    /** A tiny dev (guidance-embedding) diffusers pipeline in {@code dir}. */
    public static Path writeDiffusers(Path dir) throws IOException { return TinyFlux.writeDiffusers(dir, true, 11); }
}
