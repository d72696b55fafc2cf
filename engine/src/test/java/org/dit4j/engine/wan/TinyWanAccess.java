package org.dit4j.engine.wan;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.flux.TinyFluxAccess;

/** {@link TinyWan}'s files for tests of other modules (the server): the same tiny random Wan2.1 model set. */
public final class TinyWanAccess {
    private TinyWanAccess() {}

    /**
     * ComfyUI-style files under {@code models}: diffusion_models/wan-tiny.safetensors (original names under
     * {@code model.diffusion_model.}), vae/wan-vae-tiny.safetensors, text_encoders/umt5-tiny.safetensors and
     * tokenizers/umt5-xxl/; returns {@code models}.
     */
    public static Path writeFiles(Path models, long seed) throws IOException { return TinyWan.writeFiles(models, seed); }

    /** A diffusers folder of the tiny model with 4 attention heads (for meshes with Ulysses 2 or 4); returns {@code dir}. */
    public static Path writeDiffusers4Heads(Path dir, long seed) throws IOException {
        return TinyWan.writeDiffusers(dir, seed, TinyWan.TRANSFORMER_4_HEADS);
    }

    /** The transformer of {@link #writeFiles} (same seed) with its original names and no prefix, written to {@code file}. */
    public static void writeUnprefixedTransformer(Path file, long seed) throws IOException {
        Map<String, Tensor> t = TinyWan.transformer(seed);
        TinyFluxAccess.tensors(file, t);
    }
}
