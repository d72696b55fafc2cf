package org.dit4j.cli;

import org.dit4j.server.ComfyServer;
import org.dit4j.server.ServerConfig;
import org.dit4j.server.UnavailableEngine;
import org.dit4j.server.flux.FluxEngine;
import org.dit4j.server.preview.LatentPreview;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;

/** {@code dit4j serve}: the ComfyUI-compatible HTTP/WebSocket server. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve ComfyUI's API (POST /prompt, /queue, /history, /view, /upload/image, /object_info, WebSocket /ws) so ComfyUI "
                + "clients and API-format workflows run on dit4j. Binds 127.0.0.1 unless --listen says otherwise.")
final class ServeCommand implements Runnable {

    @Option(names = "--listen", arity = "0..1", fallbackValue = "0.0.0.0", defaultValue = "127.0.0.1",
            description = "address to bind (default ${DEFAULT-VALUE}); --listen alone binds 0.0.0.0 (all interfaces: set --token)")
    String listen;

    @Option(names = "--port", defaultValue = "8188", description = "TCP port (default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--models-dir", defaultValue = "models",
            description = "ComfyUI-style models folder: diffusion_models (or unet), text_encoders (or clip), vae, loras, checkpoints, tokenizers (default ${DEFAULT-VALUE})")
    Path modelsDir;

    @Option(names = {"--extra-model-paths-config"}, description = "ComfyUI extra_model_paths.yaml to honour (repeatable); ./extra_model_paths.yaml is read when present")
    List<Path> extraModelPaths = new ArrayList<>();

    @Option(names = "--output-dir", defaultValue = "output", description = "where SaveImage writes (default ${DEFAULT-VALUE})")
    Path outputDir;

    @Option(names = "--input-dir", defaultValue = "input", description = "where uploads go and LoadImage reads (default ${DEFAULT-VALUE})")
    Path inputDir;

    @Option(names = "--temp-dir", defaultValue = "temp", description = "where PreviewImage writes (default ${DEFAULT-VALUE})")
    Path tempDir;

    @Option(names = "--gpus", defaultValue = "1", description = "GPUs the engine may use; ParallelUNETLoader's default num_gpus (default ${DEFAULT-VALUE})")
    int gpus;

    @Option(names = "--backend", defaultValue = "auto", description = "where models run: auto (the GPU when one is usable, else the CPU), cpu, cuda or cuda:N (default ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--token", description = "require 'Authorization: Bearer TOKEN' on every request (WebSocket: ?token=); default: $DIT4J_TOKEN")
    String token;

    @Option(names = "--max-upload-size", defaultValue = "100", description = "largest upload / request body in MiB (default ${DEFAULT-VALUE})")
    double maxUploadMiB;

    @Option(names = "--disable-metadata", description = "do not write prompt/workflow text chunks into saved PNGs")
    boolean disableMetadata;

    @Option(names = "--enable-cors-header", arity = "0..1", fallbackValue = "*",
            description = "send Access-Control-Allow-Origin (default origin '*'); disables the same-origin check")
    String cors;

    @Option(names = {"--preview-method", "--preview"}, defaultValue = "latent2rgb",
            description = "step previews sent over the WebSocket while sampling: none, auto or latent2rgb (a latent→RGB projection, "
                    + "JPEG; auto = latent2rgb as ComfyUI's auto without TAESD) (default ${DEFAULT-VALUE})")
    String previewMethod;

    @Option(names = "--preview-size", defaultValue = "512", description = "previews are fitted into this many pixels square (default ${DEFAULT-VALUE})")
    int previewSize;

    @Override public void run() {
        String tok = token != null ? token : System.getenv("DIT4J_TOKEN");
        List<Path> extra = new ArrayList<>(extraModelPaths);
        Path local = Path.of("extra_model_paths.yaml");
        if (java.nio.file.Files.isRegularFile(local) && !extra.contains(local)) extra.add(local);
        ServerConfig cfg = new ServerConfig(listen, port, modelsDir, extra, outputDir, inputDir, tempDir, tok,
                (long) (maxUploadMiB * 1024 * 1024), gpus, disableMetadata, cors, LatentPreview.Method.parse(previewMethod), previewSize);
        FluxEngine flux = null;
        String unavailable = null;
        try {
            flux = FluxEngine.open(backend, modelsDir);
        } catch (RuntimeException | LinkageError e) {
            unavailable = "no inference backend could be opened (" + e.getMessage() + "); the API, validation and queue work, "
                    + "but loaders cannot load weights";
        }
        try {
            ComfyServer server = (flux != null ? new ComfyServer(cfg, flux) : new ComfyServer(cfg, new UnavailableEngine(unavailable))).start();
            if (flux != null) System.out.println("dit4j serve: Flux/Wan engine on " + flux.ops().name());
            else System.out.println("dit4j serve: WARNING: " + unavailable);
            String host = listen.contains(":") ? "[" + listen + "]" : listen;
            System.out.println("dit4j serve: ComfyUI API on http://" + host + ":" + server.port() + " (WebSocket /ws), models in "
                    + modelsDir.toAbsolutePath() + (tok == null ? "" : ", bearer token required"));
            if (tok == null && !isLoopback(listen))
                System.out.println("dit4j serve: WARNING: listening on " + listen + " without --token; anyone who can reach this port can run prompts");
            CountDownLatch stop = new CountDownLatch(1);
            FluxEngine engine = flux;
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                server.close();
                if (engine != null) engine.close();
                stop.countDown();
            }));
            stop.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.io.IOException e) {
            throw new IllegalStateException("cannot start the server: " + e.getMessage(), e);
        }
    }

    private static boolean isLoopback(String host) {
        return host.equals("127.0.0.1") || host.equals("localhost") || host.equals("::1");
    }
}
