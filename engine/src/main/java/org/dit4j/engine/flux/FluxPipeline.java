package org.dit4j.engine.flux;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CacheModel;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.cache.CacheTrace;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxPacking;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.FluxLoras;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.models.sampling.FlowMatchEuler;
import org.dit4j.models.sampling.FlowMatchSchedule;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.TextConditioning;
import org.dit4j.models.text.tokenizer.ClipTokenizer;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeImages;

/**
 * Flux.1 text-to-image (dev, schnell) and Kontext image editing, end to end (models.md §1):
 * <ol>
 *   <li>text: CLIP-L pooled vector y and T5 last hidden state txt ({@link TextConditioning}; T5 padded to 512 for
 *       dev/Kontext, 256 for schnell);</li>
 *   <li>noise: {@link TorchGenerator}(seed).randn([B, 16, 2·⌊H/16⌋, 2·⌊W/16⌋]) in float32 on the host — the latent
 *       diffusers and ComfyUI draw for the same seed — packed 2×2 into [B, N, 64];</li>
 *   <li>Kontext: the reference resized to its preferred resolution ({@link Kontext}), VAE-encoded (posterior mean,
 *       scaled), packed, and appended after the target tokens with position ids (1, row, col); only the first N
 *       outputs are kept;</li>
 *   <li>denoising: flow-matching Euler over the {@link FlowMatchSchedule} of the model (dynamic shift from the target's
 *       token count for dev/Kontext, none for schnell), guidance through the guidance embedding (dev/Kontext), optional
 *       true CFG with a negative prompt. The latent stays in float32 (as ComfyUI keeps it; diffusers' bf16 pipelines
 *       round it to bf16 between steps); the transformer sees it in its activation dtype. On a CUDA backend the
 *       transformer call is captured once as a CUDA graph after an eager first step and replayed with new inputs
 *       copied into the same tensors; on the CPU every step runs eagerly. With a step cache
 *       ({@link #generate(FluxRequest, FluxProgress, StepCache)}) the transformer runs in stages instead
 *       ({@link FluxCachedTransformer}): per step and CFG branch, embeddings and the policy's signal, then the remaining
 *       blocks or the cached residual, with one CUDA graph per branch and stage;</li>
 *   <li>VAE decode (optionally tiled) and 8-bit RGB as diffusers' image processor rounds it.</li>
 * </ol>
 * LoRAs given to the constructor are merged into the transformer weights as they load ({@link FluxLoras}).
 * Parts load on first use. With {@code keepLoaded} false (the CLI) every part is released as soon as its stage is
 * over, so the peak memory is that of the largest part rather than the sum. Call {@link #generate} from one thread,
 * outside any open {@link Scope}.
 */
public final class FluxPipeline implements AutoCloseable {

