package org.dit4j.models.flux.lora;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.tensor.Shape;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;

/**
 * Which canonical Flux weight a LoRA module name adapts. The names trainers and tools write for the same Linear
 * (block index 3 shown):
 * <table>
 *   <caption>module names by style</caption>
 *   <tr><th>style</th><th>example</th><th>naming of the module</th></tr>
 *   <tr><td>BFL / ComfyUI</td><td>{@code diffusion_model.double_blocks.3.img_attn.qkv}</td>
 *       <td>canonical, optionally under {@code diffusion_model.}, {@code model.diffusion_model.} or {@code base_model.model.}</td></tr>
 *   <tr><td>kohya sd-scripts</td><td>{@code lora_unet_double_blocks_3_img_attn_qkv}</td><td>canonical, dots → underscores</td></tr>
 *   <tr><td>diffusers / PEFT (ai-toolkit, SimpleTuner)</td><td>{@code transformer.transformer_blocks.3.attn.to_k}</td>
 *       <td>diffusers, optionally under {@code transformer.} or {@code base_model.model.}</td></tr>
 *   <tr><td>OneTrainer</td><td>{@code lora_transformer_transformer_blocks_3_attn_to_k}</td><td>diffusers, dots → underscores</td></tr>
 *   <tr><td>SimpleTuner LyCORIS</td><td>{@code lycoris_transformer_blocks_3_attn_to_k}</td><td>diffusers, dots → underscores</td></tr>
 *   <tr><td>XLabs-AI</td><td>{@code double_blocks.3.processor.qkv_lora1}</td>
 *       <td>qkv_lora1/proj_lora1: img_attn, qkv_lora2/proj_lora2: txt_attn; single blocks: qkv_lora = the q, k, v
 *           rows of linear1, proj_lora = linear2</td></tr>
 * </table>
 * A diffusers name of a split projection (to_q/to_k/to_v/add_*_proj, proj_mlp) adapts a block of rows of the fused
 * canonical tensor ("part" k of the recipe {@link FluxWeights#diffusersSources}); {@code norm_out.linear} adapts
 * {@code final_layer.adaLN_modulation.1} with its (scale, shift) halves in diffusers order, i.e. swapped.
 */
final class FluxLoraNames {
    private FluxLoraNames() {}

    /**
     * Where a module lands.
     *
     * @param canonical   the canonical weight, e.g. {@code double_blocks.3.img_attn.qkv.weight}
     * @param firstPart   first diffusers part covered (0 for whole tensors)
     * @param partCount   parts covered; together with {@link FluxWeights#diffusersPartRows} this gives the rows
     * @param swapHalves  the module's rows are in diffusers' (scale, shift) order of the final modulation
     * @param style       the naming style recognised
     * @param peftModule  the diffusers module path without prefix (what PEFT's alpha_pattern matches), for the
     *                    diffusers style; null otherwise
     */
    record Resolved(String canonical, int firstPart, int partCount, boolean swapHalves, LoraFile.Style style, String peftModule) {}

    private record Alias(Pattern pattern, String canonicalTemplate, int firstPart, int partCount, boolean swap,
                         LoraFile.Style style, String diffusersTemplate) {}

    private static final String I = "{i}";
    private static final List<Alias> ALIASES = new ArrayList<>();
    private static final Pattern BLOCK0 = Pattern.compile("^(double_blocks|single_blocks|transformer_blocks|single_transformer_blocks)\\.0\\.");

