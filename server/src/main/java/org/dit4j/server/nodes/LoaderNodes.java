package org.dit4j.server.nodes;

import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.ModelRef;
import org.dit4j.server.engine.TextEncoder;

import java.nio.file.Path;
import java.util.List;

/** UNETLoader, DualCLIPLoader, CLIPLoader, VAELoader, CheckpointLoaderSimple, LoraLoaderModelOnly. */
final class LoaderNodes {

    private LoaderNodes() {}

    static final List<String> WEIGHT_DTYPES = List.of("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2");
    static final List<String> CLIP_TYPES = List.of("stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
            "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2", "ovis");
    static final List<String> DUAL_CLIP_TYPES = List.of("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image",
            "hunyuan_video_15", "kandinsky5", "kandinsky5_image", "ltxv", "newbie", "ace");
    static final List<String> DEVICES = List.of("default", "cpu");

    static void register(NodeCatalog c) {
        c.register(new SimpleNode("UNETLoader", env -> NodeSchema.builder("UNETLoader").display("Load Diffusion Model")
                .category("advanced/loaders")
                .required("unet_name", InputSpec.combo(env.models().list("diffusion_models")))
                .required("weight_dtype", InputSpec.combo(WEIGHT_DTYPES))
                .output("MODEL").build(),
                call -> NodeResult.of(ModelRef.of(loadUnet(call), ModelRef.ParallelSetting.SINGLE))));

        c.register(new SimpleNode("DualCLIPLoader", env -> NodeSchema.builder("DualCLIPLoader").category("advanced/loaders")
                .description("[Recipes]\n\nsdxl: clip-l, clip-g\nsd3: clip-l, clip-g / clip-l, t5 / clip-g, t5\nflux: clip-l, t5")
                .required("clip_name1", InputSpec.combo(env.models().list("text_encoders")))
                .required("clip_name2", InputSpec.combo(env.models().list("text_encoders")))
                .required("type", InputSpec.combo(DUAL_CLIP_TYPES))
                .optional("device", InputSpec.combo(DEVICES, "advanced", true))
                .output("CLIP").build(),
                call -> {
                    Path a = call.env().models().fullPathOrThrow("text_encoders", call.string("clip_name1"));
                    Path b = call.env().models().fullPathOrThrow("text_encoders", call.string("clip_name2"));
                    String device = call.has("device") ? call.string("device") : "default";
                    return NodeResult.of(call.env().provider().loadTextEncoder(List.of(a, b), call.string("type"), device));
                }));

        c.register(new SimpleNode("CLIPLoader", env -> NodeSchema.builder("CLIPLoader").display("Load CLIP").category("advanced/loaders")
                .description("[Recipes]\n\nstable_diffusion: clip-l\nsd3: t5 xxl/ clip-g / clip-l\nwan: umt5 xxl")
                .required("clip_name", InputSpec.combo(env.models().list("text_encoders")))
                .required("type", InputSpec.combo(CLIP_TYPES))
                .optional("device", InputSpec.combo(DEVICES, "advanced", true))
                .output("CLIP").build(),
                call -> {
                    Path a = call.env().models().fullPathOrThrow("text_encoders", call.string("clip_name"));
                    String device = call.has("device") ? call.string("device") : "default";
                    return NodeResult.of(call.env().provider().loadTextEncoder(List.of(a), call.string("type"), device));
                }));

        c.register(new SimpleNode("VAELoader", env -> NodeSchema.builder("VAELoader").display("Load VAE").category("loaders")
                .required("vae_name", InputSpec.combo(env.models().list("vae")))
                .output("VAE").build(),
                call -> NodeResult.of(call.env().provider().loadVae(call.env().models().fullPathOrThrow("vae", call.string("vae_name"))))));

        c.register(new SimpleNode("CheckpointLoaderSimple", env -> NodeSchema.builder("CheckpointLoaderSimple").display("Load Checkpoint")
                .category("loaders").description("Loads a diffusion model checkpoint, diffusion models are used to denoise latents.")
                .required("ckpt_name", InputSpec.combo(env.models().list("checkpoints"), "tooltip", "The name of the checkpoint (model) to load."))
                .output("MODEL").output("CLIP").output("VAE").build(),
                call -> {
                    String name = call.string("ckpt_name");
                    Checkpoint ck = call.env().provider().loadCheckpoint(call.env().models().fullPathOrThrow("checkpoints", name));
                    if (ck.clip() == null || ck.vae() == null)
                        throw new IllegalArgumentException("checkpoint " + name + " holds no " + (ck.clip() == null ? "text encoder" : "VAE")
                                + "; load the parts with UNETLoader, DualCLIPLoader/CLIPLoader and VAELoader instead");
                    return NodeResult.of(ModelRef.of(ck.model(), ModelRef.ParallelSetting.SINGLE), ck.clip(), ck.vae());
                }));

        c.register(new SimpleNode("LoraLoaderModelOnly", env -> NodeSchema.builder("LoraLoaderModelOnly").category("loaders")
                .required("model", "MODEL")
                .required("lora_name", InputSpec.combo(env.models().list("loras")))
                .required("strength_model", InputSpec.of("FLOAT", "default", 1.0, "min", -100.0, "max", 100.0, "step", 0.01))
                .output("MODEL").build(),
                call -> {
                    ModelRef model = call.get("model", ModelRef.class);
                    double s = call.number("strength_model");
                    if (s == 0) return NodeResult.of(model);
                    return NodeResult.of(model.withLora(new ModelRef.LoraApplication(loadLora(call), s)));
                }));
    }

    static DiffusionModel loadUnet(NodeCall call) throws Exception {
        Path p = call.env().models().fullPathOrThrow("diffusion_models", call.string("unet_name"));
        return call.env().provider().loadDiffusionModel(p, call.string("weight_dtype"));
    }

    static LoraWeights loadLora(NodeCall call) throws Exception {
        return call.env().provider().loadLora(call.env().models().fullPathOrThrow("loras", call.string("lora_name")));
    }

    /** Applies strength_model / strength_clip as ComfyUI's LoraLoader (both 0: unchanged). */
    static NodeResult modelAndClip(NodeCall call) throws Exception {
        ModelRef model = call.get("model", ModelRef.class);
        TextEncoder clip = call.get("clip", TextEncoder.class);
        double sm = call.number("strength_model"), sc = call.number("strength_clip");
        if (sm == 0 && sc == 0) return NodeResult.of(model, clip);
        LoraWeights lora = loadLora(call);
        ModelRef m = sm == 0 ? model : model.withLora(new ModelRef.LoraApplication(lora, sm));
        TextEncoder c = sc == 0 ? clip : clip.withLora(lora, sc);
        return NodeResult.of(m, c);
    }
}
