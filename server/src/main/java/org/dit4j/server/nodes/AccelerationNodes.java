package org.dit4j.server.nodes;

import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.server.engine.ModelRef;

import java.util.List;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The TACO-style acceleration nodes. Their inputs are dit4j's choice (TACO DiT's node sources were not available),
 * following the community nodes that share the names where one exists:
 * <table>
 *   <tr><th>node</th><th>inputs</th><th>effect on the MODEL</th></tr>
 *   <tr><td>ParallelUNETLoader</td><td>UNETLoader's + num_gpus, ulysses_degree, ring_degree, cfg_degree, pipefusion_degree</td>
 *       <td>loads and sets the multi-GPU layout; gpus / (ulysses·ring·cfg·pipefusion) replicas do data parallelism</td></tr>
 *   <tr><td>ParallelLoraLoader</td><td>model, clip, lora_name, strength_model, strength_clip (LoraLoader's)</td><td>LoRA on every rank</td></tr>
 *   <tr><td>ParallelLoraLoaderModelOnly</td><td>model, lora_name, strength_model</td><td>LoRA on every rank</td></tr>
 *   <tr><td>TeaCache</td><td>ComfyUI-TeaCache's: model, model_type, rel_l1_thresh, start_percent, end_percent, cache_device</td>
 *       <td>TeaCache step cache (threshold 0 = off)</td></tr>
 *   <tr><td>ParallelTeaCache</td><td>TeaCache's without cache_device</td><td>TeaCache with the signal reduced across sequence shards</td></tr>
 *   <tr><td>MagCache</td><td>ComfyUI-MagCache's: model, model_type, magcache_thresh, retention_ratio, magcache_K</td><td>MagCache step cache</td></tr>
 *   <tr><td>CompileModel, ParallelCompileModel</td><td>model, mode, backend, fullgraph, dynamic (ComfyUI-TeaCache's Compile Model)</td>
 *       <td>fused kernels + CUDA-graph capture per shape (backend is accepted for compatibility; dit4j has one)</td></tr>
 *   <tr><td>CompileFluxModel</td><td>model, mode, fullgraph, dynamic</td><td>as CompileModel</td></tr>
 * </table>
 * Changing any of these between prompts needs no restart: the engine reads them from the MODEL when it samples.
 */
final class AccelerationNodes {

    private AccelerationNodes() {}

    static final String MODULE = "custom_nodes.dit4j_acceleration";
    static final List<String> TEACACHE_MODELS = List.of("flux", "flux-kontext", "wan2.1_t2v_1.3B", "wan2.1_t2v_14B",
            "wan2.1_t2v_1.3B_ret_mode", "wan2.1_t2v_14B_ret_mode", "cogvideox");
    static final List<String> MAGCACHE_MODELS = List.of("flux", "flux_kontext", "wan2.1_t2v_1.3B", "wan2.1_t2v_14B");
    static final List<String> COMPILE_MODES = List.of("default", "max-autotune", "max-autotune-no-cudagraphs", "reduce-overhead");

    static void register(NodeCatalog c) {
        c.register(new SimpleNode("ParallelUNETLoader", env -> NodeSchema.builder("ParallelUNETLoader").display("Load Diffusion Model (Parallel)")
                .category("dit4j/parallel").module(MODULE)
                .description("Loads a diffusion model for multi-GPU inference; num_gpus must be a multiple of ulysses × ring × cfg × pipefusion degrees.")
                .required("unet_name", InputSpec.combo(env.models().list("diffusion_models")))
                .required("weight_dtype", InputSpec.combo(LoaderNodes.WEIGHT_DTYPES))
                .required("num_gpus", InputSpec.of("INT", "default", Math.max(1, env.defaultGpus()), "min", 1, "max", 64))
                .required("ulysses_degree", InputSpec.of("INT", "default", 1, "min", 1, "max", 64, "tooltip", "Sequence parallelism: attention heads split across GPUs (all-to-all)."))
                .required("ring_degree", InputSpec.of("INT", "default", 1, "min", 1, "max", 64, "tooltip", "Ring attention: K/V blocks passed around GPUs."))
                .required("cfg_degree", InputSpec.of("INT", "default", 1, "min", 1, "max", 2, "tooltip", "2 runs the conditional and unconditional branch on different GPUs."))
                .required("pipefusion_degree", InputSpec.of("INT", "default", 1, "min", 1, "max", 64, "tooltip", "Pipeline stages over the transformer layers."))
                .output("MODEL").build(),
                call -> {
                    ModelRef.ParallelSetting p = new ModelRef.ParallelSetting(call.int32("num_gpus"), call.int32("ulysses_degree"),
                            call.int32("ring_degree"), call.int32("cfg_degree"), call.int32("pipefusion_degree"));
                    if (p.gpus() % p.degreeProduct() != 0)
                        throw new IllegalArgumentException("num_gpus " + p.gpus() + " is not a multiple of ulysses × ring × cfg × pipefusion = "
                                + p.ulysses() + " × " + p.ring() + " × " + p.cfg() + " × " + p.pipefusion() + " = " + p.degreeProduct());
                    return NodeResult.of(ModelRef.of(LoaderNodes.loadUnet(call), p));
                }));

        c.register(new SimpleNode("ParallelLoraLoader", env -> NodeSchema.builder("ParallelLoraLoader").display("Load LoRA (Parallel)")
                .category("dit4j/parallel").module(MODULE)
                .required("model", "MODEL").required("clip", "CLIP")
                .required("lora_name", InputSpec.combo(env.models().list("loras")))
                .required("strength_model", InputSpec.of("FLOAT", "default", 1.0, "min", -100.0, "max", 100.0, "step", 0.01))
                .required("strength_clip", InputSpec.of("FLOAT", "default", 1.0, "min", -100.0, "max", 100.0, "step", 0.01))
                .output("MODEL").output("CLIP").build(),
                LoaderNodes::modelAndClip));

        c.register(new SimpleNode("ParallelLoraLoaderModelOnly", env -> NodeSchema.builder("ParallelLoraLoaderModelOnly")
                .display("Load LoRA Model Only (Parallel)").category("dit4j/parallel").module(MODULE)
                .required("model", "MODEL")
                .required("lora_name", InputSpec.combo(env.models().list("loras")))
                .required("strength_model", InputSpec.of("FLOAT", "default", 1.0, "min", -100.0, "max", 100.0, "step", 0.01))
                .output("MODEL").build(),
                call -> {
                    ModelRef model = call.get("model", ModelRef.class);
                    double s = call.number("strength_model");
                    return NodeResult.of(s == 0 ? model : model.withLora(new ModelRef.LoraApplication(LoaderNodes.loadLora(call), s)));
                }));

        c.register(new SimpleNode("TeaCache", env -> teaCacheSchema("TeaCache", true), call -> teaCache(call, call.string("cache_device"))));
        c.register(new SimpleNode("ParallelTeaCache", env -> teaCacheSchema("ParallelTeaCache", false), call -> teaCache(call, "cuda")));

        c.register(new SimpleNode("MagCache", env -> NodeSchema.builder("MagCache").display("MagCache").category("dit4j/cache").module(MODULE)
                .required("model", "MODEL")
                .required("model_type", InputSpec.combo(MAGCACHE_MODELS, "default", "flux"))
                .required("magcache_thresh", InputSpec.of("FLOAT", "default", 0.24, "min", 0.0, "max", 2.0, "step", 0.01,
                        "tooltip", "Accumulated error threshold; higher skips more steps."))
                .required("retention_ratio", InputSpec.of("FLOAT", "default", 0.1, "min", 0.0, "max", 1.0, "step", 0.01,
                        "tooltip", "Fraction of the first steps always computed."))
                .required("magcache_K", InputSpec.of("INT", "default", 5, "min", 0, "max", 100, "tooltip", "Most consecutive skipped steps."))
                .output("MODEL").build(),
                call -> {
                    CacheSpec spec = new CacheSpec(CacheSpec.Kind.MAGCACHE, OptionalDouble.of(call.number("magcache_thresh")),
                            OptionalInt.of(call.int32("magcache_K")), OptionalDouble.of(call.number("retention_ratio")));
                    return NodeResult.of(call.get("model", ModelRef.class).withCache(new ModelRef.CacheSetting(spec, 0, 1, call.string("model_type"), "cuda")));
                }));

        c.register(new SimpleNode("CompileModel", env -> compileSchema("CompileModel", true), AccelerationNodes::compile));
        c.register(new SimpleNode("ParallelCompileModel", env -> compileSchema("ParallelCompileModel", true), AccelerationNodes::compile));
        c.register(new SimpleNode("CompileFluxModel", env -> compileSchema("CompileFluxModel", false), AccelerationNodes::compile));
    }

    private static NodeSchema teaCacheSchema(String name, boolean withDevice) {
        NodeSchema.Builder b = NodeSchema.builder(name).category("dit4j/cache").module(MODULE)
                .required("model", InputSpec.of("MODEL", "tooltip", "The diffusion model the TeaCache will be applied to."))
                .required("model_type", InputSpec.combo(TEACACHE_MODELS, "default", "flux", "tooltip", "Supported diffusion model."))
                .required("rel_l1_thresh", InputSpec.of("FLOAT", "default", 0.4, "min", 0.0, "max", 10.0, "step", 0.01,
                        "tooltip", "How strongly to cache the output of diffusion model. This value must be non-negative."))
                .required("start_percent", InputSpec.of("FLOAT", "default", 0.0, "min", 0.0, "max", 1.0, "step", 0.01,
                        "tooltip", "The start percentage of the steps that will apply TeaCache."))
                .required("end_percent", InputSpec.of("FLOAT", "default", 1.0, "min", 0.0, "max", 1.0, "step", 0.01,
                        "tooltip", "The end percentage of the steps that will apply TeaCache."));
        if (withDevice) b.required("cache_device", InputSpec.combo(List.of("cuda", "cpu"), "default", "cuda", "tooltip", "Device where the cache will reside."));
        return b.output("MODEL").build();
    }

    private static NodeResult teaCache(NodeCall call, String device) {
        String type = call.string("model_type");
        CacheSpec.Kind kind = type.endsWith("_ret_mode") ? CacheSpec.Kind.TEACACHE_RET : CacheSpec.Kind.TEACACHE;
        CacheSpec spec = new CacheSpec(kind, OptionalDouble.of(call.number("rel_l1_thresh")), OptionalInt.empty(), OptionalDouble.empty());
        return NodeResult.of(call.get("model", ModelRef.class).withCache(
                new ModelRef.CacheSetting(spec, call.number("start_percent"), call.number("end_percent"), type, device)));
    }

    private static NodeSchema compileSchema(String name, boolean withBackend) {
        NodeSchema.Builder b = NodeSchema.builder(name).category("dit4j/compile").module(MODULE)
                .description("Compiles the model's forward: fused kernels and CUDA-graph capture per input shape (first run per shape pays the capture).")
                .required("model", "MODEL")
                .required("mode", InputSpec.combo(COMPILE_MODES, "default", "default"));
        if (withBackend) b.required("backend", InputSpec.combo(List.of("inductor", "cudagraphs"), "default", "inductor"));
        return b.required("fullgraph", InputSpec.of("BOOLEAN", "default", false))
                .required("dynamic", InputSpec.of("BOOLEAN", "default", false))
                .output("MODEL").build();
    }

    private static NodeResult compile(NodeCall call) {
        String mode = call.string("mode");
        return NodeResult.of(call.get("model", ModelRef.class).withCompile(new ModelRef.CompileSetting(mode, call.bool("fullgraph"),
                call.bool("dynamic"), !mode.equals("max-autotune-no-cudagraphs"))));
    }
}
