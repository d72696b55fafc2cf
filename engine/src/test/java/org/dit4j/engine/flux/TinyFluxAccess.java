package org.dit4j.engine.flux;

import java.io.IOException;
import java.nio.file.Path;

/** {@link TinyFlux} for tests of other packages. */
public final class TinyFluxAccess {
    private TinyFluxAccess() {}

    /** A tiny dev (guidance-embedding) diffusers pipeline in {@code dir}. */
    public static Path writeDiffusers(Path dir) throws IOException { return TinyFlux.writeDiffusers(dir, true, 11); }

    /**
     * The same tiny pipeline as ComfyUI-style files under {@code models} (dev with a guidance embedder, or schnell):
     * diffusion_models/flux-tiny.safetensors, text_encoders/{clip_l,t5xxl_tiny}.safetensors, vae/ae.safetensors and
     * tokenizers/{clip-vit-large-patch14,t5-v1_1-xxl}/. Returns {@code models}.
     */
    public static Path writeFiles(Path models, boolean guidance, long seed) throws IOException {
        return TinyFlux.writeFiles(models, guidance, seed);
    }
}
