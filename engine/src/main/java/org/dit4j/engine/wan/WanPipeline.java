package org.dit4j.engine.wan;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.atomic.AtomicLong;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
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
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.engine.flux.EmbeddedTokenizer;
import org.dit4j.engine.flux.FluxProgress;
import org.dit4j.engine.image.RgbImage;
import org.dit4j.models.nn.Timesteps;
import org.dit4j.models.sampling.FlowEulerSampler;
import org.dit4j.models.sampling.FlowSampler;
import org.dit4j.models.sampling.FlowShiftSchedule;
import org.dit4j.models.sampling.FlowUniPcSampler;
import org.dit4j.models.sampling.LatentAlgebra;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.models.vae.wan.WanVae;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.vae.wan.WanVideoFrames;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

/**
 * Wan2.1 text-to-video, end to end (models.md §2, diffusers {@code WanPipeline}):
 * <ol>
 *   <li>text: umT5 states of the prompt and (with CFG) the negative prompt, trimmed and zero-padded to 512 rows
 *       ({@link WanText}); embedded by the transformer's text MLP once per generation;</li>
 *   <li>noise: {@link TorchGenerator}(seed).randn([B, 16, 1 + (T−1)/4, H/8, W/8]) in float32 on the host — what
 *       diffusers' {@code prepare_latents} draws with a CPU generator;</li>
 *   <li>denoising: UniPC (order 2, bh2, Wan's default) or Euler over the flow-shift schedule ({@link WanScheduler}:
 *       the diffusers folder's {@code flow_shift}, else the Wan reference's 5.0); per step the transformer sees the
 *       latent in its activation dtype, and with CFG v = v_neg + g·(v_pos − v_neg) (two forwards). The latent and the
 *       sampler stay in float32. On a CUDA backend the step's forwards are captured once as a CUDA graph after an
 *       eager first step and replayed with the new latent and timestep copied into the same tensors. With a step cache
 *       ({@link #generate(WanRequest, FluxProgress, StepCache)}) the transformer runs in stages instead
 *       ({@link WanCachedTransformer}): per step and CFG branch, embeddings and the policy's signal, then the blocks or
 *       the cached residual, with one CUDA graph per branch and stage;</li>
 *   <li>VAE decode streamed one latent frame at a time; each chunk becomes 8-bit frames at once (rounded to nearest,
 *       as diffusers' PIL output).</li>
 * </ol>
 * Parts load on first use; with {@code keepLoaded} false each is released after its stage. Call {@link #generate}
 * from one thread, outside any open {@link Scope}.
 */
public final class WanPipeline implements AutoCloseable {

