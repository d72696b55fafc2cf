package org.dit4j.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.engine.Backends;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.flux.FluxModelFiles;
import org.dit4j.engine.flux.FluxModelResolver;
import org.dit4j.engine.flux.FluxPipeline;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.flux.FluxRequest;
import org.dit4j.engine.flux.GenerationMetadata;
import org.dit4j.engine.flux.ParallelFluxPipeline;
import org.dit4j.engine.parallel.ParallelConfig;
import org.dit4j.engine.parallel.ParallelVerification;
import org.dit4j.engine.parallel.Rendezvous;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.Images;
import org.dit4j.engine.image.Png;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.models.flux.lora.LoraSpec;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code dit4j generate}: Flux text-to-image and Kontext editing, Wan2.1 text-to-video (WanGenerate), from real checkpoints. */
@Command(name = "generate", mixinStandardHelpOptions = true, sortOptions = false,
        description = {"Generate images with Flux.1 (dev, schnell) or edit one with Flux.1 Kontext (--image);",
                "generate videos with Wan2.1 text-to-video (the model family is detected from --model).",
                "Without --model, FLUX.1-schnell is taken from the Hugging Face cache (downloaded when missing)."})
final class GenerateCommand implements Runnable, picocli.CommandLine.IExitCodeGenerator {

    @Option(names = "--model", paramLabel = "DIR|FILES|REPO", description = {"a diffusers pipeline folder, ComfyUI-style files "
            + "(transformer, clip_l, t5xxl, ae; comma-separated or repeated; or a folder of them), or a Hugging Face repo id "
            + "(org/name[@revision]). Default: " + FluxModelResolver.DEFAULT_REPO})
    List<String> model = new ArrayList<>();

    @Option(names = "--models-dir", paramLabel = "DIR", description = "folder with tokenizers/<name>/ for single-file text encoders "
            + "(default: the folders above the checkpoint files, as ComfyUI's models/)")
    Path modelsDir;

    @Option(names = {"-p", "--prompt"}, description = "what to draw (or, with --image, how to edit it); required unless --prompts")
    String prompt;

    @Option(names = "--prompts", paramLabel = "FILE", description = {"Flux: a text file with one prompt per line (empty lines "
            + "skipped): one image per prompt in one batch, image i from the i-th noise of --seed; with --dp D the images "
            + "spread over the D data-parallel groups of GPUs"})
    Path promptsFile;

    @Option(names = "--negative-prompt", description = "negative prompt for true CFG (used when --true-cfg > 1)")
    String negativePrompt;

    @Option(names = "--true-cfg", defaultValue = "1", description = "true CFG scale (1 = off; e.g. 4 with a negative prompt; doubles the work)")
    float trueCfg;

    @Option(names = {"-W", "--width"}, defaultValue = "0", description = "width in pixels, a multiple of 16 (default 1024; Kontext: from the image)")
    int width;

    @Option(names = {"-H", "--height"}, defaultValue = "0", description = "height in pixels, a multiple of 16 (default 1024; Kontext: from the image)")
    int height;

    @Option(names = "--steps", defaultValue = "0", description = "denoising steps (default: schnell 4, dev/Kontext 28)")
    int steps;

    @Option(names = "--guidance", defaultValue = "NaN", description = "distilled guidance of dev/Kontext (default 3.5, Kontext 2.5)")
    float guidance;

    @Option(names = "--seed", description = "noise seed (default: random, printed)")
    Long seed;

    @Option(names = "--batch", defaultValue = "1", description = "images per run")
    int batch;

    @Option(names = "--image", paramLabel = "REF.png", description = "reference image for Kontext editing (PNG)")
    Path image;

    @Option(names = "--no-kontext-resize", description = "use the --image at its own size (cut to a multiple of 16) instead of "
            + "resizing it to the closest Kontext resolution")
    boolean noKontextResize;

    @Option(names = "--save-reference", paramLabel = "PNG", description = "also write the Kontext reference as the model sees it (resized)")
    Path saveReference;

    @Option(names = "--t5-length", defaultValue = "0", description = "T5 tokens (default: dev/Kontext 512, schnell 256)")
    int t5Length;

