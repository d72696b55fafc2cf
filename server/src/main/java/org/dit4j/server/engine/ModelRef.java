package org.dit4j.server.engine;

import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.server.sampling.ModelSampling;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * ComfyUI's MODEL value: loaded weights plus the patches the workflow applied, the way ComfyUI's ModelPatcher
 * clones carry them. Immutable: every patching node returns a new ref that shares the weights. The engine reads the
 * whole ref at sampling time, so changing the GPU count or a cache setting needs no reload or restart.
 *
 * @param base     the loaded weights
 * @param sampling sigma schedule parameters (ModelSamplingFlux / ModelSamplingSD3 replace it)
 * @param loras    LoRAs in application order (LoraLoaderModelOnly, ParallelLoraLoader...)
 * @param cache    step cache (TeaCache, MagCache, ParallelTeaCache), or {@link CacheSetting#NONE}
 * @param compile  CUDA-graph compile request (CompileModel, CompileFluxModel, ParallelCompileModel), or null
 * @param parallel multi-GPU layout (ParallelUNETLoader...); {@link ParallelSetting#SINGLE} by default
 */
public record ModelRef(DiffusionModel base, ModelSampling sampling, List<LoraApplication> loras, CacheSetting cache,
                       CompileSetting compile, ParallelSetting parallel) {

    public ModelRef {
        Objects.requireNonNull(base, "base");
        Objects.requireNonNull(sampling, "sampling");
        loras = List.copyOf(loras);
        Objects.requireNonNull(cache, "cache");
        Objects.requireNonNull(parallel, "parallel");
    }

    /** A freshly loaded model with the checkpoint's own sampling and no patches. */
    public static ModelRef of(DiffusionModel base, ParallelSetting parallel) {
        return new ModelRef(base, base.defaultSampling(), List.of(), CacheSetting.NONE, null, parallel);
    }

    public ModelRef withSampling(ModelSampling s) { return new ModelRef(base, s, loras, cache, compile, parallel); }

    public ModelRef withLora(LoraApplication lora) {
        List<LoraApplication> l = new ArrayList<>(loras);
        l.add(lora);
        return new ModelRef(base, sampling, l, cache, compile, parallel);
    }

    public ModelRef withCache(CacheSetting c) { return new ModelRef(base, sampling, loras, c, compile, parallel); }

    public ModelRef withCompile(CompileSetting c) { return new ModelRef(base, sampling, loras, cache, c, parallel); }

    public ModelRef withParallel(ParallelSetting p) { return new ModelRef(base, sampling, loras, cache, compile, p); }

    /** A LoRA applied to the model with a strength (may be negative). */
    public record LoraApplication(LoraWeights weights, double strength) {}

    /**
     * A step-cache request: the policy ({@link CacheSpec}, whose omitted values take the engine's per-model
     * defaults) and the fraction of the schedule where it may skip (TeaCache's start/end percent).
     */
    public record CacheSetting(CacheSpec spec, double startPercent, double endPercent, String modelType, String cacheDevice) {
        public static final CacheSetting NONE = new CacheSetting(CacheSpec.NONE, 0, 1, "", "cuda");

        public CacheSetting {
            Objects.requireNonNull(spec, "spec");
            if (!(startPercent >= 0 && startPercent <= endPercent && endPercent <= 1))
                throw new IllegalArgumentException("start_percent " + startPercent + " and end_percent " + endPercent
                        + " must satisfy 0 ≤ start ≤ end ≤ 1");
        }
    }

    /**
     * A compile request. dit4j compiles by fusing kernels and capturing CUDA graphs per input shape; {@code mode}
     * keeps the torch.compile vocabulary of the workflow ({@code default}, {@code reduce-overhead},
     * {@code max-autotune}, {@code max-autotune-no-cudagraphs}); {@code cudaGraphs} is false only for the last one.
     */
    public record CompileSetting(String mode, boolean fullgraph, boolean dynamic, boolean cudaGraphs) {}

    /**
     * Multi-GPU layout: {@code gpus} = ulysses × ring × cfg × pipefusion × dataParallel must hold; the engine
     * checks it against the devices present when it samples.
     */
    public record ParallelSetting(int gpus, int ulysses, int ring, int cfg, int pipefusion) {
        public static final ParallelSetting SINGLE = new ParallelSetting(1, 1, 1, 1, 1);

        public ParallelSetting {
            if (gpus < 1 || ulysses < 1 || ring < 1 || cfg < 1 || pipefusion < 1)
                throw new IllegalArgumentException("parallel degrees must be ≥ 1, got gpus=" + gpus + " ulysses=" + ulysses
                        + " ring=" + ring + " cfg=" + cfg + " pipefusion=" + pipefusion);
        }

        /** GPUs the degrees use; the rest of {@link #gpus} does data parallelism. */
        public int degreeProduct() { return ulysses * ring * cfg * pipefusion; }
    }

    @Override public String toString() {
        return "<MODEL " + base.name() + " " + sampling + (loras.isEmpty() ? "" : " +" + loras.size() + " LoRA")
                + (cache.spec().kind() == CacheSpec.Kind.NONE ? "" : " cache=" + cache.spec())
                + (compile == null ? "" : " compile=" + compile.mode()) + (parallel.gpus() == 1 ? "" : " gpus=" + parallel.gpus()) + ">";
    }
}
