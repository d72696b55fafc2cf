package org.dit4j.server.wan;

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
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.engine.wan.WanCachedTransformer;
import org.dit4j.models.nn.Timesteps;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.preview.LatentFormat;
import org.dit4j.server.sampling.KSamplers;
import org.dit4j.server.sampling.ModelSampling;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One sampler run with ComfyUI's semantics for Wan2.1 text-to-video ({@code comfy.samplers}, {@code comfy.model_sampling.CONST},
 * {@code comfy.model_base.WAN21}, {@code comfy.latent_formats.Wan21}). Latent arithmetic is float32 on the host in
 * ComfyUI's order; the transformer runs on the device:
 * <ol>
 *   <li>latent format: a latent with any non-zero value goes into the model space, ((x − mean)·1)/std per channel (an
 *       empty latent does not);</li>
 *   <li>noise: {@code torch.randn} of the latent shape [B, 16, F, h, w] from a CPU generator seeded with the seed (zeros
 *       when noise is disabled); x = σ₀·noise + (1 − σ₀)·latent;</li>
 *   <li>the sampler loop ({@link KSamplers}) calls the model once per step: the transformer's velocity v for x (cast to
 *       the compute dtype) at timestep σ·1000 (float, ModelSamplingDiscreteFlow's multiplier), the umT5 states of each
 *       conditioning embedded once; denoised = x − v·σ; with a negative conditioning and cfg ≠ 1 a second pass and
 *       denoised = uncond + (cond − uncond)·cfg;</li>
 *   <li>x / (1 − σ_last) where σ_last ≠ 0, then back to the VAE's space x·std + mean.</li>
 * </ol>
 * On a CUDA backend the step's transformer calls are captured in a CUDA graph after the first (eager) step and replayed
 * with the new latent and time embedding copied into the same tensors (unless the MODEL carries a compile setting
 * without CUDA graphs).
 * <p>
 * A step cache on the MODEL (TeaCache, ParallelTeaCache, MagCache nodes with a threshold other than 0, see
 * {@link #stepCache}) runs the transformer in stages ({@link WanCachedTransformer}): the latent and the sinusoidal time
 * input are written into fixed tensors before every model call, and each branch's velocity comes from
 * {@code velocity(step, branch)} — the blocks, or the branch's cached residual where the policy skips — with one CUDA
 * graph per branch and stage on a CUDA backend. Sigmas, sampler and CFG combine are the same as without a cache; at
 * threshold 0 the uncached path runs unchanged. The engine's {@code WanPipeline} with the same policy and schedule
 * takes the same decisions (the signals depend on the timestep only).
 * <p>
 * With ParallelUNETLoader's num_gpus &gt; 1 the transformer runs on the engine's mesh ({@link WanMesh}: Ulysses/ring
 * over token rows, CFG branches on two GPUs, data parallel over the batch) with the same host-side sampler loop on
 * every rank; a step cache there needs a sequence-parallel layout (ulysses/ring; cfg_degree 2 and data parallelism are
 * refused naming the input). Not supported for Wan (refused with a message): LoRAs, noise masks, combined conditioning.
 */
final class WanSampler {

    private static final float[] MEAN = WanVaeConfig.WAN21_LATENTS_MEAN, STD = WanVaeConfig.WAN21_LATENTS_STD;

    private final Ops ops;
    private final DType act;
    private final WanMesh mesh;

    WanSampler(Ops ops, DType act, WanMesh mesh) {
        this.ops = ops;
        this.act = act;
        this.mesh = mesh;
    }

    SampleResult sample(SampleJob job, StepObserver observer) {
        if (Scope.current() != null) throw new IllegalStateException("sample runs outside any open Scope");
        ModelRef ref = job.model();
        WanModel model = (WanModel) ref.base();
        if (!KSamplers.NAMES.contains(job.sampler()))
            throw new IllegalArgumentException("sampler '" + job.sampler() + "' is not implemented by dit4j; use one of " + KSamplers.NAMES);
        refuseUnsupported(ref, model);
        Latent in = job.latent();
        WanConfig cfg = model.config();
        long[] shape = in.shape();
        if (shape.length != 5)
            throw new IllegalArgumentException("Wan denoises video latents [B, " + cfg.inChannels() + ", F, h, w], got " + in
                    + (shape.length == 4 ? " (an image latent: use EmptyHunyuanLatentVideo for Wan)" : ""));
        if (in.channels() != cfg.inChannels())
            throw new IllegalArgumentException("model " + model.name() + " denoises latents with " + cfg.inChannels() + " channels, got " + in);
        int[] p = cfg.patch();
        if (shape[2] % p[0] != 0 || shape[3] % p[1] != 0 || shape[4] % p[2] != 0)
            throw new IllegalArgumentException("latent " + in + " does not divide into Wan's " + p[0] + "×" + p[1] + "×" + p[2]
                    + " patches: width and height must be multiples of " + 8 * p[2] + " pixels");
        if (in.noiseMask() != null)
            throw new UnsupportedOperationException("latents with a noise mask are not supported by dit4j's Wan engine yet");
        float[] sigmas = job.sigmas();
        if (sigmas.length < 2) return new SampleResult(in, in);
        ModelSampling sampling = ref.sampling();
        boolean cfgPass = job.negative() != null && !isClose(job.cfg(), 1.0);

        float[] latent = in.samples();
        int plane = (int) (shape[2] * shape[3] * shape[4]);
        if (!in.isAllZero()) latent = processIn(latent, plane);
        float[] noise = job.addNoise() ? new TorchGenerator(job.noiseSeed()).randnFloats(latent.length) : new float[latent.length];
        float s0 = sigmas[0], oneMinus = 1.0f - s0;
        float[] x = new float[latent.length];
        for (int i = 0; i < x.length; i++) x[i] = s0 * noise[i] + oneMinus * latent[i];

        boolean graphs = ops instanceof CudaBackend && (ref.compile() == null || ref.compile().cudaGraphs());
        KSamplers.Result r;
        if (ref.parallel().gpus() > 1) {
            r = mesh.sample(model, job, shape, x, cfgPass, graphs, observer);
        } else {
            StepCache policy = stepCache(ref.cache(), cfg);
            try (Steps stepper = new Steps(model.transformer(), cfg, job, shape, cfgPass, graphs, policy, sigmas.length - 1)) {
                r = KSamplers.sample(job.sampler(), (xi, i, sigma) -> stepper.denoise(xi, i, sigma, sampling), x, sigmas,
                        (i, n, d) -> observer.stepDone(i, n, LatentFormat.WAN21, d, shape));
                if (stepper.cached != null) {
                    RunSummary summary = stepper.cached.summary();
                    lastCacheSummary = summary;
                    System.out.println("dit4j server: " + policy.describe() + ": " + summary(summary));
                }
            }
        }
        float[] out = r.x();
        float last = r.finalSigma();
        if (last != 0f) {                                                                          // CONST.inverse_noise_scaling
            float keep = 1.0f - last;
            for (int j = 0; j < out.length; j++) out[j] = out[j] / keep;
        }
        return new SampleResult(new Latent(shape, processOut(out, plane)), new Latent(shape, processOut(r.denoised(), plane)));
    }

    private static void refuseUnsupported(ModelRef ref, WanModel model) {
        if (!ref.loras().isEmpty())
            throw new UnsupportedOperationException("LoRAs on Wan models are not supported by dit4j yet; remove the LoRA loader before "
                    + model.name());
        stepCache(ref.cache(), model.config());                  // an unknown or mismatched model_type fails before any work
    }

    /** The summary of the last cached run (on a mesh: rank 0's), computed and skipped steps per branch, or null; for tests. */
    static volatile RunSummary lastCacheSummary;

    private static final AtomicLong REQUESTS = new AtomicLong();

    /**
     * The step cache of the MODEL as the ComfyUI nodes configure it for Wan2.1 text-to-video, or null when there is none
     * or its threshold is 0 (ComfyUI's nodes then change nothing). The node's {@code model_type} picks the published
     * constants: {@code wan2.1_t2v_1.3B} / {@code wan2.1_t2v_14B} (TeaCache's time-embedding coefficients, MagCache's
     * 50-step γ table of that model), {@code …_ret_mode} (TeaCache's time-projection coefficients). TeaCache: the
     * ComfyUI-TeaCache evaluation (term-by-term polynomial, no forced steps besides each branch's first call, the
     * start/end window); MagCache: the ComfyUI-MagCache Wan forward (≤, float32, γ table truncated to the run's steps,
     * the node's threshold, K and retention ratio). A model_type for another model (flux, cogvideox, image-to-video), or
     * one whose size contradicts the loaded model (a 14B preset on the 1.3B width 1536 or the reverse), is refused.
     */
    static StepCache stepCache(ModelRef.CacheSetting c, WanConfig config) {
        CacheSpec spec = c.spec();
        if (spec.kind() == CacheSpec.Kind.NONE) return null;
        double threshold = spec.threshold().orElse(Double.NaN);
        if (threshold == 0) return null;
        CacheModel m = cacheModel(spec.kind().word(), c.modelType(), config);
        return switch (spec.kind()) {
            case TEACACHE, TEACACHE_RET -> {
                boolean ret = spec.kind() == CacheSpec.Kind.TEACACHE_RET;
                TeaCache.Preset p = ret ? m.teaCacheRet() : m.teaCache();
                yield new TeaCache(TeaCache.Config.comfyUi(p, Double.isNaN(threshold) ? p.recommendedThreshold() : threshold,
                        c.startPercent(), c.endPercent()));
            }
            case MAGCACHE -> {
                MagCache.Preset p = m.magCache();
                yield new MagCache(MagCache.Config.comfyUi(p.table(), false, Double.isNaN(threshold) ? p.threshold() : threshold,
                        spec.retention().orElse(p.retentionRatio()), spec.k().orElse(p.k()), 0, -1));
            }
            default -> spec.build(m);
        };
    }

    /**
     * The published Wan2.1 constants a node's model_type names: {@code wan2.1_t2v_1.3B…} or {@code wan2.1_t2v_14B…}
     * (case-insensitive); the model's width must agree where it is one of the published sizes (1536: 1.3B, 5120: 14B;
     * other widths, as the tiny test models, take either).
     */
    static CacheModel cacheModel(String node, String modelType, WanConfig config) {
        String t = modelType.toLowerCase(Locale.ROOT);
        CacheModel m = t.startsWith("wan2.1_t2v_1.3b") ? CacheModel.WAN21_T2V_1_3B : t.startsWith("wan2.1_t2v_14b") ? CacheModel.WAN21_T2V_14B : null;
        if (m == null)
            throw new IllegalArgumentException(node + " model_type '" + modelType + "' has no constants for this engine, which runs Wan2.1 "
                    + "text-to-video: use model_type wan2.1_t2v_1.3B or wan2.1_t2v_14B" + (node.startsWith("teacache") ? " (or their _ret_mode)" : ""));
        CacheModel loaded = config.dim() == 5120 ? CacheModel.WAN21_T2V_14B : config.dim() == 1536 ? CacheModel.WAN21_T2V_1_3B : null;
        if (loaded != null && loaded != m)
            throw new IllegalArgumentException(node + " model_type '" + modelType + "' is for " + m.id() + ", but the loaded model is "
                    + loaded.id() + " (width " + config.dim() + "): choose the model_type of the loaded model");
        return m;
    }

    private static String summary(RunSummary s) {
        StringBuilder sb = new StringBuilder();
        for (Branch b : s.branches())
            sb.append(sb.isEmpty() ? "" : ", ").append(b.label()).append(' ').append(s.computed(b)).append('/').append(s.totalSteps())
                    .append(" steps computed");
        return sb.toString();
    }

    /**
     * text_embedding(umT5 states) of a conditioning, repeated to a batch of {@code b}, in the compute dtype (owned by
     * the caller, outside any scope when none is open).
     */
    static Tensor embedText(Ops ops, DType act, WanTransformer transformer, WanConfig cfg, Conditioning c, int b) {
        if (c.entries().size() != 1)
            throw new UnsupportedOperationException("conditioning with " + c.entries().size() + " entries (combined or area conditioning) "
                    + "is not supported by dit4j's Wan engine yet");
        if (!(c.entries().getFirst().embedding() instanceof WanTextEmbedding e))
            throw new IllegalArgumentException("conditioning " + c.entries().getFirst().embedding() + " was not made by dit4j's Wan text "
                    + "encoder (CLIPLoader type wan with umT5-XXL)");
        if (e.width() != cfg.textDim())
            throw new IllegalArgumentException("the text encoder gives umT5 states of width " + e.width() + ", but the Wan model takes "
                    + cfg.textDim() + ": text encoder and model do not belong together");
        float[] all = new float[b * e.states().length];
        for (int n = 0; n < b; n++) System.arraycopy(e.states(), 0, all, n * e.states().length, e.states().length);
        try (Scope s = Scope.open()) {
            Tensor t = ops.upload(Tensor.of(all, b, e.tokens(), e.width()));
            if (act != DType.F32) t = ops.cast(t, act);
            return s.keep(transformer.embedText(t));
        }
    }

    static boolean isClose(double a, double b) { return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b)); }

    /** Wan21.process_in: (x − mean)·scale_factor / std per channel (scale_factor 1). */
    static float[] processIn(float[] x, int plane) {
        float[] o = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = (i / plane) % MEAN.length;
            o[i] = ((x[i] - MEAN[c]) * 1.0f) / STD[c];
        }
        return o;
    }

    /** Wan21.process_out: x·std / scale_factor + mean per channel. */
    static float[] processOut(float[] x, int plane) {
        float[] o = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            int c = (i / plane) % MEAN.length;
            o[i] = ((x[i] * STD[c]) / 1.0f) + MEAN[c];
        }
        return o;
    }

    /** ComfyUI's CFG on denoised predictions: x − v·σ per branch, then uncond + (cond − uncond)·cfg. */
    static float[] guided(float[] x, float sigma, float[][] velocities, float cfgScale) {
        float[][] den = new float[velocities.length][];
        for (int k = 0; k < den.length; k++) {
            float[] vel = velocities[k], d = new float[x.length];
            for (int j = 0; j < d.length; j++) d[j] = x[j] - vel[j] * sigma;
            den[k] = d;
        }
        if (den.length == 1) return den[0];
        float[] c = den[0], u = den[1], out = new float[x.length];
        for (int j = 0; j < x.length; j++) out[j] = u[j] + (c[j] - u[j]) * cfgScale;
        return out;
    }

    /** The transformer passes of one run: embedded text per branch, RoPE tables, and the CUDA graph when used. */
    private final class Steps implements AutoCloseable {
        final WanTransformer transformer;
        final WanConfig cfg;
        final long[] shape;
        final int b;
        final float cfgScale;
        final boolean graphs;
        final List<Tensor> texts = new ArrayList<>();
        WanTransformer.Conditioning cond;
        Tensor xIn;
        WanCachedTransformer cached;
        CudaGraph graph;
        Tensor[] graphOut;
        boolean captureFailed;

        Steps(WanTransformer transformer, WanConfig cfg, SampleJob job, long[] shape, boolean cfgPass, boolean graphs, StepCache policy,
              int steps) {
            this.transformer = transformer;
            this.cfg = cfg;
            this.shape = shape;
            this.b = (int) shape[0];
            this.cfgScale = (float) job.cfg();
            this.graphs = graphs;
            try {
                texts.add(embed(job.positive()));
                if (cfgPass) texts.add(embed(job.negative()));
                int[] p = cfg.patch();
                cond = transformer.prepare(times(job.model().sampling().timestep(job.sigmas()[0])), shape[2] / p[0], shape[3] / p[1],
                        shape[4] / p[2]);
                if (graphs || policy != null) xIn = ops.empty(act, org.dit4j.core.tensor.Shape.of(shape));
                if (policy != null) {
                    Map<Branch, Tensor> byBranch = new EnumMap<>(Branch.class);
                    byBranch.put(Branch.COND, texts.get(0));
                    if (cfgPass) byBranch.put(Branch.UNCOND, texts.get(1));
                    cached = new WanCachedTransformer(ops, transformer, policy, "serve-wan-" + REQUESTS.incrementAndGet(), steps, xIn, cond,
                            byBranch, WanCachedTransformer.Options.eager().withCudaGraphs(graphs));
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        private float[] times(float t) {
            float[] a = new float[b];
            Arrays.fill(a, t);
            return a;
        }

        private Tensor embed(Conditioning c) { return embedText(ops, act, transformer, cfg, c, b); }

        float[] denoise(float[] x, int i, float sigma, ModelSampling sampling) {
            float t = sampling.timestep(sigma);
            float[][] vel = new float[texts.size()][];
            try (Scope s = Scope.open()) {
                Tensor host = Timesteps.embedding(times(t), cfg.freqDim(), 1f);
                Tensor tSin = ops.device().isCpu() ? host : ops.upload(host);
                Tensor xs = ops.upload(Tensor.of(x, shape));
                Tensor xa = act == DType.F32 ? xs : ops.cast(xs, act);
                Tensor[] v = new Tensor[texts.size()];
                if (cached != null) {
                    FluxCachedTransformer.copyInto(ops, cond.timeSin(), tSin);
                    FluxCachedTransformer.copyInto(ops, xIn, xa);
                    v[0] = cached.velocity(i, Branch.COND);                         // per-branch buffers of the cached
                    if (v.length == 2) v[1] = cached.velocity(i, Branch.UNCOND);   // transformer, valid until the next step
                } else if (graphs) {
                    CudaBackend cuda = (CudaBackend) ops;
                    cuda.copyInto(cond.timeSin(), tSin);
                    cuda.copyInto(xIn, xa);
                    if (i > 0 && graph == null && !captureFailed) {
                        graphOut = new Tensor[texts.size()];
                        try {
                            graph = CudaGraph.capture(cuda, () -> {
                                for (int k = 0; k < texts.size(); k++) {
                                    Tensor out = transformer.forwardEmbedded(xIn, texts.get(k), cond);
                                    graphOut[k] = Scope.current() != null ? Scope.current().keep(out) : out;
                                }
                            });
                        } catch (RuntimeException ex) {
                            for (Tensor o : graphOut) if (o != null) o.close();
                            graphOut = null;
                            captureFailed = true;
                            System.err.println("dit4j server: CUDA graph capture failed (" + ex.getMessage() + "); running the steps eagerly");
                        }
                    }
                    if (graph != null) {
                        graph.replay();
                        v = graphOut;
                    } else {
                        for (int k = 0; k < v.length; k++) v[k] = transformer.forwardEmbedded(xIn, texts.get(k), cond);
                    }
                } else {
                    WanTransformer.Conditioning c = new WanTransformer.Conditioning(tSin, cond.rope(), cond.frames(), cond.height(), cond.width());
                    for (int k = 0; k < v.length; k++) v[k] = transformer.forwardEmbedded(xa, texts.get(k), c);
                }
                for (int k = 0; k < v.length; k++) {
                    Tensor f = v[k].dtype() == DType.F32 ? v[k] : ops.cast(v[k], DType.F32);
                    Tensor h = f.device().isCpu() ? f : ops.toHost(f);
                    vel[k] = h.toFloatArray();
                }
            }
            return guided(x, sigma, vel, cfgScale);
        }

        @Override public void close() {
            if (cached != null) cached.close();
            if (graph != null) graph.close();
            if (graphOut != null) for (Tensor t : graphOut) if (t != null) t.close();
            for (Tensor t : texts) t.close();
            if (xIn != null) xIn.close();
            if (cond != null) cond.close();
        }
    }
}
