package org.dit4j.server.nodes;

import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.sampling.ModelSampling;
import org.dit4j.server.sampling.Schedulers;

import java.math.BigInteger;
import java.util.List;

/**
 * ModelSamplingFlux, ModelSamplingSD3, KSampler, KSamplerAdvanced and the custom-sampling family (RandomNoise,
 * DisableNoise, BasicGuider, CFGGuider, KSamplerSelect, BasicScheduler, SamplerCustomAdvanced). Sigma schedules
 * are computed here, as ComfyUI computes them; the engine runs the sampler loop.
 */
final class SamplingNodes {

    private SamplingNodes() {}

    static final BigInteger SEED_MAX = new BigInteger("18446744073709551615");

    static void register(NodeCatalog c) {
        c.register(new SimpleNode("ModelSamplingFlux", env -> NodeSchema.builder("ModelSamplingFlux").category("advanced/model")
                .module("comfy_extras.nodes_model_advanced")
                .required("model", "MODEL")
                .required("max_shift", InputSpec.of("FLOAT", "default", 1.15, "min", 0.0, "max", 100.0, "step", 0.01))
                .required("base_shift", InputSpec.of("FLOAT", "default", 0.5, "min", 0.0, "max", 100.0, "step", 0.01))
                .required("width", InputSpec.of("INT", "default", 1024, "min", 16, "max", LatentNodes.MAX_RESOLUTION, "step", 8))
                .required("height", InputSpec.of("INT", "default", 1024, "min", 16, "max", LatentNodes.MAX_RESOLUTION, "step", 8))
                .output("MODEL").build(),
                call -> {
                    double shift = ModelSampling.fluxShift(call.number("max_shift"), call.number("base_shift"), call.integer("width"), call.integer("height"));
                    return NodeResult.of(call.get("model", ModelRef.class).withSampling(ModelSampling.flux(shift)));
                }));

        c.register(new SimpleNode("ModelSamplingSD3", env -> NodeSchema.builder("ModelSamplingSD3").category("advanced/model")
                .module("comfy_extras.nodes_model_advanced")
                .required("model", "MODEL")
                .required("shift", InputSpec.of("FLOAT", "default", 3.0, "min", 0.0, "max", 100.0, "step", 0.01))
                .output("MODEL").build(),
                call -> NodeResult.of(call.get("model", ModelRef.class).withSampling(ModelSampling.flow(call.number("shift"), 1000)))));

        c.register(new SimpleNode("KSampler", env -> NodeSchema.builder("KSampler").category("sampling")
                .description("Uses the provided model, positive and negative conditioning to denoise the latent image.")
                .required("model", InputSpec.of("MODEL", "tooltip", "The model used for denoising the input latent."))
                .required("seed", InputSpec.of("INT", "default", 0, "min", 0, "max", SEED_MAX, "control_after_generate", true,
                        "tooltip", "The random seed used for creating the noise."))
                .required("steps", InputSpec.of("INT", "default", 20, "min", 1, "max", 10000,
                        "tooltip", "The number of steps used in the denoising process."))
                .required("cfg", InputSpec.of("FLOAT", "default", 8.0, "min", 0.0, "max", 100.0, "step", 0.1, "round", 0.01,
                        "tooltip", "The Classifier-Free Guidance scale."))
                .required("sampler_name", InputSpec.combo(env.sampling().samplerNames(), "tooltip", "The algorithm used when sampling."))
                .required("scheduler", InputSpec.combo(Schedulers.NAMES, "tooltip", "The scheduler controls how noise is gradually removed to form the image."))
                .required("positive", InputSpec.of("CONDITIONING", "tooltip", "The conditioning describing the attributes you want to include in the image."))
                .required("negative", InputSpec.of("CONDITIONING", "tooltip", "The conditioning describing the attributes you want to exclude from the image."))
                .required("latent_image", InputSpec.of("LATENT", "tooltip", "The latent image to denoise."))
                .required("denoise", InputSpec.of("FLOAT", "default", 1.0, "min", 0.0, "max", 1.0, "step", 0.01,
                        "tooltip", "The amount of denoising applied."))
                .output("LATENT").build(),
                call -> {
                    ModelRef model = call.get("model", ModelRef.class);
                    String sampler = call.string("sampler_name");
                    float[] sigmas = Schedulers.ksampler(model.sampling(), call.string("scheduler"), sampler, call.int32("steps"), call.number("denoise"));
                    return NodeResult.of(sample(call, model, call.get("positive", Conditioning.class), call.get("negative", Conditioning.class),
                            call.number("cfg"), sampler, sigmas, call.integer("seed"), true).output());
                }));

        c.register(new SimpleNode("KSamplerAdvanced", env -> NodeSchema.builder("KSamplerAdvanced").display("KSampler (Advanced)").category("sampling")
                .required("model", "MODEL")
                .required("add_noise", InputSpec.combo(List.of("enable", "disable")))
                .required("noise_seed", InputSpec.of("INT", "default", 0, "min", 0, "max", SEED_MAX, "control_after_generate", true))
                .required("steps", InputSpec.of("INT", "default", 20, "min", 1, "max", 10000))
                .required("cfg", InputSpec.of("FLOAT", "default", 8.0, "min", 0.0, "max", 100.0, "step", 0.1, "round", 0.01))
                .required("sampler_name", InputSpec.combo(env.sampling().samplerNames()))
                .required("scheduler", InputSpec.combo(Schedulers.NAMES))
                .required("positive", "CONDITIONING").required("negative", "CONDITIONING").required("latent_image", "LATENT")
                .required("start_at_step", InputSpec.of("INT", "default", 0, "min", 0, "max", 10000))
                .required("end_at_step", InputSpec.of("INT", "default", 10000, "min", 0, "max", 10000))
                .required("return_with_leftover_noise", InputSpec.combo(List.of("disable", "enable")))
                .output("LATENT").build(),
                call -> {
                    ModelRef model = call.get("model", ModelRef.class);
                    String sampler = call.string("sampler_name");
                    float[] full = Schedulers.ksampler(model.sampling(), call.string("scheduler"), sampler, call.int32("steps"), 1.0);
                    boolean forceFull = !call.string("return_with_leftover_noise").equals("enable");
                    float[] sigmas = Schedulers.advancedRange(full, call.int32("start_at_step"), call.int32("end_at_step"), forceFull);
                    Latent latent = call.get("latent_image", Latent.class);
                    if (sigmas == null) return NodeResult.of(fixEmptyLatentChannels(model, latent));
                    return NodeResult.of(sample(call, model, call.get("positive", Conditioning.class), call.get("negative", Conditioning.class),
                            call.number("cfg"), sampler, sigmas, call.integer("noise_seed"), call.string("add_noise").equals("enable")).output());
                }));

        c.register(new SimpleNode("RandomNoise", env -> NodeSchema.builder("RandomNoise").category("sampling/custom_sampling/noise")
                .module("comfy_extras.nodes_custom_sampler")
                .required("noise_seed", InputSpec.of("INT", "default", 0, "min", 0, "max", SEED_MAX, "control_after_generate", true))
                .output("NOISE").build(),
                call -> NodeResult.of(new Values.Noise(call.integer("noise_seed"), true))));

        c.register(new SimpleNode("DisableNoise", env -> NodeSchema.builder("DisableNoise").category("sampling/custom_sampling/noise")
                .module("comfy_extras.nodes_custom_sampler")
                .output("NOISE").build(),
                call -> NodeResult.of(new Values.Noise(0, false))));

        c.register(new SimpleNode("BasicGuider", env -> NodeSchema.builder("BasicGuider").category("sampling/custom_sampling/guiders")
                .module("comfy_extras.nodes_custom_sampler")
                .required("model", "MODEL").required("conditioning", "CONDITIONING")
                .output("GUIDER").build(),
                call -> NodeResult.of(new Values.Guider(call.get("model", ModelRef.class), call.get("conditioning", Conditioning.class), null, 1.0))));

        c.register(new SimpleNode("CFGGuider", env -> NodeSchema.builder("CFGGuider").category("sampling/custom_sampling/guiders")
                .module("comfy_extras.nodes_custom_sampler")
                .required("model", "MODEL").required("positive", "CONDITIONING").required("negative", "CONDITIONING")
                .required("cfg", InputSpec.of("FLOAT", "default", 8.0, "min", 0.0, "max", 100.0, "step", 0.1, "round", 0.01))
                .output("GUIDER").build(),
                call -> NodeResult.of(new Values.Guider(call.get("model", ModelRef.class), call.get("positive", Conditioning.class),
                        call.get("negative", Conditioning.class), call.number("cfg")))));

        c.register(new SimpleNode("KSamplerSelect", env -> NodeSchema.builder("KSamplerSelect").category("sampling/custom_sampling/samplers")
                .module("comfy_extras.nodes_custom_sampler")
                .required("sampler_name", InputSpec.combo(env.sampling().samplerNames()))
                .output("SAMPLER").build(),
                call -> NodeResult.of(new Values.SamplerChoice(call.string("sampler_name")))));

        c.register(new SimpleNode("BasicScheduler", env -> NodeSchema.builder("BasicScheduler").category("sampling/custom_sampling/schedulers")
                .module("comfy_extras.nodes_custom_sampler")
                .required("model", "MODEL")
                .required("scheduler", InputSpec.combo(Schedulers.NAMES))
                .required("steps", InputSpec.of("INT", "default", 20, "min", 1, "max", 10000))
                .required("denoise", InputSpec.of("FLOAT", "default", 1.0, "min", 0.0, "max", 1.0, "step", 0.01))
                .output("SIGMAS").build(),
                call -> NodeResult.of(new Values.Sigmas(Schedulers.basic(call.get("model", ModelRef.class).sampling(), call.string("scheduler"),
                        call.int32("steps"), call.number("denoise"))))));

        c.register(new SimpleNode("SamplerCustomAdvanced", env -> NodeSchema.builder("SamplerCustomAdvanced").category("sampling/custom_sampling")
                .module("comfy_extras.nodes_custom_sampler")
                .required("noise", "NOISE").required("guider", "GUIDER").required("sampler", "SAMPLER")
                .required("sigmas", "SIGMAS").required("latent_image", "LATENT")
                .output("LATENT", "output").output("LATENT", "denoised_output").build(),
                call -> {
                    Values.Guider g = call.get("guider", Values.Guider.class);
                    Values.Noise noise = call.get("noise", Values.Noise.class);
                    SampleResult r = sample(call, g.model(), g.positive(), g.negative(), g.cfg(), call.get("sampler", Values.SamplerChoice.class).name(),
                            call.get("sigmas", Values.Sigmas.class).values(), noise.seed(), noise.enabled());
                    return NodeResult.of(r.output(), r.denoised());
                }));
    }

