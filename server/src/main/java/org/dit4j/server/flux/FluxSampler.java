package org.dit4j.server.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaGraph;
import org.dit4j.engine.cache.CacheModel;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.RunSummary;
import org.dit4j.engine.cache.StepCache;
import org.dit4j.engine.cache.TeaCache;
import org.dit4j.engine.flux.FluxCachedTransformer;
import org.dit4j.engine.parallel.FluxSequenceParallel;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxEmbeddings;
import org.dit4j.models.flux.FluxRope;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.models.nn.Timesteps;
import org.dit4j.models.vae.VaeConfig;
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
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One sampler run with ComfyUI's semantics for Flux ({@code comfy.samplers} / {@code comfy.k_diffusion.sampling} /
 * {@code comfy.model_sampling.CONST} / {@code comfy.ldm.flux.model}). All latent arithmetic is float32 on the host, in
 * ComfyUI's operation order; only the transformer runs on the device:
 * <ol>
 *   <li>latent format: a latent with any non-zero value is shifted into the model space, (x − 0.1159)·0.3611 (an empty
 *       latent is not);</li>
 *   <li>noise: {@code torch.randn} of the latent shape from a CPU generator seeded with the seed (zeros when noise is
 *       disabled); x = σ₀·noise + (1 − σ₀)·latent;</li>
 *   <li>the sampler loop ({@link KSamplers}: euler, uni_pc, uni_pc_bh2) calls the model once per step: the
 *       transformer's velocity v for x (padded to even sides by wrapping, packed 2×2, cast to the compute dtype) at
 *       timestep = model_sampling.timestep(σ); denoised = x − v·σ; with a negative conditioning and cfg ≠ 1
 *       (math.isclose) a second pass and denoised = uncond + (cond − uncond)·cfg;</li>
 *   <li>x / (1 − σ_last) (CONST inverse noise scaling; UniPC's σ_last is 0.001 where the schedule ends at 0), then back
 *       to the raw space x/0.3611 + 0.1159; the last denoised prediction likewise (SamplerCustomAdvanced's second
 *       output).</li>
 * </ol>
 * Conditioning: T5 states and pooled CLIP-L per entry; Flux guidance from FluxGuidance (default 3.5), passed as
 * ComfyUI passes it (rounded to the compute dtype, and 1000·g rounded again, before the sinusoidal embedding);
 * reference latents (ReferenceLatent / Kontext) shifted into the model space, repeated to the batch, appended after
 * the image tokens with position ids (1, row + h_off, col + w_off) by ComfyUI's "offset" rule, and dropped from the
 * output. On a CUDA backend the transformer calls of a step are captured in a CUDA graph after the first (eager)
 * step and replayed (unless the MODEL carries a compile setting without CUDA graphs). With num_gpus &gt; 1 the
 * transformer runs on the engine's mesh ({@link FluxMesh}).
 */
final class FluxSampler {

    static final List<String> SAMPLERS = KSamplers.NAMES;

    /** ComfyUI's latent_formats.Flux. */
    static final float SCALE = VaeConfig.FLUX_SCALING, SHIFT = VaeConfig.FLUX_SHIFT;

    private final FluxEngine engine;
    private final Ops ops;
    private final DType act;

    FluxSampler(FluxEngine engine) {
        this.engine = engine;
        this.ops = engine.ops();
        this.act = engine.activation();
    }

    // ------------------------------------------------------------------------------------------------ entry

    SampleResult sample(SampleJob job, StepObserver observer) {
        if (Scope.current() != null) throw new IllegalStateException("sample runs outside any open Scope");
        ModelRef ref = job.model();
        if (!(ref.base() instanceof FluxModel model))
            throw new IllegalArgumentException("model " + ref.base().name() + " was not loaded by dit4j's Flux engine");
        if (!SAMPLERS.contains(job.sampler()))
            throw new IllegalArgumentException("sampler '" + job.sampler() + "' is not implemented by dit4j's Flux engine; use one of " + SAMPLERS);
        Latent in = job.latent();
        FluxConfig cfg = model.config();
        int channels = model.latentChannels();
        long[] shape = in.shape();
        if (shape.length != 4)
            throw new IllegalArgumentException("Flux denoises image latents [B, " + channels + ", H, W], got " + in
                    + (shape.length == 5 ? " (a video latent: use EmptySD3LatentImage for Flux)" : ""));
        if (in.channels() != channels)
            throw new IllegalArgumentException("model " + model.name() + " denoises latents with " + channels + " channels, got " + in);
        if (in.noiseMask() != null)
            throw new UnsupportedOperationException("latents with a noise mask (inpainting) are not supported by dit4j's Flux engine yet");
        float[] sigmas = job.sigmas();
        if (sigmas.length < 2) return new SampleResult(in, in);

        Geometry g = new Geometry(in.batch(), channels, in.height(), in.width());
        ModelSampling sampling = ref.sampling();
        boolean cfgPass = job.negative() != null && !isClose(job.cfg(), 1.0);

        // latent format, noise, noise scaling
        float[] latent = in.samples();
        if (!in.isAllZero()) latent = processIn(latent);
        float[] noise = job.addNoise() ? new TorchGenerator(job.noiseSeed()).randnFloats(latent.length) : new float[latent.length];
        float s0 = sigmas[0], oneMinus = 1.0f - s0;
        float[] x = new float[latent.length];
        for (int i = 0; i < x.length; i++) x[i] = s0 * noise[i] + oneMinus * latent[i];

        boolean graphs = ops instanceof CudaBackend && (ref.compile() == null || ref.compile().cudaGraphs());
        StepCache policy = stepCache(ref.cache());
        int steps = sigmas.length - 1;
        KSamplers.Result r;
        if (ref.parallel().gpus() > 1) {
            r = engine.mesh().sample(this, model, job, g, x, observer);
        } else {
            try (Steps stepper = new Steps(model, ref, job, g, policy, graphs, cfgPass, steps)) {
                r = KSamplers.sample(job.sampler(), (xi, i, sigma) -> stepper.denoise(xi, i, sigma, sampling), x, sigmas,
                        (i, n, d) -> observer.stepDone(i, n, LatentFormat.FLUX, d, shape));
                if (stepper.cached != null)
                    System.out.println("dit4j server: " + policy.describe() + ": " + summary(stepper.cached.summary(), cfgPass));
            }
        }
        float[] out = r.x();
        float last = r.finalSigma();
        if (last != 0f) {                                                                          // CONST.inverse_noise_scaling
            float keep = 1.0f - last;
            for (int j = 0; j < out.length; j++) out[j] = out[j] / keep;
        }
        return new SampleResult(new Latent(shape, processOut(out)), new Latent(shape, processOut(r.denoised())));
    }

    /** ComfyUI's CFG: the conditional prediction alone, or uncond + (cond − uncond)·cfg with a second branch. */
    static float[] guided(float[] x, float sigma, float[][] velocities, float cfgScale) {
        float[][] den = new float[velocities.length][];
        for (int k = 0; k < den.length; k++) {
            float[] vel = velocities[k], d = new float[x.length];
            for (int j = 0; j < d.length; j++) d[j] = x[j] - vel[j] * sigma;                        // CONST.calculate_denoised
            den[k] = d;
        }
        if (den.length == 1) return den[0];
        float[] c = den[0], u = den[1], out = new float[x.length];
        for (int j = 0; j < x.length; j++) out[j] = u[j] + (c[j] - u[j]) * cfgScale;               // cfg_function
        return out;
    }

    /**
     * The transformer passes of one sampler run on this engine's device: per model call the velocity of every branch
     * (eager, CUDA graph replay after the first step, or the step cache), turned into ComfyUI's denoised prediction.
     */
    private final class Steps implements AutoCloseable {
        final List<Branch> branches = new ArrayList<>();
        final Geometry g;
        final FluxTransformer transformer;
        final boolean graphs;
        final float cfgScale;
        FluxCachedTransformer cached;
        CudaGraph graph;
        Tensor[] graphOut;
        boolean captureFailed;

        Steps(FluxModel model, ModelRef ref, SampleJob job, Geometry g, StepCache policy, boolean graphs, boolean cfgPass, int steps) {
            this.g = g;
            this.graphs = graphs;
            this.cfgScale = (float) job.cfg();
            try {
                branches.add(branch(model, job.positive(), g, policy != null));
                if (cfgPass) branches.add(branch(model, job.negative(), g, false));
                transformer = model.transformer(loraSpecs(ref));
                if (policy != null) {
                    if (cfgPass) requireSharedInputs(job.positive(), job.negative(), branches, policy);
                    Map<org.dit4j.engine.cache.Branch, FluxCachedTransformer.Text> texts = new EnumMap<>(org.dit4j.engine.cache.Branch.class);
                    texts.put(org.dit4j.engine.cache.Branch.COND, new FluxCachedTransformer.Text(branches.get(0).txt, branches.get(0).y));
                    if (cfgPass)
                        texts.put(org.dit4j.engine.cache.Branch.UNCOND, new FluxCachedTransformer.Text(branches.get(1).txt, branches.get(1).y));
                    cached = new FluxCachedTransformer(ops, transformer, policy, "serve-" + REQUESTS.incrementAndGet(), steps,
                            branches.get(0).imgIn, branches.get(0).cond, texts, FluxCachedTransformer.Options.eager().withCudaGraphs(graphs));
                }
            } catch (RuntimeException e) {
                close();
                throw e;
            }
        }

        float[] denoise(float[] x, int i, float sigma, ModelSampling sampling) {
            float t = sampling.timestep(sigma);
            float[][] vel = new float[branches.size()][];
            try (Scope s = Scope.open()) {
                float[] tb = new float[g.b];
                java.util.Arrays.fill(tb, t);
                Tensor tSin = FluxEmbeddings.sinEmb(ops, tb, act);
                Tensor xPacked = ops.upload(Tensor.of(pack(x, g), g.b, g.tokens(), 4L * g.c));
                Tensor xAct = ops.cast(xPacked, act);
                Tensor[] v = new Tensor[branches.size()];
                if (cached != null) {
                    Branch b0 = branches.getFirst();
                    FluxCachedTransformer.copyInto(ops, b0.cond.timeSin(), tSin);
                    FluxCachedTransformer.copyInto(ops, b0.imgIn, b0.ref == null ? xAct : ops.concat(1, xAct, b0.ref));
                    v[0] = cached.velocity(i, org.dit4j.engine.cache.Branch.COND);
                    if (v.length == 2) v[1] = cached.velocity(i, org.dit4j.engine.cache.Branch.UNCOND);
                } else if (graphs) {
                    CudaBackend cuda = (CudaBackend) ops;
                    for (Branch br : branches) {
                        cuda.copyInto(br.cond.timeSin(), tSin);
                        cuda.copyInto(br.imgIn, br.ref == null ? xAct : ops.concat(1, xAct, br.ref));
                    }
                    if (i > 0 && graph == null && !captureFailed) {
                        graphOut = new Tensor[branches.size()];
                        try {
                            graph = capture(cuda, transformer, branches, graphOut);
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
                        for (int k = 0; k < v.length; k++) {
                            Branch br = branches.get(k);
                            v[k] = transformer.forward(br.imgIn, br.txt, br.y, br.cond);    // eager (step 0: kernels compile, plans cached)
                        }
                    }
                } else {
                    for (int k = 0; k < v.length; k++) {
                        Branch br = branches.get(k);
                        FluxTransformer.Conditioning c = new FluxTransformer.Conditioning(tSin, br.cond.guidanceSin(), br.cond.pe(),
                                br.cond.nTxt(), br.cond.nImg());
                        v[k] = transformer.forward(br.ref == null ? xAct : ops.concat(1, xAct, br.ref), br.txt, br.y, c);
                    }
                }
                for (int k = 0; k < v.length; k++) {
                    Tensor vi = ops.slice(v[k], 1, 0, g.tokens());
                    Tensor host = vi.device().isCpu() ? vi : ops.toHost(vi);
                    vel[k] = unpack(host.toFloatArray(), g);
                }
            }
            return guided(x, sigma, vel, cfgScale);
        }

        @Override public void close() {
            if (cached != null) cached.close();
            if (graph != null) graph.close();
            if (graphOut != null) for (Tensor t : graphOut) if (t != null) t.close();
            for (Branch br : branches) br.close();
        }
    }

    private static final AtomicLong REQUESTS = new AtomicLong();

    /**
     * The step cache of the MODEL as the ComfyUI nodes configure it (TeaCache: ComfyUI-TeaCache's polynomial, |·| and
     * start/end window; MagCache: ComfyUI-MagCache's Flux forward with the published Flux.1-dev γ table), or null when
     * there is none or its threshold is 0 (ComfyUI's nodes then change nothing).
     */
    static StepCache stepCache(ModelRef.CacheSetting c) {
        CacheSpec spec = c.spec();
        if (spec.kind() == CacheSpec.Kind.NONE) return null;
        double threshold = spec.threshold().orElse(Double.NaN);
        if (threshold == 0) return null;
        String type = c.modelType().toLowerCase(java.util.Locale.ROOT);
        if (!type.isEmpty() && !type.startsWith("flux"))
            throw new IllegalArgumentException(spec.kind().word() + " model_type '" + c.modelType() + "' is for another model; this "
                    + "engine runs Flux: use model_type flux");
        return switch (spec.kind()) {
            case TEACACHE -> new TeaCache(TeaCache.Config.comfyUi(TeaCache.FLUX,
                    Double.isNaN(threshold) ? TeaCache.FLUX.recommendedThreshold() : threshold, c.startPercent(), c.endPercent()));
            case MAGCACHE -> new MagCache(MagCache.Config.comfyUi(MagCache.FLUX_DEV_28, true,
                    Double.isNaN(threshold) ? MagCache.FLUX_DEV.threshold() : threshold,
                    spec.retention().orElse(MagCache.FLUX_DEV.retentionRatio()), spec.k().orElse(MagCache.FLUX_DEV.k()), 0, -1));
            default -> spec.build(CacheModel.FLUX_DEV);
        };
    }

    /** The MODEL's LoRAs as files and strengths, in application order. */
    static List<LoraSpec> loraSpecs(ModelRef ref) {
        List<LoraSpec> out = new ArrayList<>();
        for (ModelRef.LoraApplication l : ref.loras()) {
            if (!(l.weights() instanceof FluxLora f))
                throw new IllegalArgumentException("LoRA " + l.weights().name() + " was not loaded by dit4j's Flux engine");
            out.add(new LoraSpec(f.file(), (float) l.strength()));
        }
        return out;
    }

    static boolean isClose(double a, double b) { return Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b)); }

    static float[] processIn(float[] x) {
        float[] o = new float[x.length];
        for (int i = 0; i < x.length; i++) o[i] = (x[i] - SHIFT) * SCALE;
        return o;
    }

    static float[] processOut(float[] x) {
        float[] o = new float[x.length];
        for (int i = 0; i < x.length; i++) o[i] = x[i] / SCALE + SHIFT;
        return o;
    }

    // ------------------------------------------------------------------------------------------------ geometry

    /** A latent [b, c, h, w] and its 2×2 patch grid (sides rounded up: odd sides are padded by wrapping around). */
    record Geometry(int b, int c, int h, int w) {
        int hl() { return (h + 1) / 2; }

        int wl() { return (w + 1) / 2; }

        int tokens() { return hl() * wl(); }
    }

    /** [b, c, h, w] → [b, hl·wl, 4c] ("b c (h ph) (w pw) -> b (h w) (c ph pw)") after circular padding to even sides. */
    static float[] pack(float[] x, Geometry g) {
        int hl = g.hl(), wl = g.wl(), f = 4 * g.c;
        float[] out = new float[g.b * hl * wl * f];
        for (int n = 0; n < g.b; n++)
            for (int ch = 0; ch < g.c; ch++) {
                int base = (n * g.c + ch) * g.h * g.w;
                for (int row = 0; row < 2 * hl; row++) {
                    int sr = row < g.h ? row : row - g.h;
                    int hi = row >> 1, ph = row & 1;
                    for (int col = 0; col < 2 * wl; col++) {
                        int sc = col < g.w ? col : col - g.w;
                        int token = hi * wl + (col >> 1);
                        out[(n * hl * wl + token) * f + ch * 4 + ph * 2 + (col & 1)] = x[base + sr * g.w + sc];
                    }
                }
            }
        return out;
    }

    /** [b, hl·wl, 4c] → [b, c, h, w], the padding cut off. */
    static float[] unpack(float[] v, Geometry g) {
        int hl = g.hl(), wl = g.wl(), f = 4 * g.c;
        float[] out = new float[g.b * g.c * g.h * g.w];
        for (int n = 0; n < g.b; n++)
            for (int ch = 0; ch < g.c; ch++)
                for (int row = 0; row < g.h; row++)
                    for (int col = 0; col < g.w; col++) {
                        int token = (row >> 1) * wl + (col >> 1);
                        out[((n * g.c + ch) * g.h + row) * g.w + col] = v[(n * hl * wl + token) * f + ch * 4 + (row & 1) * 2 + (col & 1)];
                    }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ branches

    /** One conditioning's device inputs: T5 states, pooled vector, reference tokens, prepared embeddings and RoPE. */
    static final class Branch implements AutoCloseable {
        Tensor txt, y, ref, imgIn;
        FluxTransformer.Conditioning cond;

        @Override public void close() {
            for (Tensor t : new Tensor[] {txt, y, ref, imgIn}) if (t != null) t.close();
            if (cond != null) cond.close();
        }
    }

    /**
     * With CFG the cached transformer runs both branches over one image input and one prepared conditioning: the two
     * conditionings must agree in T5 length, guidance and reference latents (ConditioningZeroOut of the positive does).
     */
    static void requireSharedInputs(Conditioning pos, Conditioning neg, List<Branch> branches, StepCache policy) {
        Conditioning.Entry p = pos.entries().getFirst(), n = neg.entries().getFirst();
        String differs = null;
        if (branches.get(0).cond.nTxt() != branches.get(1).cond.nTxt())
            differs = "T5 lengths (" + branches.get(0).cond.nTxt() + " and " + branches.get(1).cond.nTxt() + " tokens)";
        else if (!java.util.Objects.equals(p.guidance() == null ? 3.5 : p.guidance(), n.guidance() == null ? 3.5 : n.guidance()))
            differs = "Flux guidance";
        else if (!p.referenceLatents().equals(n.referenceLatents()))
            differs = "reference latents";
        if (differs != null)
            throw new UnsupportedOperationException(policy.name() + " with CFG needs the positive and negative conditioning to have the "
                    + "same " + differs.replaceFirst(" \\(.*", "") + "; they differ in " + differs + ". Use ConditioningZeroOut of the "
                    + "positive as the negative, shorter prompts, or no step cache");
    }

    private static String summary(RunSummary s, boolean cfg) {
        StringBuilder sb = new StringBuilder();
        for (org.dit4j.engine.cache.Branch b : s.branches())
            sb.append(sb.isEmpty() ? "" : ", ").append(b.label()).append(' ').append(s.computed(b)).append('/').append(s.totalSteps())
                    .append(" steps computed");
        return sb.toString();
    }

    private Branch branch(FluxModel model, Conditioning conditioning, Geometry g, boolean fixedInput) {
        return branch(ops, model, conditioning, g, fixedInput, null);
    }

    /**
     * One conditioning's inputs on backend {@code o}; with a sequence group {@code sp} (multi-GPU) the T5 states and
     * the RoPE tables are this rank's rows only (the image input is sharded per step by the caller).
     */
    Branch branch(Ops o, FluxModel model, Conditioning conditioning, Geometry g, boolean fixedInput, FluxSequenceParallel sp) {
        if (conditioning.entries().size() != 1)
            throw new UnsupportedOperationException("conditioning with " + conditioning.entries().size() + " entries (combined or area "
                    + "conditioning) is not supported by dit4j's Flux engine yet");
        Conditioning.Entry e = conditioning.entries().getFirst();
        if (!(e.embedding() instanceof FluxTextEmbedding emb))
            throw new IllegalArgumentException("conditioning " + e.embedding() + " was not made by dit4j's Flux text encoder");
        FluxConfig cfg = model.config();
        if (emb.width() != cfg.contextDim() || emb.pooled().length != cfg.vecDim())
            throw new IllegalArgumentException("the text encoder gives T5 states of width " + emb.width() + " and a pooled vector of "
                    + emb.pooled().length + ", but model " + model.name() + " takes " + cfg.contextDim() + " and " + cfg.vecDim()
                    + ": text encoder and model do not belong together");
        Branch br = new Branch();
        try {
            br.txt = toDevice(o, repeat(emb.t5(), g.b), g.b, emb.tokens(), emb.width());
            if (sp != null) {
                Tensor full = br.txt;
                br.txt = null;
                try (full) { br.txt = sp.shard(o, full, 1); }
            }
            br.y = toDevice(o, repeat(emb.pooled(), g.b), g.b, emb.pooled().length);

            // position ids: image grid, then the references by ComfyUI's "offset" rule
            List<float[]> ids = new ArrayList<>();
            for (int hi = 0; hi < g.hl(); hi++) for (int wi = 0; wi < g.wl(); wi++) ids.add(new float[] {0, hi, wi});
            List<float[]> refTokens = new ArrayList<>();
            int accH = 0, accW = 0, refCount = 0;
            for (Latent r : e.referenceLatents()) {
                if (r.shape().length != 4 || r.channels() != g.c)
                    throw new IllegalArgumentException("reference latent " + r + " must be an image latent [B, " + g.c + ", H, W] (VAEEncode of the Flux VAE)");
                int rh = r.height(), rw = r.width(), hOff = 0, wOff = 0;
                if (rh + accH > rw + accW) wOff = accW;
                else hOff = accH;
                accH = Math.max(accH, rh + hOff);
                accW = Math.max(accW, rw + wOff);
                Geometry rg = new Geometry(r.batch(), g.c, rh, rw);
                float[] packed = pack(processIn(r.samples()), rg);
                refTokens.add(repeatBatch(packed, r.batch(), g.b));
                int ho = (hOff + 1) / 2, wo = (wOff + 1) / 2;
                for (int hi = 0; hi < rg.hl(); hi++) for (int wi = 0; wi < rg.wl(); wi++) ids.add(new float[] {1, hi + ho, wi + wo});
                refCount += rg.tokens();
            }
            if (!refTokens.isEmpty()) br.ref = refDevice(o, refTokens, g, refCount);
            long nImg = ids.size();
            float[][] txtIds = new float[emb.tokens()][3];
            float[][] imgIds = ids.toArray(float[][]::new);
            if (sp != null) {
                long[] tr = sp.rows(txtIds.length), ir = sp.rows(imgIds.length);
                txtIds = java.util.Arrays.copyOfRange(txtIds, (int) tr[0], (int) tr[1]);
                imgIds = java.util.Arrays.copyOfRange(imgIds, (int) ir[0], (int) ir[1]);
            }
            FluxRope.Tables pe = FluxRope.tables(o, cfg, txtIds, imgIds);
            Tensor gSin = null, tSin = null;
            try {
                if (cfg.guidanceEmbed()) gSin = guidanceEmbedding(o, e.guidance() == null ? 3.5 : e.guidance(), g.b);
                float[] zeros = new float[g.b];
                tSin = FluxEmbeddings.sinEmb(o, zeros, act);
            } catch (RuntimeException ex) {
                pe.close();
                if (gSin != null) gSin.close();
                throw ex;
            }
            br.cond = new FluxTransformer.Conditioning(tSin, gSin, pe, txtIds.length, imgIds.length);   // this rank's rows
            if (sp == null && (o instanceof CudaBackend || fixedInput)) br.imgIn = o.empty(act, Shape.of(g.b, nImg, cfg.inChannels()));
            return br;
        } catch (RuntimeException ex) {
            br.close();
            throw ex;
        }
    }

    /**
     * The guidance embedding as ComfyUI computes it: the guidance value becomes a float32 tensor, is cast to the model's
     * compute dtype with the other conditioning inputs, multiplied by 1000 in that dtype, and embedded in float32.
     */
    private Tensor guidanceEmbedding(Ops ops, double guidance, int b) {
        float gv = round(act, (float) guidance);
        float t = round(act, 1000f * gv);
        float[] gb = new float[b];
        java.util.Arrays.fill(gb, t);
        Tensor host = Timesteps.embedding(gb, FluxEmbeddings.TIME_DIM, 1f);
        try (Scope s = Scope.open()) {
            Tensor dev = ops.upload(host);
            return s.keep(dev.dtype() == act ? ops.copy(dev) : ops.cast(dev, act));
        } finally {
            host.close();
        }
    }

    static float round(DType dt, float v) {
        return switch (dt) {
            case BF16 -> DType.bf16ToFloat(DType.floatToBf16(v));
            case F16 -> DType.f16ToFloat(DType.floatToF16(v));
            default -> v;
        };
    }

    private Tensor refDevice(Ops ops, List<float[]> parts, Geometry g, int refTokens) {
        int f = 4 * g.c;
        float[] all = new float[g.b * refTokens * f];
        for (int n = 0; n < g.b; n++) {
            int off = n * refTokens * f;
            for (float[] p : parts) {
                int per = p.length / g.b;
                System.arraycopy(p, n * per, all, off, per);
                off += per;
            }
        }
        return toDevice(ops, all, g.b, refTokens, f);
    }

    /** A host float32 array as a device tensor of the compute dtype (owned by the caller). */
    private Tensor toDevice(Ops ops, float[] v, long... dims) {
        try (Scope s = Scope.open()) {
            Tensor d = ops.upload(Tensor.of(v, dims));
            return s.keep(d.dtype() == act ? ops.copy(d) : ops.cast(d, act));
        }
    }

    /** B copies of a batch-1 array. */
    private static float[] repeat(float[] one, int b) {
        float[] out = new float[one.length * b];
        for (int n = 0; n < b; n++) System.arraycopy(one, 0, out, n * one.length, one.length);
        return out;
    }

    /** comfy.utils.repeat_to_batch_size: element n of the result is element n mod have. */
    private static float[] repeatBatch(float[] x, int have, int want) {
        if (have == want) return x;
        int per = x.length / have;
        float[] out = new float[per * want];
        for (int n = 0; n < want; n++) System.arraycopy(x, (n % have) * per, out, n * per, per);
        return out;
    }

    /** Captures the transformer calls of one step; their outputs stay in {@code out} (the same memory at every replay). */
    private static CudaGraph capture(CudaBackend cuda, FluxTransformer transformer, List<Branch> branches, Tensor[] out) {
        return CudaGraph.capture(cuda, () -> {
            for (int k = 0; k < branches.size(); k++) {
                Branch br = branches.get(k);
                Tensor v = transformer.forward(br.imgIn, br.txt, br.y, br.cond);
                out[k] = Scope.current() != null ? Scope.current().keep(v) : v;
            }
        });
    }
}