    @Option(names = "--backend", defaultValue = "auto", description = "auto, cpu, cuda or cuda:N (default ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--dtype", defaultValue = "auto", description = "weights and activations: auto (bf16 on GPUs, f32 on the CPU), bf16, f32")
    String dtype;

    @Option(names = "--fp8", description = "keep fp8 transformer weights in fp8 (scaled) instead of converting them to bf16")
    boolean fp8;

    @Option(names = "--lora", paramLabel = "FILE[:STRENGTH]", description = {"merge a LoRA into the transformer with a strength "
            + "(default 1; e.g. style.safetensors:0.8); repeatable. Key styles: diffusers/PEFT, kohya, BFL/ComfyUI, OneTrainer, "
            + "LyCORIS, XLabs. fp8 weights a LoRA changes are kept as bf16"})
    List<String> lora = new ArrayList<>();

    @Option(names = "--lora-ignore-unknown", description = "apply the LoRA tensors that fit the transformer and skip the rest "
            + "(text-encoder parts, unknown keys, blocks the model lacks) instead of stopping with an error")
    boolean loraIgnoreUnknown;

    @Option(names = "--vae-tile", defaultValue = "0", paramLabel = "PIXELS", description = "decode in tiles of this size (e.g. 1024) to save memory")
    int vaeTile;

    @Option(names = "--no-compile", description = "run every step eagerly instead of replaying a CUDA graph")
    boolean noCompile;

    @Option(names = "--cache", paramLabel = "SPEC", description = {"step cache: none, teacache[:thresh] (Flux 0.4; Wan 1.3B 0.08, "
            + "14B 0.2), teacache-ret[:thresh] (Wan only: 0.1, 14B 0.2), magcache[:thresh,K,retention] (Flux 0.24,5,0.1; Wan 1.3B "
            + "0.12,4,0.2, 14B 0.24,6,0.2), fbcache[:thresh] (Flux 0.08; Wan: give it); or magcache-calibrate[=OUT.json] to record "
            + "a MagCache γ table for this step count (default file: magcache-<model>-<steps>.json next to the output)"})
    String cache;

    @Option(names = "--cache-on-host", description = "keep the step cache's residuals in pinned host memory instead of on "
            + "the GPU (for long videos or CFG short of GPU memory; two PCIe copies per step)")
    boolean cacheOnHost;

    @Option(names = "--mag-ratios", paramLabel = "JSON", description = "MagCache γ table from --cache magcache-calibrate, used "
            + "with --cache magcache instead of MagCache4FLUX's 28-step table")
    Path magRatios;

    @Option(names = {"-o", "--out"}, defaultValue = "out.png", description = "output PNG (batches: NAME-1.png, NAME-2.png, …); for Wan a video: .mp4 (H.264, the default out.mp4) or .webp (lossless animated WebP)")
    Path out;

    @Option(names = "--runs", defaultValue = "1", description = "generate this many times in one process, keeping the models "
            + "loaded (benchmarking: run 1 includes loading, kernel compilation and CUDA-graph capture; the last run is warm)")
    int runs;

    // ---- multi-GPU Flux (ParallelFluxPipeline) and Wan2.1 (ParallelWanPipeline)
    @Option(names = "--gpus", paramLabel = "N", description = {"run the denoising on N ranks (GPUs cuda:0..N-1; with --backend cpu, "
            + "N in-process CPU ranks); alone it means Ulysses over all N when the head count allows (else the rest as ring)"})
    Integer gpus;

    @Option(names = "--ulysses", paramLabel = "U", description = "Ulysses (all-to-all) sequence-parallel degree (default 1)")
    Integer ulysses;

    @Option(names = "--ring", paramLabel = "R", description = "ring-attention sequence-parallel degree (default 1)")
    Integer ring;

    @Option(names = "--cfg-parallel", paramLabel = "C", description = "2: the CFG branches on different ranks (Flux: true CFG, "
            + "needs --negative-prompt and --true-cfg > 1; Wan: --guidance > 1); default 1")
    Integer cfgParallel;

    @Option(names = "--dp", paramLabel = "D", description = "data-parallel degree: the --batch split over D groups (default 1)")
    Integer dp;