    /**
     * Precision and execution choices.
     *
     * @param weightDtype transformer weights (BF16 on GPUs, F32 on the CPU; F8_E4M3 keeps fp8)
     * @param activation  transformer and umT5 activations (BF16 on GPUs, F32 on the CPU)
     * @param vaeDtype    VAE weights and activations
     * @param cudaGraphs  replay the denoising step from a CUDA graph (CUDA backends only)
     * @param keepLoaded  keep every part loaded between generations
     * @param cacheOnHost with a step cache, keep the cached residuals in pinned host memory instead of on the GPU
     *                    ({@link WanCachedTransformer.Options#residualsOnHost})
     */
    public record Settings(DType weightDtype, DType activation, DType vaeDtype, boolean cudaGraphs, boolean keepLoaded,
                           boolean cacheOnHost) {
        /** Settings with the residuals of a step cache on the device. */
        public Settings(DType weightDtype, DType activation, DType vaeDtype, boolean cudaGraphs, boolean keepLoaded) {
            this(weightDtype, activation, vaeDtype, cudaGraphs, keepLoaded, false);
        }

        public static Settings defaults(Ops ops) {
            boolean gpu = !ops.device().isCpu();
            DType d = gpu ? DType.BF16 : DType.F32;
            return new Settings(d, d, d, gpu, true, false);
        }

        public Settings withDtype(DType d) { return new Settings(d, d, d, cudaGraphs, keepLoaded, cacheOnHost); }

        public Settings withWeightDtype(DType w) { return new Settings(w, activation, vaeDtype, cudaGraphs, keepLoaded, cacheOnHost); }

        public Settings withCudaGraphs(boolean g) { return new Settings(weightDtype, activation, vaeDtype, g, keepLoaded, cacheOnHost); }

        public Settings withKeepLoaded(boolean k) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, k, cacheOnHost); }

        public Settings withCacheOnHost(boolean h) { return new Settings(weightDtype, activation, vaeDtype, cudaGraphs, keepLoaded, h); }
    }

    /**
     * What a generation produced.
     *
     * @param videos          B videos, each a list of frames
     * @param request         the request with every default filled in
     * @param schedule        the σ schedule that ran
     * @param stageSeconds    wall time per stage, in order
     * @param peakDeviceBytes peak GPU bytes in use (−1 on the CPU)
     * @param usedCudaGraph   whether the steps were replayed from a CUDA graph
     * @param latents         the final latent [B, 16, F, h, w] (float32, normalised), diffusers' {@code output_type="latent"}
     * @param cache           what the step cache did, or null when the run used none
     */
    public record Result(List<List<RgbImage>> videos, WanRequest request, FlowShiftSchedule schedule, Map<String, Double> stageSeconds,
                         long peakDeviceBytes, boolean usedCudaGraph, float[] latents, CacheReport cache) {
        /** A result of a run without a step cache. */
        public Result(List<List<RgbImage>> videos, WanRequest request, FlowShiftSchedule schedule, Map<String, Double> stageSeconds,
                      long peakDeviceBytes, boolean usedCudaGraph, float[] latents) {
            this(videos, request, schedule, stageSeconds, peakDeviceBytes, usedCudaGraph, latents, null);
        }

        /** Steps times CFG passes: the number of transformer forwards. */
        public int forwards() { return schedule.steps() * (request.cfg() ? 2 : 1); }
    }

    /**
     * What the step cache did in a run.
     *
     * @param policy      the policy's {@link StepCache#describe()}
     * @param summary     computed and skipped steps per branch
     * @param trace       the signals and decisions call by call
     * @param calibration the recorded MagCache γ table, or null when the run did not calibrate
     */
    public record CacheReport(String policy, RunSummary summary, CacheTrace trace, MagCacheCalibration calibration) {}

    private static final AtomicLong REQUESTS = new AtomicLong();

    private final Ops ops;
    private final WanModelFiles files;
    private final Settings settings;
    private final WanConfig config;
    private final WanVaeConfig vaeConfig;

    private WanWeights weights;
    private WanTransformer transformer;
    private WanVae vae;
    private T5Encoder t5;
    private T5Tokenizer tokenizer;

    /** Reads the configurations (tensor headers only); weights load on first use. */
    public WanPipeline(Ops ops, WanModelFiles files, Settings settings) {
        this.ops = ops;
        this.files = files;
        this.settings = settings;
        try (WeightSource w = WeightSource.open(files.transformer())) {
            this.config = WanConfig.detect(w);
        }
        try (WeightSource w = WeightSource.open(files.vae())) {
            this.vaeConfig = WanVae.readConfig(w, files.vae());
        }
        if (config.inChannels() != vaeConfig.zDim() || config.outChannels() != vaeConfig.zDim())
            throw new CheckpointException("the Wan transformer " + files.transformer() + " works on " + config.inChannels()
                    + " latent channels, the VAE " + files.vae() + " has " + vaeConfig.zDim() + ": the two do not belong together");
        if (!vaeConfig.hasDecoder())
            throw new CheckpointException("the Wan VAE " + files.vae() + " has no decoder weights; give the full VAE "
                    + "(e.g. wan_2.1_vae.safetensors)");
    }

    public WanConfig transformerConfig() { return config; }

    /** The backend of the text encoder, the VAE and the one-device transformer. */
    public Ops ops() { return ops; }

    public WanVaeConfig vaeConfig() { return vaeConfig; }

    public WanModelFiles files() { return files; }

    public Settings settings() { return settings; }

    /** "1.3B", "14B" or a description of a non-standard size. */
    public String kind() {
        if (config.dim() == 1536 && config.numLayers() == 30) return "1.3B";
        if (config.dim() == 5120 && config.numLayers() == 40) return "14B";
        return "dim " + config.dim() + ", " + config.numLayers() + " layers";
    }

    /** Pixels per patch cell: sizes are multiples of this (16: VAE 8 × patch 2). */
    public int sizeMultiple() { return vaeConfig.spatialFactor() * Math.max(config.patch()[1], config.patch()[2]); }

    /** The request with defaults (see {@link WanRequest}); sizes rounded down to multiples of 16, frames to 4n + 1. */
    public WanRequest withDefaults(WanRequest r) {
        int w = r.width() > 0 ? r.width() : WanRequest.DEFAULT_WIDTH, h = r.height() > 0 ? r.height() : WanRequest.DEFAULT_HEIGHT;
        int m = sizeMultiple();
        if (w < m || h < m) throw new IllegalArgumentException("video size must be at least " + m + "×" + m + ", got " + w + "×" + h);
        w -= w % m;
        h -= h % m;
        int tf = vaeConfig.temporalFactor();
        int frames = r.frames() > 0 ? r.frames() : WanRequest.DEFAULT_FRAMES;
        if (frames % tf != 1 % tf) frames = frames / tf * tf + 1;     // diffusers' rounding
        int steps = r.steps() > 0 ? r.steps() : WanRequest.DEFAULT_STEPS;
        float g = Float.isNaN(r.guidance()) ? WanRequest.DEFAULT_GUIDANCE : r.guidance();
        double shift = Double.isNaN(r.shift()) ? files.schedulerOrDefault().shift() : r.shift();
        String sampler = r.sampler() == null ? "unipc" : r.sampler().toLowerCase(Locale.ROOT);
        if (!sampler.equals("unipc") && !sampler.equals("euler"))
            throw new IllegalArgumentException("sampler must be 'unipc' or 'euler', got '" + r.sampler() + "'");
        if (r.batch() < 1) throw new IllegalArgumentException("batch must be at least 1, got " + r.batch());
        String neg = r.negativePrompt() == null ? WanText.DEFAULT_NEGATIVE_PROMPT : r.negativePrompt();
        return new WanRequest(r.prompt() == null ? "" : r.prompt(), neg, w, h, frames, steps, g, shift, sampler, r.seed(), r.batch());
    }

    /** The σ schedule a (defaulted) request runs. */
    public FlowShiftSchedule schedule(WanRequest full) {
        return files.schedulerOrDefault().withShift(full.shift()).schedule(full.steps());
    }

    // ------------------------------------------------------------------------------------------------ generate

    /** Runs one request (see the class comment). */
    public Result generate(WanRequest request, FluxProgress progress) {
        return generate(request, null, progress);
    }

    /** Runs one request with a step cache (one policy may serve many requests: its state is kept per request). */
    public Result generate(WanRequest request, FluxProgress progress, StepCache cache) {
        return generate(request, null, progress, cache, null);
    }

    /**
     * Runs one request with a step cache and, when {@code calibration} is not null, records a MagCache γ table in it
     * (every step computed: {@code cache} must be {@link NoCache}). A policy other than {@link NoCache}, or a
     * calibration, runs the transformer in stages ({@link WanCachedTransformer}); {@link Result#cache()} tells what
     * was computed and skipped.
     */
    public Result generate(WanRequest request, FluxProgress progress, StepCache cache, MagCacheCalibration calibration) {
        return generate(request, null, progress, cache, calibration);
    }

    /**
     * The published constants this model's step caches use: Wan2.1-T2V-14B's for the 14B width (dim 5120), the 1.3B
     * model's for every other size (the 1.3B itself, and the tiny test models).
     */
    public CacheModel cacheModel() {
        return config.dim() == 5120 ? CacheModel.WAN21_T2V_14B : CacheModel.WAN21_T2V_1_3B;
    }

    /** The step cache the {@code --cache} option selects, with this model's published constants ({@link #cacheModel}). */
    public StepCache stepCache(CacheSpec spec) { return spec.build(cacheModel()); }

    /**
     * A MagCache calibration for a request (after {@link #withDefaults}: its step count, 2 branches with CFG), named
     * {@code wan2.1-<kind>-<steps>}; pass it to {@link #generate(WanRequest, FluxProgress, StepCache, MagCacheCalibration)}
     * with {@link NoCache}.
     */
    public MagCacheCalibration magCacheCalibration(WanRequest request) {
        WanRequest r = withDefaults(request);
        return new MagCacheCalibration("wan2.1-" + kind().toLowerCase(Locale.ROOT).replace(' ', '-').replace(",", "") + "-" + r.steps(),
                r.steps(), r.cfg() ? 2 : 1);
    }

    /**
     * Runs one request over a given σ schedule instead of the model's ({@code null}: {@link #schedule}); its step count
     * replaces the request's.
     */
    public Result generate(WanRequest request, FlowShiftSchedule given, FluxProgress progress) {
        return generate(request, given, progress, NoCache.INSTANCE, null);
    }

    /**
     * Runs one request over a given σ schedule ({@code null}: {@link #schedule}) with a step cache; its step count
     * replaces the request's.
     */
    public Result generate(WanRequest request, FlowShiftSchedule given, FluxProgress progress, StepCache cache) {
        return generate(request, given, progress, cache, null);
    }

    /** The denoising loop run elsewhere (e.g. on a mesh, {@link ParallelWanPipeline}); text and VAE stay here. */
    interface Denoiser {
        /**
         * latent: the initial noise F32 [B, 16, F, h, w]; txt/txtNeg: umT5 states [B, 512, textDim] (txtNeg null without
         * CFG); all on this pipeline's backend and not consumed. Returns the final latent F32 (caller-owned, same backend).
         */
        Tensor denoise(WanRequest r, FlowShiftSchedule schedule, Tensor latent, Tensor txt, Tensor txtNeg, FluxProgress progress);
    }

    /** {@link #generate(WanRequest, FluxProgress)} with the denoising loop of {@code denoiser}. */
    Result generate(WanRequest request, FluxProgress progress, Denoiser denoiser) {
        return generate(request, null, progress, NoCache.INSTANCE, null, Objects.requireNonNull(denoiser, "denoiser"));
    }

    private Result generate(WanRequest request, FlowShiftSchedule given, FluxProgress progress, StepCache cache,
                            MagCacheCalibration calibration) {
        return generate(request, given, progress, cache, calibration, null);
    }

    private Result generate(WanRequest request, FlowShiftSchedule given, FluxProgress progress, StepCache cache,
                            MagCacheCalibration calibration, Denoiser denoiser) {
        Objects.requireNonNull(cache, "cache (NoCache.INSTANCE for none)");
        WanCachedTransformer.Signal.of(cache);       // fails early on a policy the Wan transformer has no signal for
        if (Scope.current() != null)
            throw new IllegalStateException("call WanPipeline.generate outside any open Scope: the pipeline owns its tensors");
        WanRequest r = withDefaults(given == null ? request : request.withSteps(given.steps()));
        if (calibration != null) {
            if (!(cache instanceof NoCache))
                throw new IllegalArgumentException("MagCache calibration computes every step; run it without a cache (NoCache), not "
                        + cache.describe());
            int branches = r.cfg() ? 2 : 1;
            if (calibration.totalSteps() != r.steps() || calibration.branches() != branches)
                throw new IllegalArgumentException("MagCache calibration " + calibration.id() + " is for " + calibration.totalSteps()
                        + " steps × " + calibration.branches() + " branch(es), the request runs " + r.steps() + " × " + branches
                        + "; make it with magCacheCalibration(request)");
        }
        if (progress == null) progress = FluxProgress.NONE;
        if (request.width() > 0 && r.width() != request.width() || request.height() > 0 && r.height() != request.height())
            progress.note("video size adjusted to " + r.width() + "×" + r.height() + " (a multiple of " + sizeMultiple() + ")");
        if (request.frames() > 0 && r.frames() != request.frames())
            progress.note("frames adjusted to " + r.frames() + " (frames − 1 must be a multiple of " + vaeConfig.temporalFactor() + ")");
        Map<String, Double> times = new LinkedHashMap<>();
        CudaBackend cuda = ops instanceof CudaBackend cb ? cb : null;
        if (cuda != null) cuda.allocator().resetPeak();
        int b = r.batch();
        long lf = vaeConfig.latentFrames(r.frames()), lh = r.height() / vaeConfig.spatialFactor(), lw = r.width() / vaeConfig.spatialFactor();
        FlowShiftSchedule schedule = given != null ? given : schedule(r);
        Tensor txt = null, txtNeg = null, latent = null;
        boolean graphUsed = false;
        CacheReport cacheReport = null;
        try {
            // 1. text
            timed(times, progress, "load text encoder", this::loadText);
            long t0 = System.nanoTime();
            progress.stage("encode text");
            DType act = settings.activation();
            txt = repeat(WanText.encode(ops, tokenizer, t5, List.of(r.prompt()), WanText.MAX_LENGTH, act), b);
            if (r.cfg()) txtNeg = repeat(WanText.encode(ops, tokenizer, t5, List.of(r.negativePrompt()), WanText.MAX_LENGTH, act), b);
            ops.synchronize();
            times.put("encode text", seconds(t0));
            if (!settings.keepLoaded()) releaseText();

            // 2. noise [B, 16, F, h, w] F32, as diffusers draws it with a CPU generator
            Tensor noise = new TorchGenerator(r.seed()).randn(b, config.inChannels(), lf, lh, lw);
            try (Scope s = Scope.open()) {
                latent = s.keep(ops.device().isCpu() ? ops.copy(noise) : ops.upload(noise));
            } finally {
                noise.close();
            }

            // 3. denoise
            if (denoiser == null) timed(times, progress, "load transformer", this::loadTransformer);
            t0 = System.nanoTime();
            progress.stage("denoise");
            boolean staged = !(cache instanceof NoCache) || calibration != null;
            Denoised d = denoiser != null ? new Denoised(denoiser.denoise(r, schedule, latent, txt, txtNeg, progress), false)
                    : staged ? denoiseCached(r, schedule, latent, txt, txtNeg, cache, calibration, progress)
                    : denoise(r, schedule, latent, txt, txtNeg, progress);
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

            // 4. decode
            timed(times, progress, "load VAE", this::loadVae);
            t0 = System.nanoTime();
            progress.stage("decode");
            List<List<RgbImage>> videos = decode(latent);
            times.put("decode", seconds(t0));
            if (!settings.keepLoaded()) releaseVae();
            long peak = cuda != null ? cuda.allocator().peakInUseBytes() : -1;
            return new Result(videos, r, schedule, Collections.unmodifiableMap(times), peak, graphUsed, latents, cacheReport);
        } finally {
            for (Tensor t : new Tensor[] {txt, txtNeg, latent}) if (t != null) t.close();
            if (!settings.keepLoaded()) close();
        }
    }

    private record Denoised(Tensor latent, boolean usedGraph, CacheReport cache) {
        Denoised(Tensor latent, boolean usedGraph) { this(latent, usedGraph, null); }
    }

    /** The sampler loop; {@code latent} F32 [B, 16, F, h, w] is not consumed; returns the final latent (caller-owned). */
    private Denoised denoise(WanRequest r, FlowShiftSchedule schedule, Tensor latent, Tensor txt, Tensor txtNeg, FluxProgress progress) {
        DType act = settings.activation();
        int b = r.batch(), steps = schedule.steps();
        boolean cfg = txtNeg != null;
        int[] p = config.patch();
        FlowSampler<Tensor> sampler = sampler(r, schedule, ops);
        CudaBackend cuda = settings.cudaGraphs() && ops instanceof CudaBackend cb ? cb : null;
        Tensor ctx = null, ctxNeg = null, xIn = null, x = ops.copy(latent);
        WanTransformer.Conditioning cond = null;
        CudaGraph graph = null;
        Tensor[] graphOut = new Tensor[2];
        long start = System.nanoTime();
        try {
            ctx = transformer.embedText(txt);
            if (cfg) ctxNeg = transformer.embedText(txtNeg);
            cond = transformer.prepare(times(b, schedule.timestep(0)), latent.dim(2) / p[0], latent.dim(3) / p[1], latent.dim(4) / p[2]);
            if (cuda != null) xIn = ops.empty(act, latent.shape());
            for (int i = 0; i < steps; i++) {
                Tensor v;
                try (Scope s = Scope.open()) {
                    Tensor tSin = timeEmbedding(times(b, schedule.timestep(i)));
                    Tensor xa = x.dtype() == act ? x : ops.cast(x, act);
                    Tensor vPos, vNeg = null;
                    if (cuda != null) {
                        cuda.copyInto(cond.timeSin(), tSin);
                        cuda.copyInto(xIn, xa);
                        if (graph == null && i == 0) {
                            vPos = transformer.forwardEmbedded(xIn, ctx, cond);       // eager: kernels compile, plans cached
                            if (cfg) vNeg = transformer.forwardEmbedded(xIn, ctxNeg, cond);
                        } else {
                            if (graph == null) graph = capture(cuda, xIn, ctx, ctxNeg, cond, graphOut);
                            graph.replay();
                            vPos = graphOut[0];
                            vNeg = graphOut[1];
                        }
                    } else {
                        WanTransformer.Conditioning c = new WanTransformer.Conditioning(tSin, cond.rope(), cond.frames(), cond.height(),
                                cond.width());
                        vPos = transformer.forwardEmbedded(xa, ctx, c);
                        if (cfg) vNeg = transformer.forwardEmbedded(xa, ctxNeg, c);
                    }
                    if (cfg) vPos = guided(vPos, vNeg, r.guidance());
                    boolean graphOwned = vPos == graphOut[0];                          // replayed output: not ours
                    v = s.keep(vPos.dtype() != DType.F32 ? ops.cast(vPos, DType.F32) : graphOwned ? ops.copy(vPos) : vPos);
                }
                Tensor next;
                try {
                    next = sampler.step(v, i, x);
                } finally {
                    v.close();
                }
                x.close();
                x = next;
                ops.synchronize();
                progress.step(i + 1, steps, seconds(start));
            }
            sampler.reset();
            return new Denoised(x, graph != null);
        } catch (RuntimeException | Error e) {
            x.close();
            throw e;
        } finally {
            sampler.reset();
            if (graph != null) graph.close();
            for (Tensor t : graphOut) if (t != null) t.close();
            for (Tensor t : new Tensor[] {xIn, ctx, ctxNeg}) if (t != null) t.close();
            if (cond != null) cond.close();
        }
    }

    /**
     * The sampler loop under a step cache: the transformer runs in stages ({@link WanCachedTransformer}) on a fixed
     * latent and time input that every step overwrites, with one CUDA graph per branch and stage on a CUDA backend
     * with graphs on. The same arithmetic as {@link #denoise} otherwise: at threshold 0 the latents agree bit for bit.
     */
    private Denoised denoiseCached(WanRequest r, FlowShiftSchedule schedule, Tensor latent, Tensor txt, Tensor txtNeg, StepCache cache,
                                   MagCacheCalibration calibration, FluxProgress progress) {
        DType act = settings.activation();
        int b = r.batch(), steps = schedule.steps();
        boolean cfg = txtNeg != null;
        int[] p = config.patch();
        FlowSampler<Tensor> sampler = sampler(r, schedule, ops);
        boolean graphs = settings.cudaGraphs() && ops instanceof CudaBackend;
        Tensor ctx = null, ctxNeg = null, xIn = null, x = null;
        WanTransformer.Conditioning cond = null;
        WanCachedTransformer ct = null;
        long start = System.nanoTime();
        try {
            ctx = transformer.embedText(txt);
            if (cfg) ctxNeg = transformer.embedText(txtNeg);
            cond = transformer.prepare(times(b, schedule.timestep(0)), latent.dim(2) / p[0], latent.dim(3) / p[1], latent.dim(4) / p[2]);
            xIn = ops.empty(act, latent.shape());
            Map<Branch, Tensor> texts = new EnumMap<>(Branch.class);
            texts.put(Branch.COND, ctx);
            if (cfg) texts.put(Branch.UNCOND, ctxNeg);
            WanCachedTransformer.Options options = WanCachedTransformer.Options.eager().withCudaGraphs(graphs).withCalibration(calibration)
                    .withResidualsOnHost(settings.cacheOnHost());
            ct = new WanCachedTransformer(ops, transformer, cache, "wan-" + REQUESTS.incrementAndGet(), steps, xIn, cond, texts, options);
            x = ops.copy(latent);
            for (int i = 0; i < steps; i++) {
                Tensor v;
                try (Scope s = Scope.open()) {
                    Tensor tSin = timeEmbedding(times(b, schedule.timestep(i)));
                    Tensor xa = x.dtype() == act ? x : ops.cast(x, act);
                    FluxCachedTransformer.copyInto(ops, cond.timeSin(), tSin);
                    FluxCachedTransformer.copyInto(ops, xIn, xa);
                    Tensor vPos = ct.velocity(i, Branch.COND);
                    Tensor vNeg = cfg ? ct.velocity(i, Branch.UNCOND) : null;
                    if (cfg) vPos = guided(vPos, vNeg, r.guidance());
                    boolean owned = !cfg;                                                // the cached transformer's buffer
                    v = s.keep(vPos.dtype() != DType.F32 ? ops.cast(vPos, DType.F32) : owned ? ops.copy(vPos) : vPos);
                }
                Tensor next;
                try {
                    next = sampler.step(v, i, x);
                } finally {
                    v.close();
                }
                x.close();
                x = next;
                ops.synchronize();
                progress.step(i + 1, steps, seconds(start));
            }
            CacheReport report = new CacheReport(cache.describe(), ct.summary(), ct.trace(), calibration);
            Denoised d = new Denoised(x, ct.usedGraphs(), report);
            x = null;
            return d;
        } finally {
            sampler.reset();
            if (x != null) x.close();
            if (ct != null) ct.close();
            for (Tensor t : new Tensor[] {xIn, ctx, ctxNeg}) if (t != null) t.close();
            if (cond != null) cond.close();
        }
    }

    /** The request's sampler (UniPC or Euler) over {@code schedule}, stepping latents on {@code ops}. */
    static FlowSampler<Tensor> sampler(WanRequest r, FlowShiftSchedule schedule, Ops ops) {
        return r.sampler().equals("euler") ? new FlowEulerSampler<>(schedule, LatentAlgebra.tensors(ops))
                : new FlowUniPcSampler<>(schedule, LatentAlgebra.tensors(ops));
    }

    /** v_neg + g·(v_pos − v_neg) in F32. */
    private Tensor guided(Tensor vPos, Tensor vNeg, float g) { return guided(ops, vPos, vNeg, g); }

    /** v_neg + g·(v_pos − v_neg) in F32 on {@code ops}. */
    static Tensor guided(Ops ops, Tensor vPos, Tensor vNeg, float g) {
        Tensor a = vPos.dtype() == DType.F32 ? vPos : ops.cast(vPos, DType.F32);
        Tensor n = vNeg.dtype() == DType.F32 ? vNeg : ops.cast(vNeg, DType.F32);
        return ops.add(n, ops.scale(ops.sub(a, n), g));
    }

    /** The transformer's sinusoidal time input F32 [B, freqDim] on the device. */
    private Tensor timeEmbedding(float[] t) { return timeEmbedding(ops, config, t); }

    /** The sinusoidal time input F32 [B, freqDim] of {@code cfg}'s transformer on {@code ops}' device. */
    static Tensor timeEmbedding(Ops ops, WanConfig cfg, float[] t) {
        Tensor host = Timesteps.embedding(t, cfg.freqDim(), 1f);
        if (ops.device().isCpu()) return host;
        Tensor d = ops.upload(host);
        host.close();
        return d;
    }

    /** Captures the forwards of one step; their outputs stay in {@code out} (the same memory at every replay). */
    private CudaGraph capture(CudaBackend cuda, Tensor xIn, Tensor ctx, Tensor ctxNeg, WanTransformer.Conditioning cond, Tensor[] out) {
        return CudaGraph.capture(cuda, () -> {
            Tensor v = transformer.forwardEmbedded(xIn, ctx, cond);
            out[0] = Scope.current() != null ? Scope.current().keep(v) : v;
            if (ctxNeg != null) {
                Tensor n = transformer.forwardEmbedded(xIn, ctxNeg, cond);
                out[1] = Scope.current() != null ? Scope.current().keep(n) : n;
            }
        });
    }

    static float[] times(int b, long t) {
        float[] a = new float[b];
        java.util.Arrays.fill(a, (float) t);
        return a;
    }

    /** The normalised latent F32 → B videos of 8-bit frames, one latent frame decoded at a time. */
    private List<List<RgbImage>> decode(Tensor latent) {
        int b = Math.toIntExact(latent.dim(0));
        List<List<RgbImage>> videos = new ArrayList<>();
        for (int i = 0; i < b; i++) videos.add(new ArrayList<>());
        try (Scope s = Scope.open()) {
            Tensor z = latent.dtype() == settings.vaeDtype() ? latent : ops.cast(latent, settings.vaeDtype());
            Tensor raw = vae.denormalize(z);
            vae.decodeRaw(raw, 1, chunk -> {
                Tensor host = ops.device().isCpu() ? chunk : ops.toHost(chunk);
                int w = Math.toIntExact(host.dim(4)), h = Math.toIntExact(host.dim(3));
                for (int v = 0; v < b; v++)
                    for (int f = 0; f < host.dim(2); f++)
                        videos.get(v).add(new RgbImage(w, h, WanVideoFrames.toRgb8(host, v, f, WanVideoFrames.Rounding.NEAREST_EVEN)));
                if (host != chunk) host.close();
            });
        }
        List<List<RgbImage>> out = new ArrayList<>();
        for (List<RgbImage> v : videos) out.add(List.copyOf(v));
        return List.copyOf(out);
    }

    /** B copies of x:[1, …] along dim 0 (x itself for B = 1); x is closed when copied. */
    private Tensor repeat(Tensor x, int b) {
        if (b == 1) return x;
        Tensor[] copies = new Tensor[b];
        java.util.Arrays.fill(copies, x);
        Tensor out;
        try (Scope s = Scope.open()) {
            out = s.keep(ops.concat(0, copies));
        }
        x.close();
        return out;
    }

    // ------------------------------------------------------------------------------------------------ loading

    private void loadText() {
        if (t5 != null) return;
        if (tokenizer == null) {
            Path t = files.tokenizer();
            tokenizer = Files.isDirectory(t) ? T5Tokenizer.fromFolder(t)
                    : T5Tokenizer.fromSentencePiece(EmbeddedTokenizer.spieceModel(t), t + " (embedded spiece_model)");
        }
        DType act = settings.activation() == DType.F16 ? DType.BF16 : settings.activation();
        try (WeightSource w = WeightSource.open(files.t5())) {
            t5 = T5Encoder.load(ops, w, act);
        }
        if (!t5.config().perLayerBias()) {
            releaseText();
            throw new CheckpointException("the text encoder " + files.t5() + " is a T5 v1.1 encoder (one shared position bias), not "
                    + "umT5: Wan2.1 needs umT5-XXL (e.g. umt5_xxl_fp16.safetensors or the diffusers folder's text_encoder/)");
        }
    }

    private void loadTransformer() {
        if (transformer != null) return;
        weights = loadTransformerWeights(ops);
        transformer = new WanTransformer(ops, weights);
    }

    /**
     * The transformer's weights on every backend of {@code targets} (a mesh's ranks) from one opening of the checkpoint
     * (one mapping: the host holds the file's pages once, whatever the number of GPUs), uploaded in parallel, one thread
     * per target. In target order, caller-owned; on a failure the ones already loaded are closed and the first error
     * is thrown.
     */
    List<WanWeights> loadTransformerWeights(List<? extends Ops> targets) {
        try (WeightSource w = WeightSource.open(files.transformer())) {
            return org.dit4j.engine.parallel.PerDevice.make(targets, "loading " + files.transformer().getFileName(), true,
                    on -> WanWeights.load(on, w, config, settings.weightDtype()));
        }
    }

    /** The transformer's weights in the settings' dtype on {@code onto} (e.g. a mesh rank's backend); caller-owned. */
    WanWeights loadTransformerWeights(Ops onto) {
        try (WeightSource w = WeightSource.open(files.transformer())) {
            return WanWeights.load(onto, w, config, settings.weightDtype());
        }
    }

    private void loadVae() {
        if (vae != null) return;
        try (WeightSource w = WeightSource.open(files.vae())) {
            vae = WanVae.load(ops, w, vaeConfig, settings.vaeDtype());
        }
    }

    private void releaseText() {
        if (t5 != null) t5.close();
        t5 = null;
    }

    private void releaseTransformer() {
        if (weights != null) weights.close();
        weights = null;
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
        return String.format(Locale.ROOT, "WanPipeline[%s, %s, %s]", kind(), files.description(), ops.name());
    }
}
