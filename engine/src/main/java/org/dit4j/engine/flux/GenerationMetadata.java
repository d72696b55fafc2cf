package org.dit4j.engine.flux;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * The PNG text chunks of a generated image:
 * <ul>
 *   <li>{@code parameters}: the settings in the one-paragraph form image viewers show (prompt, then
 *       "Steps: …, Sampler: …, Seed: …, Size: …");</li>
 *   <li>{@code prompt}: a ComfyUI API-format workflow that describes the same generation with core nodes
 *       (UNETLoader/DualCLIPLoader/VAELoader or DiffusersLoader, CLIPTextEncode, FluxGuidance, ModelSamplingFlux,
 *       EmptySD3LatentImage, KSampler euler/simple, VAEDecode, SaveImage; Kontext adds LoadImage,
 *       FluxKontextImageScale, VAEEncode, ReferenceLatent), so ComfyUI can open the image as a workflow. ComfyUI's
 *       "simple" scheduler and dit4j's diffusers-exact schedule differ slightly in σ, so a ComfyUI rerun is close,
 *       not identical;</li>
 *   <li>{@code dit4j}: every parameter as JSON.</li>
 * </ul>
 */
public final class GenerationMetadata {
    private GenerationMetadata() {}

    /**
     * Text chunks for a result. {@code modelName}: how the user named the model (repo id, folder or file names);
     * {@code referenceName}: the Kontext input's file name, or null.
     */
    public static Map<String, String> chunks(FluxModelFiles files, FluxPipeline.Result result, String modelName, String referenceName,
                                             boolean guidanceEmbed) {
        FluxRequest r = result.request();
        Map<String, String> out = new LinkedHashMap<>();
        StringBuilder p = new StringBuilder(r.prompt());
        if (r.trueCfg()) p.append("\nNegative prompt: ").append(r.negativePrompt());
        p.append(String.format(Locale.ROOT, "\nSteps: %d, Sampler: Euler (flow matching), Schedule type: %s, Seed: %d, Size: %dx%d",
                r.steps(), result.schedule().toString().contains("dynamic") ? "shifted (mu " + round(result.schedule().mu()) + ")" : "linear",
                r.seed(), r.width(), r.height()));
        if (guidanceEmbed) p.append(String.format(Locale.ROOT, ", Guidance: %s", fmt(r.guidance())));
        if (r.trueCfg()) p.append(String.format(Locale.ROOT, ", True CFG scale: %s", fmt(r.trueCfgScale())));
        if (r.batch() > 1) p.append(", Batch size: ").append(r.batch());
        if (referenceName != null) p.append(", Kontext reference: ").append(referenceName);
        p.append(", Model: ").append(modelName).append(", Generator: dit4j");
        out.put("parameters", p.toString());
        out.put("prompt", PythonJson.dumps(comfyPrompt(files, r, modelName, referenceName, guidanceEmbed)));
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("prompt", r.prompt());
        d.put("negative_prompt", r.negativePrompt());
        d.put("true_cfg_scale", r.trueCfgScale());
        d.put("width", r.width());
        d.put("height", r.height());
        d.put("steps", r.steps());
        d.put("guidance", guidanceEmbed ? r.guidance() : null);
        d.put("seed", r.seed());
        d.put("batch", r.batch());
        d.put("t5_length", r.t5Length());
        d.put("reference", referenceName);
        d.put("sigmas", floats(result.schedule().sigmas()));
        d.put("model", modelName);
        d.put("generator", "dit4j 0.1.0-SNAPSHOT");
        out.put("dit4j", PythonJson.dumps(d));
        return out;
    }

    /** The ComfyUI API-format graph of the generation. */
    static Map<String, Object> comfyPrompt(FluxModelFiles files, FluxRequest r, String modelName, String referenceName, boolean guidanceEmbed) {
        Map<String, Object> g = new LinkedHashMap<>();
        Object[] model, clip, vae;
        if (files.layout() == FluxModelFiles.Layout.DIFFUSERS) {
            node(g, "1", "DiffusersLoader", "model_path", modelName);
            model = link("1", 0);
            clip = link("1", 1);
            vae = link("1", 2);
        } else {
            node(g, "1", "UNETLoader", "unet_name", name(files.transformer()), "weight_dtype", "default");
            node(g, "2", "DualCLIPLoader", "clip_name1", name(files.t5()), "clip_name2", name(files.clip()), "type", "flux");
            node(g, "3", "VAELoader", "vae_name", name(files.vae()));
            model = link("1", 0);
            clip = link("2", 0);
            vae = link("3", 0);
        }
        node(g, "4", "CLIPTextEncode", "text", r.prompt(), "clip", clip);
        Object[] positive = link("4", 0);
        if (referenceName != null) {
            node(g, "10", "LoadImage", "image", referenceName);
            node(g, "11", "FluxKontextImageScale", "image", link("10", 0));
            node(g, "12", "VAEEncode", "pixels", link("11", 0), "vae", vae);
            node(g, "13", "ReferenceLatent", "conditioning", positive, "latent", link("12", 0));
            positive = link("13", 0);
        }
        if (guidanceEmbed) {
            node(g, "5", "FluxGuidance", "conditioning", positive, "guidance", (double) r.guidance());
            positive = link("5", 0);
        }
        if (r.trueCfg()) node(g, "6", "CLIPTextEncode", "text", r.negativePrompt(), "clip", clip);
        else node(g, "6", "ConditioningZeroOut", "conditioning", link("4", 0));
        node(g, "7", "EmptySD3LatentImage", "width", r.width(), "height", r.height(), "batch_size", r.batch());
        Object[] sampled = model;
        if (guidanceEmbed) {
            node(g, "8", "ModelSamplingFlux", "model", model, "max_shift", 1.15, "base_shift", 0.5, "width", r.width(), "height", r.height());
            sampled = link("8", 0);
        }
        node(g, "9", "KSampler", "model", sampled, "seed", r.seed(), "steps", r.steps(), "cfg", r.trueCfg() ? (double) r.trueCfgScale() : 1.0,
                "sampler_name", "euler", "scheduler", "simple", "positive", positive, "negative", link("6", 0),
                "latent_image", link("7", 0), "denoise", 1.0);
        node(g, "14", "VAEDecode", "samples", link("9", 0), "vae", vae);
        node(g, "15", "SaveImage", "images", link("14", 0), "filename_prefix", "dit4j");
        return g;
    }

    private static void node(Map<String, Object> g, String id, String cls, Object... kv) {
        Map<String, Object> inputs = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            Object v = kv[i + 1];
            inputs.put((String) kv[i], v instanceof Object[] a ? List.of(a) : v);
        }
        Map<String, Object> n = new LinkedHashMap<>();
        n.put("inputs", inputs);
        n.put("class_type", cls);
        g.put(id, n);
    }

    private static Object[] link(String id, int slot) { return new Object[] {id, slot}; }

    private static String name(Path p) { return p.getFileName().toString(); }

    private static List<Double> floats(float[] a) {
        List<Double> out = new java.util.ArrayList<>();
        for (float f : a) out.add(Double.parseDouble(Float.toString(f)));
        return out;
    }

    private static String fmt(float f) { return Float.toString(f).replaceAll("\\.0$", ".0"); }

    private static String round(double d) { return String.format(Locale.ROOT, "%.4f", d); }
}