    @Option(names = "--verify-parallel", description = {"run the request on one device and on the mesh, print max |Δ| and rel-L2 "
            + "of the final latent per rank, and exit with status 1 above the dtype's tolerance (f32 1e-5, bf16 1e-2); writes no image"})
    boolean verifyParallel;

    // ---- several nodes (hosts) for one mesh
    @Option(names = "--nnodes", paramLabel = "N", description = {"split the mesh (--gpus/--ulysses/--ring/--cfg-parallel/--dp give the "
            + "WHOLE mesh) over N processes, e.g. hosts: each runs world size / N ranks on its GPUs cuda:0.. (choose them with "
            + "CUDA_VISIBLE_DEVICES) and the whole pipeline around the loop; start every node with the same options and --seed, "
            + "differing only in --node-rank; node 0 writes the image(s). Default 1"})
    Integer nnodes;

    @Option(names = "--node-rank", paramLabel = "R", description = "this node's rank in [0, --nnodes); node 0 listens on --master-addr")
    Integer nodeRank;

    @Option(names = "--master-addr", paramLabel = "HOST:PORT", description = "where node 0 listens for the other nodes (a small TCP "
            + "rendezvous that hands out the ranks and the NCCL id), e.g. 10.0.0.1:29500; every node gives the same")
    String masterAddr;

    @Option(names = "--rendezvous-timeout", paramLabel = "SECONDS", defaultValue = "300", description = "how long the nodes wait for "
            + "each other at the rendezvous (default ${DEFAULT-VALUE})")
    int rendezvousTimeout;

    // ---- Wan2.1 video options (WanGenerate)
    @Option(names = "--frames", defaultValue = "0", description = "Wan: video frames, 4n+1 (default 81)")
    int frames;

    @Option(names = "--fps", defaultValue = "16", description = "Wan: frames per second of the MP4 (default ${DEFAULT-VALUE})")
    int fps;

    @Option(names = "--frames-dir", paramLabel = "DIR", description = "Wan: also write every frame as DIR/frame_00000.png, …")
    Path framesDir;

    @Option(names = "--shift", defaultValue = "NaN", description = "Wan: flow shift (default: the diffusers folder's scheduler, else 5.0)")
    double shift;

    @Option(names = "--sampler", defaultValue = "unipc", description = "Wan: unipc (default) or euler")
    String sampler;

    /** The prompts of --prompts (null without it), after checking that exactly one of --prompt / --prompts is given. */
    List<String> prompts() {
        if ((prompt == null) == (promptsFile == null))
            throw new IllegalArgumentException(prompt == null ? "give what to draw with --prompt TEXT (or --prompts FILE, one prompt per line)"
                    : "give either --prompt or --prompts, not both");
        if (promptsFile == null) return null;
        List<String> lines;
        try {
            lines = java.nio.file.Files.readAllLines(promptsFile).stream().map(String::strip).filter(l -> !l.isEmpty()).toList();
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("--prompts " + promptsFile + ": cannot read it (" + e.getMessage() + ")", e);
        }
        if (lines.isEmpty()) throw new IllegalArgumentException("--prompts " + promptsFile + " has no prompt (one per line, empty lines skipped)");
        if (batch != 1)
            throw new IllegalArgumentException("--batch " + batch + " draws several images of one prompt; with --prompts every line is one "
                    + "image (" + lines.size() + " here): leave --batch out");
        return lines;
    }

