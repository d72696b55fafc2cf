package org.dit4j.server.engine;

import java.nio.file.Path;
import java.util.List;

/**
 * Loads weights for the loader nodes. Paths are already resolved inside the models folders. Implementations
 * throw with a message that names the file and what was wrong (format, missing tensors); the server reports it as
 * the node's {@code execution_error}.
 */
public interface ModelProvider {

    /**
     * Loads a diffusion model (UNETLoader, ParallelUNETLoader).
     * @param weightDtype ComfyUI's weight_dtype: {@code default}, {@code fp8_e4m3fn}, {@code fp8_e4m3fn_fast}, {@code fp8_e5m2}
     */
    DiffusionModel loadDiffusionModel(Path file, String weightDtype) throws Exception;

    /** Loads one or two text-encoder files for a model type ({@code flux}, {@code wan}, ...); device is {@code default} or {@code cpu}. */
    TextEncoder loadTextEncoder(List<Path> files, String type, String device) throws Exception;

    Vae loadVae(Path file) throws Exception;

    /** Loads a single file holding model, text encoders and VAE (CheckpointLoaderSimple). */
    Checkpoint loadCheckpoint(Path file) throws Exception;

    LoraWeights loadLora(Path file) throws Exception;

    /** Releases every model the provider keeps resident (POST /free {"unload_models": true}). */
    default void unloadModels() {}

    /** Devices for /system_stats. */
    List<DeviceInfo> devices();
}
