package org.dit4j.server;

import org.dit4j.server.preview.LatentPreview;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * Options of {@code dit4j serve}.
 *
 * @param host            address to bind; 127.0.0.1 unless --listen says otherwise
 * @param port            TCP port; 0 picks a free one (tests)
 * @param modelsDir       ComfyUI-style models folder (diffusion_models/unet, text_encoders/clip, vae, loras, tokenizers, ...)
 * @param extraModelPaths ComfyUI extra_model_paths.yaml files to honour
 * @param outputDir       where SaveImage writes (type=output)
 * @param inputDir        where /upload/image writes and LoadImage reads (type=input)
 * @param tempDir         where PreviewImage writes (type=temp)
 * @param token           when not null, every request needs {@code Authorization: Bearer <token>} (WebSocket: {@code ?token=})
 * @param maxUploadBytes  largest request body / uploaded file accepted
 * @param gpus            GPUs the engine may use (ParallelUNETLoader's default)
 * @param disableMetadata SaveImage writes no prompt/workflow chunks
 * @param corsOrigin      when not null, sent as Access-Control-Allow-Origin (ComfyUI's --enable-cors-header)
 * @param previewMethod   step previews over the WebSocket ({@code --preview-method}: none, or latent2rgb JPEGs)
 * @param previewSize     previews are fitted into a square of this many pixels ({@code --preview-size}, default 512)
 */
public record ServerConfig(String host, int port, Path modelsDir, List<Path> extraModelPaths, Path outputDir, Path inputDir, Path tempDir,
                           String token, long maxUploadBytes, int gpus, boolean disableMetadata, String corsOrigin,
                           LatentPreview.Method previewMethod, int previewSize) {

    public static final long DEFAULT_MAX_UPLOAD = 100L << 20;

    public ServerConfig {
        Objects.requireNonNull(host, "host");
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--port must be 0..65535, got " + port);
        Objects.requireNonNull(modelsDir, "modelsDir");
        extraModelPaths = List.copyOf(extraModelPaths);
        Objects.requireNonNull(outputDir, "outputDir");
        Objects.requireNonNull(inputDir, "inputDir");
        Objects.requireNonNull(tempDir, "tempDir");
        if (token != null && token.isBlank()) throw new IllegalArgumentException("the bearer token must not be blank");
        if (maxUploadBytes < 1024) throw new IllegalArgumentException("max upload size must be at least 1 KiB, got " + maxUploadBytes);
        if (gpus < 1) throw new IllegalArgumentException("--gpus must be ≥ 1, got " + gpus);
        Objects.requireNonNull(previewMethod, "previewMethod");
        if (previewSize < 1 || previewSize > 16384) throw new IllegalArgumentException("--preview-size must be 1..16384, got " + previewSize);
    }

    /** Latent2rgb previews at ComfyUI's default size. */
    public ServerConfig(String host, int port, Path modelsDir, List<Path> extraModelPaths, Path outputDir, Path inputDir, Path tempDir,
                        String token, long maxUploadBytes, int gpus, boolean disableMetadata, String corsOrigin) {
        this(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin,
                LatentPreview.Method.LATENT2RGB, LatentPreview.DEFAULT_SIZE);
    }

    /** Loopback, port 8188, models/output/input/temp under {@code base}. */
    public static ServerConfig defaults(Path base) {
        return new ServerConfig("127.0.0.1", 8188, base.resolve("models"), List.of(), base.resolve("output"), base.resolve("input"),
                base.resolve("temp"), null, DEFAULT_MAX_UPLOAD, 1, false, null);
    }

    public ServerConfig withHost(String h) { return new ServerConfig(h, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withPort(int p) { return new ServerConfig(host, p, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withModelsDir(Path d) { return new ServerConfig(host, port, d, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withExtraModelPaths(List<Path> l) { return new ServerConfig(host, port, modelsDir, l, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withOutputDir(Path d) { return new ServerConfig(host, port, modelsDir, extraModelPaths, d, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withInputDir(Path d) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, d, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withTempDir(Path d) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, d, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withToken(String t) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, t, maxUploadBytes, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withMaxUploadBytes(long b) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, b, gpus, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withGpus(int g) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, g, disableMetadata, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withDisableMetadata(boolean b) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, b, corsOrigin, previewMethod, previewSize); }

    public ServerConfig withCorsOrigin(String o) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, o, previewMethod, previewSize); }

    public ServerConfig withPreview(LatentPreview.Method m, int size) { return new ServerConfig(host, port, modelsDir, extraModelPaths, outputDir, inputDir, tempDir, token, maxUploadBytes, gpus, disableMetadata, corsOrigin, m, size); }
}