    @Override public void run() {
        if (org.dit4j.engine.wan.WanModelResolver.isWan(model, HfHub.fromEnvironment())) {
            if (promptsFile != null)
                throw new IllegalArgumentException("--prompts (a batch of prompts) is for Flux models; for Wan give one --prompt");
            if (prompt == null) throw new IllegalArgumentException("give what to draw with --prompt TEXT");
            if (nnodes != null && nnodes > 1)
                throw new IllegalArgumentException("--nnodes runs a Flux mesh over several nodes; Wan models run in one process");
            new WanGenerate(this).run();
            return;
        }
        if (runs < 1) throw new IllegalArgumentException("--runs must be at least 1, got " + runs);
        PrintStream err = System.err;
        long started = System.nanoTime();
        long seedValue = seed != null ? seed : new SecureRandom().nextLong() & 0x7FFFFFFFFFFFL;
        if (negativePrompt != null && trueCfg <= 1f)
            err.println("note: --negative-prompt is used only with --true-cfg > 1 (e.g. --true-cfg 4)");
        CacheOption caching = CacheOption.parse(cache, magRatios);
        RgbImage reference = image == null ? null : Images.read(image);
        HfHub hub = HfHub.fromEnvironment();
        FluxModelResolver resolver = new FluxModelResolver(hub, modelsDir, new DownloadBar(err));
        FluxModelFiles files = resolver.resolve(model);
        err.println("model:   " + files.description());
        try (Ops ops = Backends.open(backend)) {
            FluxPipeline.Settings s = FluxPipeline.Settings.defaults(ops).withKeepLoaded(runs > 1).withVaeTile(vaeTile)
                    .withCudaGraphs(!noCompile && !ops.device().isCpu()).withCacheOnHost(cacheOnHost);
            switch (dtype.toLowerCase(Locale.ROOT)) {
                case "auto" -> { }
                case "bf16" -> s = s.withDtype(DType.BF16);
                case "f32", "fp32" -> s = s.withDtype(DType.F32);
                default -> throw new IllegalArgumentException("--dtype must be auto, bf16 or f32, got " + dtype);
            }
            if (fp8) s = s.withWeightDtype(DType.F8_E4M3);
            if (noKontextResize) s = s.withKontextResize(false);
            err.println("backend: " + ops.name() + ", " + s.weightDtype() + " weights, " + s.activation() + " activations");
            List<LoraSpec> loras = lora.stream().map(LoraSpec::parse).toList();
            try (FluxPipeline pipe = new FluxPipeline(ops, files, s, loras, loraIgnoreUnknown)) {
                for (String line : pipe.loraSummary()) err.println(line.startsWith("note: ") ? line : "lora:    " + line);
                ParallelConfig mesh = parallelConfig(gpus, ulysses, ring, cfgParallel, dp, pipe.transformerConfig().numHeads());
                if (verifyParallel && mesh == null)
                    throw new IllegalArgumentException("--verify-parallel compares one device with a mesh: give the mesh with --gpus N "
                            + "(and --ulysses/--ring/--cfg-parallel/--dp)");
                if (mesh != null && caching.calibrate())
                    throw new IllegalArgumentException("--cache magcache-calibrate runs on one device; leave out --gpus/--ulysses/--ring/--cfg-parallel/--dp");
                MultiNode nodes = multiNode(nnodes, nodeRank, masterAddr, rendezvousTimeout, mesh, verifyParallel, seed);
                if (mesh != null && !(caching.policy() instanceof NoCache) && (mesh.cfg() > 1 || mesh.dp() > 1))
                    throw new IllegalArgumentException("--cache on several GPUs needs sequence parallelism only (--ulysses/--ring), got "
                            + mesh + "; use --cfg-parallel 1 --dp 1 with --cache, or leave --cache out");
                List<String> many = prompts();
                FluxRequest req = new FluxRequest(many == null ? prompt : many.getFirst(), negativePrompt, trueCfg, width, height, steps,
                        guidance, seedValue, batch, reference, t5Length);
                if (many != null) req = req.withPrompts(many);
                FluxRequest full = pipe.withDefaults(req);
                err.printf(Locale.ROOT, "flux %s%s: %d×%d, %d steps%s, seed %d%s%n", pipe.kind(), reference != null ? " (Kontext)" : "",
                        full.width(), full.height(), full.steps(), pipe.transformerConfig().guidanceEmbed() ? ", guidance " + full.guidance() : "",
                        seedValue, batch > 1 ? ", batch " + batch : "");
                if (saveReference != null) {
                    if (reference == null) throw new IllegalArgumentException("--save-reference needs --image");
                    Png.write(saveReference, pipe.scaledReference(reference), Map.of());
                }
                MagCacheCalibration calibration = caching.calibrate() ? pipe.magCacheCalibration(req) : null;
                if (calibration != null) err.println("cache:   recording a MagCache γ table (" + calibration.id() + ", every step computed)");
                else if (!(caching.policy() instanceof NoCache)) err.println("cache:   " + caching.policy().describe());
                ParallelFluxPipeline par = null;
                if (nodes != null) {
                    ParallelFluxPipeline.check(pipe, mesh, req);
                    Rendezvous.Result rv = nodes.join(fingerprint(mesh, ops, s, full, loras), ops.device().isCpu(), err);
                    par = ops.device().isCpu() ? ParallelFluxPipeline.cpuNode(pipe, mesh, rv) : ParallelFluxPipeline.cudaNode(pipe, mesh, rv);
                    par.check(req);
                    err.println("mesh:    " + mesh + " (" + mesh.worldSize() + (ops.device().isCpu() ? " CPU ranks" : " GPUs") + " on "
                            + nodes.nnodes() + " nodes; this is " + rv + "; every node encodes the text and decodes)");
                } else if (mesh != null) {
                    par = ops.device().isCpu() ? ParallelFluxPipeline.local(pipe, mesh) : ParallelFluxPipeline.cuda(pipe, mesh);
                    par.check(req);
                    err.println("mesh:    " + mesh + " (" + mesh.worldSize() + (ops.device().isCpu() ? " CPU ranks" : " GPUs")
                            + "; text encoders and VAE on rank 0)");
                }
                if (mesh != null) {
                    if (!ops.device().isCpu() && !"0".equals(System.getenv("NCCL_NVLS_ENABLE")))
                        err.println("note: NCCL_NVLS_ENABLE is not 0; dit4j never uses NVLink multicast, set NCCL_NVLS_ENABLE=0 "
                                + "on shared machines");
                }
                if (verifyParallel) {
                    try (ParallelFluxPipeline p = par) {
                        ParallelVerification.Verification v = p.verify(req, new Bar(err));
                        System.out.print(v.summary());
                        double tol = p.tolerance();
                        boolean ok = v.within(tol);
                        System.out.printf(Locale.ROOT, "verify-parallel: %s (tolerance rel-L2 %.0e for %s)%n", ok ? "OK" : "FAILED", tol,
                                s.activation());
                        if (!ok) exitCode = 1;
                    }
                    return;
                }
                FluxPipeline.Result result = null;
                try (ParallelFluxPipeline p = par) {
                    for (int run = 1; run <= runs; run++) {
                        long r0 = System.nanoTime();
                        result = p != null
                                ? (caching.policy() instanceof NoCache ? p.generate(req, new Bar(err))
                                        : p.generate(req, new Bar(err), () -> CacheOption.parse(cache, magRatios).policy()))
                                : pipe.generate(req, new Bar(err), caching.policy(), run == 1 ? calibration : null);
                        if (runs > 1) {
                            err.printf(Locale.ROOT, "run %d of %d:%n", run, runs);
                            summary(err, result, 0, (System.nanoTime() - r0) / 1e9);
                        }
                    }
                }
                Map<String, String> text = GenerationMetadata.chunks(files, result, modelName(), image == null ? null : image.getFileName().toString(),
                        pipe.transformerConfig().guidanceEmbed());
                if (!loras.isEmpty()) text.put("parameters", text.get("parameters") + ", LoRAs: " + String.join(", ",
                        loras.stream().map(l -> l.file().getFileName() + ":" + l.strength()).toList()));
                long w0 = System.nanoTime();
                List<Path> written = new ArrayList<>();
                if (nodes != null && nodes.nodeRank() != 0) {
                    err.println("node " + nodes.nodeRank() + " of " + nodes.nnodes() + ": done; node 0 writes the image(s)");
                    summary(err, result, 0, (System.nanoTime() - started) / 1e9);
                    return;
                }
                for (int i = 0; i < result.images().size(); i++) {
                    Path p = result.images().size() == 1 ? out : numbered(out, i + 1);
                    Map<String, String> chunks = text;
                    if (result.request().prompts() != null) {      // a batch of prompts: each image names its own
                        FluxPipeline.Result one = new FluxPipeline.Result(result.images(), result.request().withPrompt(result.request().promptOf(i)),
                                result.schedule(), result.stageSeconds(), result.peakDeviceBytes(), result.usedCudaGraph(), result.latents(), result.cache());
                        chunks = GenerationMetadata.chunks(files, one, modelName(), image == null ? null : image.getFileName().toString(),
                                pipe.transformerConfig().guidanceEmbed());
                        if (!loras.isEmpty()) chunks.put("parameters", chunks.get("parameters") + ", LoRAs: " + String.join(", ",
                                loras.stream().map(l -> l.file().getFileName() + ":" + l.strength()).toList()));
                    }
                    Png.write(p, result.images().get(i), chunks);
                    written.add(p);
                }
                double writeS = (System.nanoTime() - w0) / 1e9;
                summary(err, result, writeS, (System.nanoTime() - started) / 1e9);
                if (result.cache() != null) err.println(result.cache().summary());
                if (calibration != null) {
                    Path f = caching.calibrationFile(out, calibration.id());
                    calibration.writeJson(f);
                    err.println("MagCache γ table (" + calibration.id() + ") written to " + f + "; use it with --cache magcache --mag-ratios " + f);
                }
                for (Path p : written) System.out.println(p);
            }
        }
    }

