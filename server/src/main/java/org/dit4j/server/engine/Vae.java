package org.dit4j.server.engine;

/** A loaded VAE (ComfyUI's VAE value). Latents are in the model's raw latent space (before the latent-format shift). */
public interface Vae extends AutoCloseable {

    /** Latent channels (16 for Flux). */
    int latentChannels();

    /** Spatial down-scale factor between pixels and latent cells (8 for Flux). */
    int downscale();

    /** Decodes [B, C, h, w] to an image batch [B, h·f, w·f, 3] in 0..1 (VAEDecode). */
    ImageBatch decode(Latent latent);

    /** Decodes tile by tile (VAEDecodeTiled); sizes are in pixels. */
    ImageBatch decodeTiled(Latent latent, int tileSize, int overlap);

    /** Encodes an image batch (RGB, 0..1, sides multiples of {@link #downscale()}) to a latent (VAEEncode). */
    Latent encode(ImageBatch images);

    @Override default void close() {}
}