    /** comfy.sample.fix_empty_latent_channels: an all-zero latent with the wrong channel count becomes zeros of the model's. */
    static Latent fixEmptyLatentChannels(ModelRef model, Latent latent) {
        int want = model.base().latentChannels();
        if (latent.channels() == want || !latent.isAllZero()) return latent;
        long[] shape = latent.shape();
        shape[1] = want;
        Latent z = Latent.zeros(shape);
        return new Latent(z.shape(), z.samples(), latent.noiseMask());
    }

    static SampleResult sample(NodeCall call, ModelRef model, Conditioning positive, Conditioning negative, double cfg, String sampler,
                               float[] sigmas, long seed, boolean addNoise) {
        List<String> known = call.env().sampling().samplerNames();
        if (!known.contains(sampler))
            throw new IllegalArgumentException("sampler '" + sampler + "' is not implemented by this engine; use one of " + known);
        Latent in = fixEmptyLatentChannels(model, call.get("latent_image", Latent.class));
        if (sigmas.length < 2) return new SampleResult(in, in);
        SampleResult r = call.env().sampling().sample(new SampleJob(model, positive, negative, cfg, sampler, sigmas, seed, addNoise, in),
                call.progress());
        Latent out = new Latent(r.output().shape(), r.output().samples(), in.noiseMask());
        Latent den = r.denoised() == null ? out : new Latent(r.denoised().shape(), r.denoised().samples(), in.noiseMask());
        return new SampleResult(out, den);
    }
}