    /** Status for the process: 1 when {@code --verify-parallel} found the mesh beyond the tolerance. */
    int exitCode;

    /**
     * The mesh the options ask for, or null for one device: {@code --gpus} alone → Ulysses over all when the head count
     * allows ({@link ParallelFluxPipeline#forGpus}); explicit degrees (missing ones 1) must multiply to {@code --gpus} when
     * it is given. Errors name the option to change.
     */
    static ParallelConfig parallelConfig(Integer gpus, Integer ulysses, Integer ring, Integer cfg, Integer dp, int heads) {
        return parallelConfig(gpus, ulysses, ring, cfg, dp, heads, "the Flux transformer");
    }

    /** {@link #parallelConfig(Integer, Integer, Integer, Integer, Integer, int)} for a model named {@code model} in messages. */
    static ParallelConfig parallelConfig(Integer gpus, Integer ulysses, Integer ring, Integer cfg, Integer dp, int heads, String model) {
        if (gpus == null && ulysses == null && ring == null && cfg == null && dp == null) return null;
        ParallelConfig c;
        try {
            if (ulysses == null && ring == null && cfg == null && dp == null) {
                c = ParallelFluxPipeline.forGpus(gpus, heads);
            } else {
                c = new ParallelConfig(or1(dp), or1(cfg), or1(ring), or1(ulysses));
                if (gpus != null) c.checkWorldSize(gpus);
            }
            c.checkHeads(model, heads);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--gpus/--ulysses/--ring/--cfg-parallel/--dp: " + e.getMessage(), e);
        }
        return c.worldSize() == 1 ? null : c;
    }

