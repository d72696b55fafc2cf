package org.dit4j.server.engine;

import org.dit4j.server.sampling.ModelSampling;

/** A loaded diffusion transformer (the weights behind ComfyUI's MODEL value, before any patch). */
public interface DiffusionModel extends AutoCloseable {

    /** The file it was loaded from, for messages. */
    String name();

    /** Model family, e.g. {@code flux-dev}, {@code flux-schnell}, {@code flux-kontext}, {@code wan2.1-t2v-1.3B}. */
    String family();

    /** The sampling the checkpoint implies (Flux dev: ModelSamplingFlux shift 1.15; schnell: discrete flow shift 1). */
    ModelSampling defaultSampling();

    /** Latent channels the model denoises (16 for Flux). */
    int latentChannels();

    @Override default void close() {}
}