    static {
        // every Linear of a Flux transformer with one block of each kind; block indices become the placeholder
        FluxConfig one = new FluxConfig(32, 2, 1, 1, 64, 64, 32, 24, 128, new int[] {4, 6, 6}, 10000, true);
        for (Map.Entry<String, Shape> e : FluxWeights.expectedShapes(one).entrySet()) {
            if (e.getValue().rank() != 2) continue;
            String canonical = template(stripWeight(e.getKey()));
            for (String p : new String[] {"", "diffusion_model.", "model.diffusion_model.", "base_model.model."})
                add(p + canonical, canonical, 0, -1, false, LoraFile.Style.BFL, null);
            add("lora_unet_" + canonical.replace('.', '_'), canonical, 0, -1, false, LoraFile.Style.KOHYA, null);
            FluxWeights.DiffusersRecipe recipe = FluxWeights.diffusersSources(e.getKey());
            int n = recipe.sources().size();
            for (int k = 0; k < n; k++) {
                String d = template(stripWeight(recipe.sources().get(k)));
                int first = n == 1 ? 0 : k, count = n == 1 ? -1 : 1;
                for (String p : new String[] {"", "transformer.", "base_model.model."})
                    add(p + d, canonical, first, count, recipe.swapHalves(), LoraFile.Style.DIFFUSERS, d);
                add("lora_transformer_" + d.replace('.', '_'), canonical, first, count, recipe.swapHalves(), LoraFile.Style.ONETRAINER, null);
                add("lycoris_" + d.replace('.', '_'), canonical, first, count, recipe.swapHalves(), LoraFile.Style.LYCORIS, null);
            }
        }
        for (String p : new String[] {"", "diffusion_model."}) {
            String db = p + "double_blocks." + I + ".processor.", sb = p + "single_blocks." + I + ".processor.";
            add(db + "qkv_lora1", "double_blocks." + I + ".img_attn.qkv", 0, -1, false, LoraFile.Style.XLABS, null);
            add(db + "qkv_lora2", "double_blocks." + I + ".txt_attn.qkv", 0, -1, false, LoraFile.Style.XLABS, null);
            add(db + "proj_lora1", "double_blocks." + I + ".img_attn.proj", 0, -1, false, LoraFile.Style.XLABS, null);
            add(db + "proj_lora2", "double_blocks." + I + ".txt_attn.proj", 0, -1, false, LoraFile.Style.XLABS, null);
            add(sb + "qkv_lora", "single_blocks." + I + ".linear1", 0, 3, false, LoraFile.Style.XLABS, null);
            add(sb + "proj_lora", "single_blocks." + I + ".linear2", 0, -1, false, LoraFile.Style.XLABS, null);
        }
    }

    /** The canonical target of LoRA module {@code module} (the key without its LoRA suffix), or null. */
    static Resolved resolve(String module) {
        for (Alias a : ALIASES) {
            Matcher m = a.pattern.matcher(module);
            if (!m.matches()) continue;
            String index = a.canonicalTemplate.contains(I) ? m.group(1) : null;
            String canonical = fill(a.canonicalTemplate, index) + ".weight";
            int count = a.partCount;
            if (count < 0) count = FluxWeights.diffusersSources(canonical).sources().size();
            return new Resolved(canonical, a.firstPart, count, a.swap, a.style,
                    a.diffusersTemplate == null ? null : fill(a.diffusersTemplate, index));
        }
        return null;
    }

    private static void add(String alias, String canonical, int first, int count, boolean swap, LoraFile.Style style, String diffusers) {
        ALIASES.add(new Alias(regex(alias), canonical, first, count, swap, style, diffusers));
    }

    /** "a.{i}.b" → ^\Qa.\E(\d+)\Q.b\E$ ; at most one placeholder. */
    private static Pattern regex(String template) {
        int at = template.indexOf(I);
        if (at < 0) return Pattern.compile(Pattern.quote(template));
        return Pattern.compile(Pattern.quote(template.substring(0, at)) + "(\\d+)" + Pattern.quote(template.substring(at + I.length())));
    }

    private static String fill(String template, String index) { return index == null ? template : template.replace(I, index); }

    private static String template(String name) { return BLOCK0.matcher(name).replaceFirst("$1." + Matcher.quoteReplacement(I) + "."); }

    private static String stripWeight(String name) {
        if (!name.endsWith(".weight")) throw new IllegalStateException("not a weight: " + name);
        return name.substring(0, name.length() - ".weight".length());
    }
}