    /** {@code --nnodes/--node-rank/--master-addr}, checked: this process is node {@code nodeRank} of {@code nnodes}. */
    record MultiNode(int nnodes, int nodeRank, Rendezvous.Address master, Duration timeout, ParallelConfig mesh) {
        /** The rendezvous with the other nodes; node 0 makes the id (NCCL's on GPUs, random bytes on the CPU). */
        Rendezvous.Result join(String fingerprint, boolean cpu, PrintStream err) {
            err.println("nodes:   node " + nodeRank + " of " + nnodes + (nodeRank == 0 ? ", listening on " : ", joining node 0 at ") + master
                    + " (waits up to " + timeout.toSeconds() + " s for the other nodes)");
            if (cpu)
                err.println("note: --backend cpu with --nnodes runs the nodes as threads of ONE process (tests); separate processes need GPUs");
            Rendezvous.Node me = new Rendezvous.Node(nnodes, nodeRank, mesh.worldSize() / nnodes, mesh.worldSize(), fingerprint);
            return Rendezvous.join(master, me, cpu ? ParallelFluxPipeline::cpuNodeId : () -> org.dit4j.cuda.Nccl.get().uniqueId(), timeout);
        }
    }

    /**
     * The node options, checked against the mesh, or null for one process: {@code --nnodes} > 1 needs {@code --node-rank},
     * {@code --master-addr}, a mesh whose world size it divides, and {@code --seed} (every node draws the noise itself);
     * {@code --verify-parallel} is refused (it needs every rank in one process).
     */
    static MultiNode multiNode(Integer nnodes, Integer nodeRank, String masterAddr, int timeoutSeconds, ParallelConfig mesh,
                               boolean verify, Long seed) {
        if (nnodes == null || nnodes == 1) {
            if (nodeRank != null && nodeRank != 0 || masterAddr != null)
                throw new IllegalArgumentException("--node-rank and --master-addr place this process among several nodes: give --nnodes N "
                        + "(N > 1) too, or leave them out");
            return null;
        }
        if (nnodes < 1) throw new IllegalArgumentException("--nnodes must be at least 1, got " + nnodes);
        if (nodeRank == null)
            throw new IllegalArgumentException("--nnodes " + nnodes + " needs --node-rank R (0 on the node that listens at --master-addr, "
                    + "1.." + (nnodes - 1) + " on the others)");
        if (nodeRank < 0 || nodeRank >= nnodes)
            throw new IllegalArgumentException("--node-rank must be in [0, " + nnodes + ") for --nnodes " + nnodes + ", got " + nodeRank);
        if (masterAddr == null)
            throw new IllegalArgumentException("--nnodes " + nnodes + " needs --master-addr HOST:PORT, where node 0 listens (the same on every node)");
        Rendezvous.Address master = Rendezvous.Address.parse(masterAddr);
        if (mesh == null)
            throw new IllegalArgumentException("--nnodes splits a mesh over nodes: give the WHOLE mesh with --gpus N or --ulysses/--ring/"
                    + "--cfg-parallel/--dp (e.g. --nnodes 2 --ulysses 2 runs one rank per node)");
        if (mesh.worldSize() % nnodes != 0)
            throw new IllegalArgumentException("the mesh " + mesh + " has " + mesh.worldSize() + " ranks, which --nnodes " + nnodes
                    + " does not divide; every node runs world size / nnodes ranks, so choose --nnodes dividing " + mesh.worldSize());
        if (verify)
            throw new IllegalArgumentException("--verify-parallel runs the request on one device and on every rank of the mesh in one "
                    + "process, which a mesh over --nnodes " + nnodes + " is not; verify the mesh on one host without --nnodes");
        if (seed == null)
            throw new IllegalArgumentException("--nnodes " + nnodes + " needs --seed: every node draws the noise itself, so all must use the "
                    + "same seed");
        if (timeoutSeconds < 1) throw new IllegalArgumentException("--rendezvous-timeout must be at least 1 second, got " + timeoutSeconds);
        return new MultiNode(nnodes, nodeRank, master, Duration.ofSeconds(timeoutSeconds), mesh);
    }

