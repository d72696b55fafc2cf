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

    /** The pieces of the synthetic T5-style Unigram tokenizer (pad 0, EOS 1, unk 2). */
    public static java.util.List<String> t5Pieces() { return TinyFlux.t5Pieces(); }

    /** Writes the synthetic T5-style tokenizer (tokenizer.json, special_tokens_map.json, tokenizer_config.json) into dir. */
    public static void writeT5Tokenizer(Path dir, java.util.List<String> pieces) throws IOException { TinyFlux.writeT5Tokenizer(dir, pieces); }

    /** Writes a safetensors file of the tensors (closing them). */
    public static void tensors(Path file, java.util.Map<String, org.dit4j.core.tensor.Tensor> t) throws IOException { TinyFlux.tensors(file, t); }

    /** Writes a UTF-8 text file (creating its folder). */
    public static void write(Path file, String text) throws IOException { TinyFlux.write(file, text); }
}