    /**
     * Precision and execution choices.
     *
     * @param weightDtype  transformer weights on the device (BF16 on GPUs, F32 on the CPU; F8_E4M3 keeps fp8 weights)
     * @param activation   transformer, text-encoder and VAE activations (BF16 on GPUs, F32 on the CPU)
     * @param vaeDtype     VAE weights and activations
     * @param cudaGraphs   replay the transformer from a CUDA graph (CUDA backends only)
     * @param keepLoaded   keep every part loaded between generations (false: release each after its stage)
     * @param vaeTile      tiled VAE decode with tiles of this many pixels (overlap a quarter), 0 = untiled
     * @param kontextResize resize a Kontext reference to its preferred resolution (BFL, diffusers' default); false: use
     *                     it at its own size, cut down to a multiple of 16 (diffusers {@code _auto_resize=False})
     * @param cacheOnHost  with a step cache, keep the cached residuals in pinned host memory instead of on the GPU
     *                     ({@link FluxCachedTransformer.Options#residualsOnHost})
     */
    public record Settings(DType weightDtype, DType activation, DType vaeDtype, boolean cudaGraphs, boolean keepLoaded, int vaeTile,
                           boolean kontextResize, boolean cacheOnHost) {
        /** BF16 and CUDA graphs on a GPU, F32 on the CPU; parts kept loaded; untiled decode; Kontext references resized. */
        public static Settings defaults(Ops ops) {
            boolean gpu = !ops.device().isCpu();
            DType d = gpu ? DType.BF16 : DType.F32;
            return new Settings(d, d, d, gpu, true, 0, true, false);
        }

        public Settings withDtype(DType d) { return new Settings(d, d, d, cudaGraphs, keepLoaded, vaeTile, kontextResize, cacheOnHost); }

        public Settings withKeepLoaded(boolean k) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, k, vaeTile, kontextResize, cacheOnHost); }

        public Settings withCudaGraphs(boolean g) { return new Settings(weightDtype, activation, vaeDtype, g, keepLoaded, vaeTile, kontextResize, cacheOnHost); }

        public Settings withVaeTile(int px) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, keepLoaded, px, kontextResize, cacheOnHost); }

        public Settings withWeightDtype(DType w) { return new Settings(w, activation, vaeDtype, cudaGraphs, keepLoaded, vaeTile, kontextResize, cacheOnHost); }

        public Settings withKontextResize(boolean r) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, keepLoaded, vaeTile, r, cacheOnHost); }

        public Settings withCacheOnHost(boolean h) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, keepLoaded, vaeTile, kontextResize, h); }
    }

    /**
     * What a generation produced.
     *
     * @param images       B images
     * @param request      the request with every default filled in
     * @param schedule     the σ schedule that ran
     * @param stageSeconds wall time per stage, in order
     * @param peakDeviceBytes peak bytes in use on the GPU during the call (−1 on the CPU)
     * @param usedCudaGraph whether the denoising steps were replayed from a CUDA graph
     * @param latents      the final packed latent [B, N, 64] (float32, scaled space), what diffusers returns for
     *                     {@code output_type="latent"}
     */
    public record Result(List<RgbImage> images, FluxRequest request, FlowMatchSchedule schedule, Map<String, Double> stageSeconds,
                         long peakDeviceBytes, boolean usedCudaGraph, float[] latents, CacheReport cache) {
        /** A result of a run without a step cache. */
        public Result(List<RgbImage> images, FluxRequest request, FlowMatchSchedule schedule, Map<String, Double> stageSeconds,
                      long peakDeviceBytes, boolean usedCudaGraph, float[] latents) {
            this(images, request, schedule, stageSeconds, peakDeviceBytes, usedCudaGraph, latents, null);
        }
    }

    /**
     * What the step cache did in a run (null in {@link Result} when the run used none).
     *
     * @param policy      the policy's {@link StepCache#describe()}
     * @param summary     computed and skipped steps per branch
     * @param trace       the signals and decisions call by call
     * @param calibration the recorded MagCache γ table, or null when the run did not calibrate
     */
    public record CacheReport(String policy, RunSummary summary, CacheTrace trace, MagCacheCalibration calibration) {}

    private static final AtomicLong REQUESTS = new AtomicLong();

    private final Ops ops;
    private final FluxModelFiles files;
    private final Settings settings;
    private final FluxConfig config;
    private final VaeConfig vaeConfig;
    private final List<LoraSpec> loras;
    private final boolean loraIgnoreUnknown;
    private final List<String> loraSummary;

    private FluxWeights fluxWeights;
    private FluxTransformer transformer;
    private AutoencoderKL vae;
    private T5Encoder t5;
    private ClipTextModel clip;
    private T5Tokenizer t5Tokenizer;
    private ClipTokenizer clipTokenizer;

    /** Reads the configurations (tensor headers only); weights load on first use. */
    public FluxPipeline(Ops ops, FluxModelFiles files, Settings settings) {
        this(ops, files, settings, List.of(), false);
    }

    /**
     * As {@link #FluxPipeline(Ops, FluxModelFiles, Settings)}, with LoRAs merged into the transformer weights when they
     * load ({@link FluxLoras}); the LoRA files are checked against the transformer here, before anything loads.
     * {@code loraIgnoreUnknown}: apply what fits and leave out keys that do not (listed in {@link #loraSummary}).
     */
    public FluxPipeline(Ops ops, FluxModelFiles files, Settings settings, List<LoraSpec> loras, boolean loraIgnoreUnknown) {
        this.ops = ops;
        this.files = files;
        this.settings = settings;
        this.loras = List.copyOf(loras);
        this.loraIgnoreUnknown = loraIgnoreUnknown;
        try (WeightSource w = WeightSource.open(files.transformer())) {
            this.config = FluxConfig.detect(w);
        }
        try (WeightSource w = WeightSource.open(files.vae())) {
            this.vaeConfig = AutoencoderKL.readConfig(w, files.vae());
        }
        if (config.inChannels() != 4 * vaeConfig.latentChannels())
            throw new CheckpointException("the transformer takes " + config.inChannels() + " packed channels (" + config.inChannels() / 4
                    + " latent channels), but the VAE " + files.vae() + " has " + vaeConfig.latentChannels()
                    + " latent channels: the two do not belong together");
        List<String> summary = new ArrayList<>();
        if (!this.loras.isEmpty()) {
            try (FluxLoras l = FluxLoras.open(this.loras, config, loraIgnoreUnknown)) {
                summary.addAll(l.describe());
                for (String n : l.notes()) summary.add("note: " + n);
            }
        }
        this.loraSummary = List.copyOf(summary);
    }

    /** One line per LoRA (file, strength, style, pairs, tensors changed), then notes on what was left out; empty without LoRAs. */
    public List<String> loraSummary() { return loraSummary; }

    public FluxConfig transformerConfig() { return config; }

    public VaeConfig vaeConfig() { return vaeConfig; }

    public FluxModelFiles files() { return files; }

    public Settings settings() { return settings; }

    public Ops ops() { return ops; }

    /** "schnell" (no guidance embedder) or "dev" (guidance embedder: dev and Kontext-dev). */
    public String kind() { return config.guidanceEmbed() ? "dev" : "schnell"; }

    /** Pixels per latent cell times the 2×2 packing: sizes are multiples of this (16 for Flux). */
    public int sizeMultiple() { return 2 * vaeConfig.downFactor(); }

    /**
     * The request with defaults: schnell 4 steps, T5 length 256; dev 28 steps, guidance 3.5, T5 512; Kontext 28 steps,
     * guidance 2.5, size of the scaled reference; text-to-image 1024×1024. Sizes are rounded down to multiples of 16.
     */
    public FluxRequest withDefaults(FluxRequest r) {
        boolean kontext = r.reference() != null, schnell = !config.guidanceEmbed();
        int w = r.width(), h = r.height();
        if (kontext && (w == 0 || h == 0)) {
            int[] wh = referenceSize(r.reference());
            if (w == 0) w = wh[0];
            if (h == 0) h = wh[1];
        }
        if (w == 0) w = 1024;
        if (h == 0) h = 1024;
        int m = sizeMultiple();
        if (w < m || h < m) throw new IllegalArgumentException("image size must be at least " + m + "×" + m + ", got " + w + "×" + h);
        w -= w % m;
        h -= h % m;
        int steps = r.steps() > 0 ? r.steps() : schnell ? 4 : 28;
        float g = !Float.isNaN(r.guidance()) ? r.guidance() : kontext ? 2.5f : 3.5f;
        int t5 = r.t5Length() > 0 ? r.t5Length() : schnell ? TextConditioning.T5_LENGTH_SCHNELL : TextConditioning.T5_LENGTH_DEV;
        if (r.batch() < 1) throw new IllegalArgumentException("batch must be at least 1, got " + r.batch());
        if (r.trueCfgScale() < 1f && r.negativePrompt() != null)
            throw new IllegalArgumentException("true CFG scale must be ≥ 1 (1 = off), got " + r.trueCfgScale());
        return new FluxRequest(r.prompt() == null ? "" : r.prompt(), r.negativePrompt(), r.trueCfgScale(), w, h, steps, g, r.seed(),
                r.batch(), r.reference(), t5, r.prompts());
    }

    // ------------------------------------------------------------------------------------------------ generate

    /** Runs one request (see the class comment) without a step cache. */
    public Result generate(FluxRequest request, FluxProgress progress) {
        return generate(request, progress, NoCache.INSTANCE, null);
    }

    /** Runs one request with a step cache (one policy may serve many requests: its state is kept per request). */
    public Result generate(FluxRequest request, FluxProgress progress, StepCache cache) {
        return generate(request, progress, cache, null);
    }

    /**
     * The step cache the {@code --cache} option selects, with Flux.1-dev's published constants (TeaCache4FLUX
     * coefficients, MagCache4FLUX 28-step γ table, ParaAttention's threshold); schnell and Kontext use them too, none
     * being published for those.
     */
    public StepCache stepCache(CacheSpec spec) { return spec.build(CacheModel.FLUX_DEV); }

    /**
     * A MagCache calibration for a request (after {@link #withDefaults}: its step count, 2 branches with true CFG),
     * named {@code flux-<kind>-<steps>}; pass it to {@link #generate(FluxRequest, FluxProgress, StepCache, MagCacheCalibration)}
     * with {@link NoCache}.
     */
    public MagCacheCalibration magCacheCalibration(FluxRequest request) {
        FluxRequest r = withDefaults(request);
        return new MagCacheCalibration("flux-" + kind() + "-" + r.steps(), r.steps(), r.trueCfg() ? 2 : 1);
    }

    /**
     * Runs one request with a step cache and, when {@code calibration} is not null, records a MagCache γ table in it
     * (every step computed: {@code cache} must be {@link NoCache}). A policy other than {@link NoCache}, or a
     * calibration, runs the transformer in stages ({@link FluxCachedTransformer}); {@link Result#cache()} tells what
     * was computed and skipped.
     */
    public Result generate(FluxRequest request, FluxProgress progress, StepCache cache, MagCacheCalibration calibration) {
        return generate(request, progress, cache, calibration, null);
    }

    /**
     * The denoising stage run elsewhere (on a mesh of ranks: {@link ParallelFluxPipeline}). It receives the inputs the
     * one-device loop gets, on this pipeline's device, and returns the final packed latent [B, nImg, 64] F32 on this
     * pipeline's device (owned by the caller); {@code latent} is not consumed.
     */
    interface Denoiser {
        Tensor denoise(FluxRequest r, FlowMatchSchedule schedule, Tensor latent, Tensor ids, Tensor txt, Tensor y, Tensor txtNeg,
                       Tensor yNeg, Tensor ref, long nImg, FluxProgress progress);
    }

    /** {@link #generate(FluxRequest, FluxProgress)} with the denoising loop of {@code denoiser} (text and VAE stay here). */
    Result generate(FluxRequest request, FluxProgress progress, Denoiser denoiser) {
        return generate(request, progress, NoCache.INSTANCE, null, java.util.Objects.requireNonNull(denoiser, "denoiser"));
    }

    /** The transformer weights (LoRAs merged) loaded onto {@code on}, e.g. one rank's backend; owned by the caller. */
    /**
     * The transformer's weights on every backend of {@code targets} from one opening of the checkpoint (one mapping, so
     * the host holds the file's pages once, whatever the number of GPUs), uploaded in parallel — one thread per target —
     * when no LoRA is merged (LoRA merges run one target after the other). In target order; on a failure the ones
     * already loaded are closed and the first error is thrown.
     */
    List<FluxWeights> loadTransformerWeights(List<? extends Ops> targets) {
        try (WeightSource w = WeightSource.open(files.transformer());
             FluxLoras l = loras.isEmpty() ? null : FluxLoras.open(loras, config, loraIgnoreUnknown)) {
            return org.dit4j.engine.parallel.PerDevice.make(targets, "loading " + files.transformer().getFileName(), l == null,
                    on -> FluxWeights.load(on, w, config, settings.weightDtype(), l));
        }
    }


    private Result generate(FluxRequest request, FluxProgress progress, StepCache cache, MagCacheCalibration calibration,
                            Denoiser denoiser) {
        java.util.Objects.requireNonNull(cache, "cache (NoCache.INSTANCE for none)");
        FluxCachedTransformer.Signal.of(cache);       // fails early on a policy the Flux transformer has no signal for
        if (Scope.current() != null)
            throw new IllegalStateException("call FluxPipeline.generate outside any open Scope: the pipeline owns its tensors");
        FluxRequest r = withDefaults(request);
        if (calibration != null) {             // checked before anything loads
            if (!(cache instanceof NoCache))
                throw new IllegalArgumentException("MagCache calibration computes every step; run it without a cache (NoCache), not "
                        + cache.describe());
            int branches = r.trueCfg() ? 2 : 1;
            if (calibration.totalSteps() != r.steps() || calibration.branches() != branches)
                throw new IllegalArgumentException("MagCache calibration " + calibration.id() + " is for " + calibration.totalSteps()
                        + " steps × " + calibration.branches() + " branch(es), the request runs " + r.steps() + " × " + branches
                        + "; make it with magCacheCalibration(request)");
        }
        if (progress == null) progress = FluxProgress.NONE;
        if (r.width() != request.width() && request.width() != 0 || r.height() != request.height() && request.height() != 0)
            progress.note("image size adjusted to " + r.width() + "×" + r.height() + " (a multiple of " + sizeMultiple() + ")");
        Map<String, Double> times = new LinkedHashMap<>();
        CudaBackend cuda = ops instanceof CudaBackend cb ? cb : null;
        if (cuda != null) cuda.allocator().resetPeak();
        DType act = settings.activation();
        int b = r.batch();
        long latH = 2L * (r.height() / sizeMultiple()), latW = 2L * (r.width() / sizeMultiple());
        long nImg = (latH / 2) * (latW / 2);

        Tensor txt = null, y = null, txtNeg = null, yNeg = null, ref = null, latent = null, ids = null;
        long nRef = 0;
        boolean graphUsed = false;
        CacheReport cacheReport = null;
        FlowMatchSchedule schedule = files.schedulerFor(config.guidanceEmbed()).schedule(r.steps(), nImg);
        try {
            // 1. text
            timed(times, progress, "load text encoders", this::loadText);
            long t0 = System.nanoTime();
            progress.stage("encode text");
            TextConditioning text = new TextConditioning(t5Tokenizer, t5, clipTokenizer, clip, r.t5Length(), false);
            if (r.prompts() == null) {
                try (TextConditioning.Result pos = text.encode(r.prompt())) {
                    txt = repeat(toActivation(pos.txt()), b);
                    y = repeat(toActivation(pos.y()), b);
                }
            } else {
                // one prompt per image: each encoded once (same T5 length), stacked along the batch
                Tensor[] ts = new Tensor[b], ys = new Tensor[b];
                java.util.Map<String, Integer> first = new java.util.HashMap<>();
                try {
                    for (int i = 0; i < b; i++) {
                        Integer j = first.putIfAbsent(r.promptOf(i), i);
                        if (j != null) {
                            ts[i] = ops.copy(ts[j]);
                            ys[i] = ops.copy(ys[j]);
                            continue;
                        }
                        try (TextConditioning.Result pos = text.encode(r.promptOf(i))) {
                            ts[i] = toActivation(pos.txt());
                            ys[i] = toActivation(pos.y());
                        }
                    }
                    txt = ops.concat(0, ts);
                    y = ops.concat(0, ys);
                } finally {
                    for (Tensor t : ts) if (t != null) t.close();
                    for (Tensor t : ys) if (t != null) t.close();
                }
            }
            if (r.trueCfg()) {
                try (TextConditioning.Result neg = text.encode(r.negativePrompt())) {
                    txtNeg = repeat(toActivation(neg.txt()), b);
                    yNeg = repeat(toActivation(neg.y()), b);
                }
            }
            ops.synchronize();
            times.put("encode text", seconds(t0));
            if (!settings.keepLoaded()) releaseText();

            // 2. Kontext reference
            if (r.reference() != null) {
                timed(times, progress, "load VAE", this::loadVae);
                t0 = System.nanoTime();
                progress.stage("encode reference");
                ref = encodeReference(r.reference(), b);
                nRef = ref.dim(1);
                ops.synchronize();
                times.put("encode reference", seconds(t0));
            }

            // 3. noise and position ids
            Tensor noise = new TorchGenerator(r.seed()).randn(b, vaeConfig.latentChannels(), latH, latW);   // host F32
            latent = packOnDevice(noise);                                                                   // [B, N, 64] F32
            ids = r.reference() == null ? FluxPacking.imageIds(latH, latW)
                    : concatRows(FluxPacking.imageIds(latH, latW), kontextIds(r.reference()));

            // 4. denoise
            if (denoiser == null) timed(times, progress, "load transformer", this::loadTransformer);
            t0 = System.nanoTime();
            progress.stage("denoise");
            boolean staged = !(cache instanceof NoCache) || calibration != null;
            Denoised d = denoiser != null ? new Denoised(denoiser.denoise(r, schedule, latent, ids, txt, y, txtNeg, yNeg, ref, nImg, progress), false)
                    : staged ? denoiseCached(r, schedule, latent, ids, txt, y, txtNeg, yNeg, ref, nImg, cache, calibration, progress)
                    : denoise(r, schedule, latent, ids, txt, y, txtNeg, yNeg, ref, nImg, progress);
            latent.close();
            latent = d.latent();
            graphUsed = d.usedGraph();
            cacheReport = d.cache();
            times.put("denoise", seconds(t0));
            if (!settings.keepLoaded()) releaseTransformer();

            float[] latents;
            try (Tensor h = ops.device().isCpu() ? null : ops.toHost(latent)) {
                latents = (h == null ? latent : h).toFloatArray();
            }

            // 5. decode
            if (vae == null) timed(times, progress, "load VAE", this::loadVae);
            t0 = System.nanoTime();
            progress.stage("decode");
            List<RgbImage> images = decode(latent, latH, latW);
            times.put("decode", seconds(t0));
            if (!settings.keepLoaded()) releaseVae();
            long peak = cuda != null ? cuda.allocator().peakInUseBytes() : -1;
            return new Result(List.copyOf(images), r, schedule, Collections.unmodifiableMap(times), peak, graphUsed, latents, cacheReport);
        } finally {
            for (Tensor t : new Tensor[] {txt, y, txtNeg, yNeg, ref, latent, ids}) if (t != null) t.close();
            if (!settings.keepLoaded()) {
                releaseText();
                releaseTransformer();
                releaseVae();
            }
        }
    }

    private record Denoised(Tensor latent, boolean usedGraph, CacheReport cache) {
        Denoised(Tensor latent, boolean usedGraph) { this(latent, usedGraph, null); }
    }

    /** The Euler loop; {@code latent} [B, N, 64] F32 is not consumed; returns the final latent (owned by the caller). */
    private Denoised denoise(FluxRequest r, FlowMatchSchedule schedule, Tensor latent, Tensor ids, Tensor txt, Tensor y,
                             Tensor txtNeg, Tensor yNeg, Tensor ref, long nImg, FluxProgress progress) {
        DType act = settings.activation();
        int b = r.batch(), steps = schedule.steps();
        boolean cfg = txtNeg != null;
        float[] guidance = null;
        if (config.guidanceEmbed()) {
            guidance = new float[b];
            java.util.Arrays.fill(guidance, r.guidance());
        }
        CudaBackend cuda = settings.cudaGraphs() && ops instanceof CudaBackend cb ? cb : null;
        long nTotal = ids.dim(0);
        FluxTransformer.Conditioning cond;
        try (Tensor txtIds = FluxPacking.textIds(txt.dim(1))) {
            cond = transformer.prepare(times(b, schedule.modelTimestep(0)), guidance, ids, txtIds, act);
        }
        Tensor imgIn = cuda == null ? null : ops.empty(act, org.dit4j.core.tensor.Shape.of(b, nTotal, config.inChannels()));
        Tensor x = ops.copy(latent);
        CudaGraph graph = null;
        Tensor[] graphOut = new Tensor[2];
        long start = System.nanoTime();
        try {
            for (int i = 0; i < steps; i++) {
                try (Scope s = Scope.open()) {
                    float[] t = times(b, schedule.modelTimestep(i));
                    Tensor tSin = FluxEmbeddings.sinEmb(ops, t, act);
                    Tensor xIn = ops.cast(x, act);
                    if (ref != null) xIn = ops.concat(1, xIn, ref);
                    Tensor v, vNeg = null;
                    if (cuda != null) {
                        cuda.copyInto(cond.timeSin(), tSin);
                        cuda.copyInto(imgIn, xIn);
                        if (graph == null && i == 0) {
                            v = transformer.forward(imgIn, txt, y, cond);              // eager: kernels compile, plans cached
                            if (cfg) vNeg = transformer.forward(imgIn, txtNeg, yNeg, cond);
                        } else {
                            if (graph == null) graph = capture(cuda, imgIn, txt, y, txtNeg, yNeg, cond, graphOut);
                            graph.replay();
                            v = graphOut[0];
                            vNeg = graphOut[1];
                        }
                    } else {
                        FluxTransformer.Conditioning c = new FluxTransformer.Conditioning(tSin, cond.guidanceSin(), cond.pe(),
                                cond.nTxt(), cond.nImg());
                        v = transformer.forward(xIn, txt, y, c);
                        if (cfg) vNeg = transformer.forward(xIn, txtNeg, yNeg, c);
                    }
                    if (ref != null) {
                        v = ops.slice(v, 1, 0, nImg);
                        if (cfg) vNeg = ops.slice(vNeg, 1, 0, nImg);
                    }
                    if (cfg) v = FlowMatchEuler.trueCfg(ops, v, vNeg, r.trueCfgScale());
                    Tensor next = FlowMatchEuler.step(ops, schedule, i, x, v);
                    x.close();
                    x = s.keep(next);
                }
                ops.synchronize();
                progress.step(i + 1, steps, seconds(start));
            }
            return new Denoised(x, graph != null);
        } catch (RuntimeException | Error e) {
            x.close();
            throw e;
        } finally {
            if (graph != null) graph.close();
            for (Tensor t : graphOut) if (t != null) t.close();
            if (imgIn != null) imgIn.close();
            cond.close();
        }
    }

    /** Captures the transformer call(s) of one step; their outputs stay in {@code out} (same memory at every replay). */
    private CudaGraph capture(CudaBackend cuda, Tensor imgIn, Tensor txt, Tensor y, Tensor txtNeg, Tensor yNeg,
                              FluxTransformer.Conditioning cond, Tensor[] out) {
        return CudaGraph.capture(cuda, () -> {
            out[0] = Scope.current() != null ? Scope.current().keep(transformer.forward(imgIn, txt, y, cond)) : transformer.forward(imgIn, txt, y, cond);
            if (txtNeg != null) {
                Tensor n = transformer.forward(imgIn, txtNeg, yNeg, cond);
                out[1] = Scope.current() != null ? Scope.current().keep(n) : n;
            }
        });
    }

    /**
     * The Euler loop under a step cache: the transformer runs in stages ({@link FluxCachedTransformer}) on fixed input
     * tensors that every step overwrites, with one CUDA graph per branch and stage on a CUDA backend with graphs on.
     */
    private Denoised denoiseCached(FluxRequest r, FlowMatchSchedule schedule, Tensor latent, Tensor ids, Tensor txt, Tensor y,
                                   Tensor txtNeg, Tensor yNeg, Tensor ref, long nImg, StepCache cache,
                                   MagCacheCalibration calibration, FluxProgress progress) {
        DType act = settings.activation();
        int b = r.batch(), steps = schedule.steps();
        boolean cfg = txtNeg != null;
        float[] guidance = null;
        if (config.guidanceEmbed()) {
            guidance = new float[b];
            java.util.Arrays.fill(guidance, r.guidance());
        }
        boolean graphs = settings.cudaGraphs() && ops instanceof CudaBackend;
        FluxTransformer.Conditioning cond;
        try (Tensor txtIds = FluxPacking.textIds(txt.dim(1))) {
            cond = transformer.prepare(times(b, schedule.modelTimestep(0)), guidance, ids, txtIds, act);
        }
        Tensor imgIn = null, x = null;
        FluxCachedTransformer ct = null;
        try {
            imgIn = ops.empty(act, org.dit4j.core.tensor.Shape.of(b, ids.dim(0), config.inChannels()));
            Map<Branch, FluxCachedTransformer.Text> texts = new EnumMap<>(Branch.class);
            texts.put(Branch.COND, new FluxCachedTransformer.Text(txt, y));
            if (cfg) texts.put(Branch.UNCOND, new FluxCachedTransformer.Text(txtNeg, yNeg));
            FluxCachedTransformer.Options options = FluxCachedTransformer.Options.eager().withCudaGraphs(graphs).withCalibration(calibration)
                    .withResidualsOnHost(settings.cacheOnHost());
            ct = new FluxCachedTransformer(ops, transformer, cache, "flux-" + REQUESTS.incrementAndGet(), steps, imgIn, cond, texts, options);
            x = ops.copy(latent);
            long start = System.nanoTime();
            for (int i = 0; i < steps; i++) {
                try (Scope s = Scope.open()) {
                    Tensor tSin = FluxEmbeddings.sinEmb(ops, times(b, schedule.modelTimestep(i)), act);
                    Tensor xIn = ops.cast(x, act);
                    if (ref != null) xIn = ops.concat(1, xIn, ref);
                    FluxCachedTransformer.copyInto(ops, cond.timeSin(), tSin);
                    FluxCachedTransformer.copyInto(ops, imgIn, xIn);
                    Tensor v = ct.velocity(i, Branch.COND);
                    Tensor vNeg = cfg ? ct.velocity(i, Branch.UNCOND) : null;
                    if (ref != null) {
                        v = ops.slice(v, 1, 0, nImg);
                        if (cfg) vNeg = ops.slice(vNeg, 1, 0, nImg);
                    }
                    if (cfg) v = FlowMatchEuler.trueCfg(ops, v, vNeg, r.trueCfgScale());
                    Tensor next = FlowMatchEuler.step(ops, schedule, i, x, v);
                    x.close();
                    x = s.keep(next);
                }
                ops.synchronize();
                progress.step(i + 1, steps, seconds(start));
            }
            CacheReport report = new CacheReport(cache.describe(), ct.summary(), ct.trace(), calibration);
            Denoised d = new Denoised(x, ct.usedGraphs(), report);
            x = null;
            return d;
        } finally {
            if (x != null) x.close();
            if (ct != null) ct.close();
            if (imgIn != null) imgIn.close();
            cond.close();
        }
    }

    private static float[] times(int b, float t) {
        float[] a = new float[b];
        java.util.Arrays.fill(a, t);
        return a;
    }

    // ------------------------------------------------------------------------------------------------ stages

    /**
     * The size the Kontext reference is encoded at: its preferred resolution, or (without resizing) its own size cut
     * down to a multiple of {@link #sizeMultiple}.
     */
    public int[] referenceSize(RgbImage reference) {
        if (settings.kontextResize()) return Kontext.preferredSize(reference.width(), reference.height());
        int m = sizeMultiple();
        if (reference.width() < m || reference.height() < m)
            throw new IllegalArgumentException("the Kontext reference must be at least " + m + "×" + m + ", got "
                    + reference.width() + "×" + reference.height());
        return new int[] {reference.width() - reference.width() % m, reference.height() - reference.height() % m};
    }

    /** The reference image as the model sees it: resized to {@link #referenceSize} with Pillow's Lanczos. */
    public RgbImage scaledReference(RgbImage reference) {
        int[] wh = referenceSize(reference);
        return org.dit4j.engine.image.ImageResize.lanczos(reference, wh[0], wh[1]);
    }

    private Tensor encodeReference(RgbImage image, int b) {
        RgbImage scaled = scaledReference(image);
        try (Scope s = Scope.open()) {
            Tensor host = VaeImages.fromRgb8(scaled.width(), scaled.height(), scaled.rgb());   // [1, 3, H, W] F32
            Tensor x = ops.upload(host);
            if (x.dtype() != settings.vaeDtype()) x = ops.cast(x, settings.vaeDtype());
            Tensor z = vae.encode(x);                                                          // [1, 16, h, w] scaled
            Tensor packed = FluxPacking.pack(ops, ops.cast(z, settings.activation()));
            packed = ops.copy(packed);                                                         // own its memory
            return s.keep(repeat(packed, b));
        }
    }

    private Tensor kontextIds(RgbImage reference) {
        int[] wh = referenceSize(reference);
        long f = vaeConfig.downFactor();
        return FluxPacking.kontextIds(wh[1] / f, wh[0] / f);
    }

    private static Tensor concatRows(Tensor a, Tensor b) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        float[] out = new float[x.length + y.length];
        System.arraycopy(x, 0, out, 0, x.length);
        System.arraycopy(y, 0, out, x.length, y.length);
        a.close();
        b.close();
        return Tensor.of(out, a.dim(0) + b.dim(0), a.dim(1));
    }

    /** Host noise [B, C, h, w] → packed [B, N, 4C] F32 on the device (a tensor that owns its memory); closes the noise. */
    private Tensor packOnDevice(Tensor hostNoise) {
        try (Scope s = Scope.open()) {
            Tensor z = ops.device().isCpu() ? hostNoise : ops.upload(hostNoise);
            return s.keep(ops.copy(FluxPacking.pack(ops, z)));    // pack returns a view: copy it into an owner
        } finally {
            hostNoise.close();
        }
    }

    private List<RgbImage> decode(Tensor latent, long latH, long latW) {
        try (Scope s = Scope.open()) {
            Tensor z = FluxPacking.unpack(ops, latent, latH, latW);
            if (z.dtype() != settings.vaeDtype()) z = ops.cast(z, settings.vaeDtype());
            Tensor img;
            if (settings.vaeTile() > 0) {
                int tile = Math.max(1, settings.vaeTile() / vaeConfig.downFactor());
                img = vae.decodeTiled(z, tile, tile / 4);
            } else {
                img = vae.decode(z);
            }
            Tensor host = ops.device().isCpu() ? img : ops.toHost(img);
            List<RgbImage> out = new ArrayList<>();
            int w = Math.toIntExact(host.dim(3)), h = Math.toIntExact(host.dim(2));
            for (int i = 0; i < host.dim(0); i++) out.add(new RgbImage(w, h, VaeImages.toRgb8(host, i)));
            return out;
        }
    }

    /** x in the activation dtype (a new tensor; x is closed when converted). */
    private Tensor toActivation(Tensor x) {
        if (x.dtype() == settings.activation()) return ops.copy(x);
        return ops.cast(x, settings.activation());
    }

    /** B copies of x:[1, …] along dim 0 (x itself for B = 1). */
    private Tensor repeat(Tensor x, int b) {
        if (b == 1) return x;
        Tensor[] copies = new Tensor[b];
        java.util.Arrays.fill(copies, x);
        Tensor out = ops.concat(0, copies);
        x.close();
        return out;
    }

    // ------------------------------------------------------------------------------------------------ loading

    private void loadText() {
        if (t5 != null) return;
        DType act = settings.activation() == DType.F16 ? DType.BF16 : settings.activation();
        if (clipTokenizer == null) clipTokenizer = loadClipTokenizer(files.clipTokenizer());
        if (t5Tokenizer == null) t5Tokenizer = loadT5Tokenizer(files.t5Tokenizer());
        try (WeightSource w = WeightSource.open(files.clip())) {
            clip = ClipTextModel.load(ops, w, settings.activation());
        }
        try (WeightSource w = WeightSource.open(files.t5())) {
            t5 = T5Encoder.load(ops, w, act);
        } catch (RuntimeException e) {
            clip.close();
            clip = null;
            throw e;
        }
    }

    /** The CLIP tokenizer of a folder with vocab.json + merges.txt or tokenizer.json ({@link FluxModelFiles#clipTokenizer}). */
    public static ClipTokenizer loadClipTokenizer(Path folder) { return ClipTokenizer.fromFolder(folder); }

    /**
     * The T5 tokenizer of a folder (tokenizer.json or spiece.model), or of a checkpoint file holding a {@code spiece_model}
     * tensor ({@link FluxModelFiles#t5Tokenizer}).
     */
    public static T5Tokenizer loadT5Tokenizer(Path location) {
        return Files.isDirectory(location) ? T5Tokenizer.fromFolder(location)
                : T5Tokenizer.fromSentencePiece(EmbeddedTokenizer.spieceModel(location), location + " (embedded spiece_model)");
    }

    private void loadTransformer() {
        if (transformer != null) return;
        try (WeightSource w = WeightSource.open(files.transformer());
             FluxLoras l = loras.isEmpty() ? null : FluxLoras.open(loras, config, loraIgnoreUnknown)) {
            fluxWeights = FluxWeights.load(ops, w, config, settings.weightDtype(), l);
        }
        transformer = new FluxTransformer(ops, fluxWeights);
    }

    private void loadVae() {
        if (vae != null) return;
        try (WeightSource w = WeightSource.open(files.vae())) {
            vae = AutoencoderKL.load(ops, w, vaeConfig, settings.vaeDtype());
        }
    }

    private void releaseText() {
        if (t5 != null) t5.close();
        if (clip != null) clip.close();
        t5 = null;
        clip = null;
    }

    private void releaseTransformer() {
        if (fluxWeights != null) fluxWeights.close();
        fluxWeights = null;
        transformer = null;
    }

    private void releaseVae() {
        if (vae != null) vae.close();
        vae = null;
    }

    private void timed(Map<String, Double> times, FluxProgress p, String stage, Runnable body) {
        long t0 = System.nanoTime();
        p.stage(stage);
        body.run();
        ops.synchronize();
        times.merge(stage, seconds(t0), Double::sum);
    }

    private static double seconds(long t0) { return (System.nanoTime() - t0) / 1e9; }

    @Override public void close() {
        releaseText();
        releaseTransformer();
        releaseVae();
    }

    @Override public String toString() {
        return String.format(Locale.ROOT, "FluxPipeline[%s, %s, %s]", kind(), files.description(), ops.name());
    }
}