    /**
     * What every node must agree on: the mesh and every option that changes the numbers (prompts as hashes). The
     * rendezvous compares it and names the keys that differ.
     */
    private String fingerprint(ParallelConfig mesh, Ops ops, FluxPipeline.Settings s, FluxRequest full, List<LoraSpec> loras) {
        Map<String, Object> f = new java.util.LinkedHashMap<>();
        f.put("mesh", mesh);
        f.put("backend", ops.device().isCpu() ? "cpu, nodes in one process only (this process " + ParallelFluxPipeline.cpuProcess() + ")"
                : "cuda");
        f.put("model", modelName().replaceAll(".*/", ""));
        f.put("weights", s.weightDtype() + "/" + s.activation());
        f.put("lora", loras.stream().map(l -> l.file().getFileName() + ":" + l.strength()).toList());
        f.put("prompt", digest(full.prompts() == null ? full.prompt() : String.join("\n", full.prompts())));
        f.put("negative-prompt", full.negativePrompt() == null ? "-" : digest(full.negativePrompt()));
        f.put("true-cfg", full.trueCfgScale());
        f.put("size", full.width() + "x" + full.height());
        f.put("steps", full.steps());
        f.put("guidance", full.guidance());
        f.put("seed", full.seed());
        f.put("batch", full.batch());
        f.put("t5-length", full.t5Length());
        f.put("image", image == null ? "-" : image.getFileName() + " " + full.reference().width() + "x" + full.reference().height());
        f.put("cache", cache == null ? "none" : cache);
        f.put("runs", runs);
        return Rendezvous.fingerprint(f);
    }

    private static String digest(String text) {
        try {
            byte[] h = java.security.MessageDigest.getInstance("SHA-256").digest(text.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return "sha256:" + java.util.HexFormat.of().formatHex(h, 0, 6) + " (" + text.length() + " chars)";
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override public int getExitCode() { return exitCode; }

    private static int or1(Integer v) { return v == null ? 1 : v; }

    private String modelName() {
        if (model.isEmpty()) return FluxModelResolver.DEFAULT_REPO;
        List<String> names = new ArrayList<>();
        for (String m : model) for (String part : m.split(",")) {
            Path p = Path.of(part.strip());
            names.add(Files.exists(p) && p.getFileName() != null ? p.getFileName().toString() : part.strip());
        }
        return String.join(", ", names);
    }

    private static Path numbered(Path out, int i) {
        String n = out.getFileName().toString();
        int dot = n.lastIndexOf('.');
        String stem = dot > 0 ? n.substring(0, dot) : n, ext = dot > 0 ? n.substring(dot) : ".png";
        return out.resolveSibling(stem + "-" + i + ext);
    }

    private static void summary(PrintStream err, FluxPipeline.Result r, double writeS, double totalS) {
        err.println("summary:");
        for (Map.Entry<String, Double> e : r.stageSeconds().entrySet())
            err.printf(Locale.ROOT, "  %-20s %8.2f s%n", e.getKey(), e.getValue());
        err.printf(Locale.ROOT, "  %-20s %8.2f s%n", "write PNG", writeS);
        err.printf(Locale.ROOT, "  %-20s %8.2f s%n", "total", totalS);
        double denoise = r.stageSeconds().getOrDefault("denoise", Double.NaN);
        err.printf(Locale.ROOT, "  %d steps, %.2f it/s%s%n", r.request().steps(), r.request().steps() / denoise,
                r.usedCudaGraph() ? " (CUDA graph)" : "");
        if (r.peakDeviceBytes() >= 0) err.printf(Locale.ROOT, "  peak GPU memory      %8.2f GB%n", r.peakDeviceBytes() / 1e9);
        long rss = peakRssBytes();
        if (rss > 0) err.printf(Locale.ROOT, "  peak host memory     %8.2f GB (resident)%n", rss / 1e9);
    }

    /** VmHWM of this process (Linux), or −1. */
    static long peakRssBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        } catch (IOException | RuntimeException ignored) {
            // not Linux: no figure
        }
        return -1;
    }

    /** The progress bar: stage names, then "denoise [####----] 7/28 2.31 it/s ETA 9s" redrawn in place. */
    static final class Bar implements FluxProgress {
        private final PrintStream err;

        Bar(PrintStream err) { this.err = err; }

        @Override public void stage(String name) {
            if (!name.equals("denoise")) err.println("  " + name + " …");
        }

        @Override public void step(int done, int total, double seconds) {
            int width = 24, filled = (int) Math.round((double) width * done / total);
            double rate = done / seconds, eta = (total - done) / rate;
            err.printf(Locale.ROOT, "\r  denoise [%s%s] %d/%d  %.2f it/s  ETA %s   ", "#".repeat(filled), "-".repeat(width - filled),
                    done, total, rate, done == total ? "0s" : formatSeconds(eta));
            if (done == total) err.println();
            err.flush();
        }

        @Override public void note(String message) { err.println("note: " + message); }
    }

    /** Download progress, one line per file, redrawn in place. */
    static final class DownloadBar implements HfHub.Listener {
        private final PrintStream err;
        private String current;

        DownloadBar(PrintStream err) { this.err = err; }

        @Override public void progress(String repo, String file, long done, long total) {
            if (!file.equals(current)) {
                if (current != null) err.println();
                current = file;
            }
            err.printf(Locale.ROOT, "\r  download %s/%s %.1f%s MB   ", repo, file, done / 1e6, total > 0 ? String.format(Locale.ROOT, " / %.1f", total / 1e6) : "");
            if (total > 0 && done >= total) {
                err.println();
                current = null;
            }
            err.flush();
        }
    }

    private static String formatSeconds(double s) {
        if (!Double.isFinite(s)) return "?";
        long t = Math.round(s);
        return t >= 60 ? (t / 60) + "m" + (t % 60) + "s" : t + "s";
    }
}
