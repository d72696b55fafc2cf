package org.dit4j.models.flux;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Linear;
import org.dit4j.models.nn.ScaledFp8;

/**
 * The tensors of a Flux transformer under one canonical naming: BFL's names without prefix (models.md §1.9),
 * e.g. {@code double_blocks.3.img_attn.qkv.weight}. Two foreign layouts map onto it:
 * <ul>
 *   <li>BFL / ComfyUI single files: the same names, optionally under {@code model.diffusion_model.} ({@link #fromBfl});</li>
 *   <li>diffusers {@code FluxTransformer2DModel}: renamed, with q/k/v (and the single blocks' MLP input) stored as
 *       separate Linears whose rows are concatenated here, and the final modulation stored as (scale, shift) where
 *       BFL has (shift, scale) ({@link #fromDiffusers}, {@link #diffusersSources}).</li>
 * </ul>
 * Storage may be F32, BF16, F16, F8_E4M3/F8_E5M2, or ComfyUI "scaled fp8": an fp8 {@code <layer>.weight} with a
 * scalar {@code <layer>.scale_weight} (older files, marked by a {@code scaled_fp8} tensor) or
 * {@code <layer>.weight_scale} (newer files, with a {@code <layer>.comfy_quant} format tag); such weights are
 * dequantized as W = float(w8)·scale. Tensors are uploaded to the backend and converted there
 * ({@code ops.upload}, {@code ops.cast}); this object owns them until {@link #close()}.
 */
public final class FluxWeights implements AutoCloseable {

    /** Prefix of the transformer inside ComfyUI all-in-one checkpoints. */
    public static final String BFL_PREFIX = "model.diffusion_model.";

    /** Naming scheme of a checkpoint. */
    public enum Layout {
        BFL, DIFFUSERS;

        /** Which layout the transformer under {@code prefix} uses, judged by its input embedding's name. */
        public static Layout of(WeightSource w, String prefix) {
            if (w.contains(prefix + "img_in.weight")) return BFL;
            if (w.contains(prefix + "x_embedder.weight")) return DIFFUSERS;
            throw new CheckpointException("not a Flux transformer: " + where(w, null) + " has neither '" + prefix
                    + "img_in.weight' (BFL/ComfyUI naming) nor '" + prefix + "x_embedder.weight' (diffusers naming)");
        }
    }

    /**
     * A change merged into canonical tensors while they load (LoRA: {@code org.dit4j.models.flux.lora.FluxLoras}).
     * A patched tensor is assembled in F32 (ComfyUI fp8 scales applied), handed to {@link #apply}, and the result is
     * rounded once to the load dtype, or to BF16 when that dtype is fp8 (the merged values are no longer fp8 values).
     */
    public interface Patch {
        /** Canonical names of the tensors this patch changes; every one must be a tensor of the loaded configuration. */
        Set<String> names();

        /**
         * The patched tensor: {@code base} is canonical tensor {@code name} in F32 on {@code ops}' device; the result
         * is a new F32 tensor of the same shape, registered with the current scope.
         */
        Tensor apply(Ops ops, String name, Tensor base);
    }

    private final FluxConfig config;
    private final Map<String, Tensor> tensors;

    private FluxWeights(FluxConfig config, Map<String, Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    public FluxConfig config() { return config; }

    /** Canonical names, in load order. */
    public List<String> names() { return List.copyOf(tensors.keySet()); }

    /** The backend tensor of canonical {@code name}. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no Flux weight named '" + name + "' (config " + config + ")");
        return t;
    }

    /** The linear layer {@code module}.weight / {@code module}.bias. */
    public Linear linear(String module) { return new Linear(tensor(module + ".weight"), tensor(module + ".bias")); }

    /** Releases every tensor. */
    @Override public void close() {
        for (Tensor t : tensors.values()) t.close();
        tensors.clear();
    }

    // ------------------------------------------------------------------------------------------------ canonical names

    /** Every canonical tensor of {@code cfg} with its shape, in model order. */
    public static Map<String, Shape> expectedShapes(FluxConfig cfg) {
        long d = cfg.hiddenSize(), hd = cfg.headDim(), m = cfg.mlpHidden();
        Map<String, Shape> s = new LinkedHashMap<>();
        linear(s, "img_in", d, cfg.inChannels());
        linear(s, "txt_in", d, cfg.contextDim());
        linear(s, "time_in.in_layer", d, FluxEmbeddings.TIME_DIM);
        linear(s, "time_in.out_layer", d, d);
        if (cfg.guidanceEmbed()) {
            linear(s, "guidance_in.in_layer", d, FluxEmbeddings.TIME_DIM);
            linear(s, "guidance_in.out_layer", d, d);
        }
        linear(s, "vector_in.in_layer", d, cfg.vecDim());
        linear(s, "vector_in.out_layer", d, d);
        for (int i = 0; i < cfg.depth(); i++) {
            String b = "double_blocks." + i + ".";
            for (String st : new String[] {"img", "txt"}) {
                linear(s, b + st + "_mod.lin", 6 * d, d);
                linear(s, b + st + "_attn.qkv", 3 * d, d);
                s.put(b + st + "_attn.norm.query_norm.scale", Shape.of(hd));
                s.put(b + st + "_attn.norm.key_norm.scale", Shape.of(hd));
                linear(s, b + st + "_attn.proj", d, d);
                linear(s, b + st + "_mlp.0", m, d);
                linear(s, b + st + "_mlp.2", d, m);
            }
        }
        for (int i = 0; i < cfg.depthSingle(); i++) {
            String b = "single_blocks." + i + ".";
            linear(s, b + "modulation.lin", 3 * d, d);
            linear(s, b + "linear1", 3 * d + m, d);
            s.put(b + "norm.query_norm.scale", Shape.of(hd));
            s.put(b + "norm.key_norm.scale", Shape.of(hd));
            linear(s, b + "linear2", d, d + m);
        }
        linear(s, "final_layer.adaLN_modulation.1", 2 * d, d);
        linear(s, "final_layer.linear", cfg.outChannels(), d);
        return s;
    }

    private static void linear(Map<String, Shape> s, String module, long out, long in) {
        s.put(module + ".weight", Shape.of(out, in));
        s.put(module + ".bias", Shape.of(out));
    }

    /** Canonical name of a BFL/ComfyUI tensor name (strips {@value #BFL_PREFIX} when present). */
    public static String fromBfl(String name) {
        return name.startsWith(BFL_PREFIX) ? name.substring(BFL_PREFIX.length()) : name;
    }

    // ------------------------------------------------------------------------------------------------ diffusers

    /**
     * How a canonical tensor is assembled from diffusers tensors: the rows of {@code sources} concatenated in order,
     * then, when {@code swapHalves}, the two row halves exchanged (final layer: diffusers (scale, shift) → BFL
     * (shift, scale)).
     */
    public record DiffusersRecipe(List<String> sources, boolean swapHalves) {}

    private record Rule(String canonical, Pattern canonicalRegex, String[] diffusers, Pattern[] diffusersRegex, boolean swap) {}

    private static final List<Rule> RULES = new ArrayList<>();

    private static void rule(String canonical, boolean swap, String... diffusers) {
        Pattern[] dr = new Pattern[diffusers.length];
        for (int k = 0; k < diffusers.length; k++) dr[k] = templateRegex(diffusers[k]);
        RULES.add(new Rule(canonical, templateRegex(canonical), diffusers, dr, swap));
    }

    /** "a.{i}.b.{p}" → ^a\.(\d+)\.b\.(weight|bias)$ ; placeholders become named groups i and p. */
    private static Pattern templateRegex(String template) {
        String re = Pattern.quote(template).replace("{i}", "\\E(?<i>\\d+)\\Q").replace("{p}", "\\E(?<p>weight|bias)\\Q");
        return Pattern.compile("^" + re + "$");
    }

    private static String fill(String template, Matcher m) {
        String s = template;
        if (s.contains("{i}")) s = s.replace("{i}", m.group("i"));
        if (s.contains("{p}")) s = s.replace("{p}", m.group("p"));
        return s;
    }

    static {
        rule("img_in.{p}", false, "x_embedder.{p}");
        rule("txt_in.{p}", false, "context_embedder.{p}");
        rule("time_in.in_layer.{p}", false, "time_text_embed.timestep_embedder.linear_1.{p}");
        rule("time_in.out_layer.{p}", false, "time_text_embed.timestep_embedder.linear_2.{p}");
        rule("guidance_in.in_layer.{p}", false, "time_text_embed.guidance_embedder.linear_1.{p}");
        rule("guidance_in.out_layer.{p}", false, "time_text_embed.guidance_embedder.linear_2.{p}");
        rule("vector_in.in_layer.{p}", false, "time_text_embed.text_embedder.linear_1.{p}");
        rule("vector_in.out_layer.{p}", false, "time_text_embed.text_embedder.linear_2.{p}");
        String db = "double_blocks.{i}.", tb = "transformer_blocks.{i}.";
        rule(db + "img_mod.lin.{p}", false, tb + "norm1.linear.{p}");
        rule(db + "txt_mod.lin.{p}", false, tb + "norm1_context.linear.{p}");
        rule(db + "img_attn.qkv.{p}", false, tb + "attn.to_q.{p}", tb + "attn.to_k.{p}", tb + "attn.to_v.{p}");
        rule(db + "txt_attn.qkv.{p}", false, tb + "attn.add_q_proj.{p}", tb + "attn.add_k_proj.{p}", tb + "attn.add_v_proj.{p}");
        rule(db + "img_attn.norm.query_norm.scale", false, tb + "attn.norm_q.weight");
        rule(db + "img_attn.norm.key_norm.scale", false, tb + "attn.norm_k.weight");
        rule(db + "txt_attn.norm.query_norm.scale", false, tb + "attn.norm_added_q.weight");
        rule(db + "txt_attn.norm.key_norm.scale", false, tb + "attn.norm_added_k.weight");
        rule(db + "img_attn.proj.{p}", false, tb + "attn.to_out.0.{p}");
        rule(db + "txt_attn.proj.{p}", false, tb + "attn.to_add_out.{p}");
        rule(db + "img_mlp.0.{p}", false, tb + "ff.net.0.proj.{p}");
        rule(db + "img_mlp.2.{p}", false, tb + "ff.net.2.{p}");
        rule(db + "txt_mlp.0.{p}", false, tb + "ff_context.net.0.proj.{p}");
        rule(db + "txt_mlp.2.{p}", false, tb + "ff_context.net.2.{p}");
        String sb = "single_blocks.{i}.", st = "single_transformer_blocks.{i}.";
        rule(sb + "modulation.lin.{p}", false, st + "norm.linear.{p}");
        rule(sb + "linear1.{p}", false, st + "attn.to_q.{p}", st + "attn.to_k.{p}", st + "attn.to_v.{p}", st + "proj_mlp.{p}");
        rule(sb + "norm.query_norm.scale", false, st + "attn.norm_q.weight");
        rule(sb + "norm.key_norm.scale", false, st + "attn.norm_k.weight");
        rule(sb + "linear2.{p}", false, st + "proj_out.{p}");
        rule("final_layer.adaLN_modulation.1.{p}", true, "norm_out.linear.{p}");
        rule("final_layer.linear.{p}", false, "proj_out.{p}");
    }

    /** The diffusers tensors that make up canonical {@code name}; throws for a name that is not a Flux tensor. */
    public static DiffusersRecipe diffusersSources(String name) {
        for (Rule r : RULES) {
            Matcher m = r.canonicalRegex.matcher(name);
            if (m.matches()) {
                List<String> src = new ArrayList<>();
                for (String d : r.diffusers) src.add(fill(d, m));
                return new DiffusersRecipe(List.copyOf(src), r.swap);
            }
        }
        throw new IllegalArgumentException("'" + name + "' is not a canonical Flux tensor name");
    }

    /**
     * The canonical tensor that diffusers tensor {@code name} is (part of), or null when the name is not part of a
     * diffusers Flux transformer. q/k/v (and proj_mlp) map to the fused qkv/linear1 tensor they are rows of;
     * {@code norm_out.linear.*} maps to {@code final_layer.adaLN_modulation.1.*}, whose halves are swapped.
     */
    public static String fromDiffusers(String name) {
        for (Rule r : RULES) {
            for (Pattern p : r.diffusersRegex) {
                Matcher m = p.matcher(name);
                if (m.matches()) return fill(r.canonical, m);
            }
        }
        return null;
    }

    /**
     * Row counts of the diffusers sources of canonical tensor {@code name} under {@code cfg}, in the order of
     * {@link #diffusersSources}: q, k, v of D rows each (and proj_mlp of mlpHidden rows for single_blocks.i.linear1);
     * one entry for tensors that are not split.
     */
    public static long[] diffusersPartRows(FluxConfig cfg, String name) {
        Shape expected = expectedShapes(cfg).get(name);
        if (expected == null) throw new IllegalArgumentException("'" + name + "' is not a tensor of Flux " + cfg);
        return partRows(cfg, name, expected, diffusersSources(name).sources().size());
    }

    /** Row counts of each diffusers source of canonical {@code name} (q, k, v: D each; proj_mlp: mlpHidden). */
    private static long[] partRows(FluxConfig cfg, String name, Shape expected, int parts) {
        long[] rows = new long[parts];
        if (name.contains(".linear1.")) {
            Arrays.fill(rows, cfg.hiddenSize());
            rows[parts - 1] = cfg.mlpHidden();
        } else {
            Arrays.fill(rows, expected.dim(0) / parts);
        }
        return rows;
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Loads every tensor of {@code cfg} from {@code src} (layout and prefix detected) onto {@code ops}' device.
     * Linear weights become {@code dtype}; 1-D tensors (biases, norm scales) too, except that for an fp8
     * {@code dtype} they become BF16.
     */
    public static FluxWeights load(Ops ops, WeightSource src, FluxConfig cfg, DType dtype) {
        return load(ops, src, cfg, dtype, null);
    }

    /** {@link #load(Ops, WeightSource, FluxConfig, DType)} with {@code patch} (null: none) merged in (see {@link Patch}). */
    public static FluxWeights load(Ops ops, WeightSource src, FluxConfig cfg, DType dtype, Patch patch) {
        DType vectors = isFp8(dtype) ? DType.BF16 : dtype;
        return load(ops, src, detectPrefix(src), cfg, dtype, vectors, patch);
    }

    /** Loads with an explicit prefix and explicit dtypes for 2-D weights and for 1-D tensors. */
    public static FluxWeights load(Ops ops, WeightSource src, String prefix, FluxConfig cfg, DType weightDtype,
                                   DType vectorDtype) {
        return load(ops, src, prefix, cfg, weightDtype, vectorDtype, null);
    }

    /** Loads with an explicit prefix, explicit dtypes and a {@link Patch} (null: none). */
    public static FluxWeights load(Ops ops, WeightSource src, String prefix, FluxConfig cfg, DType weightDtype,
                                   DType vectorDtype, Patch patch) {
        if (!weightDtype.isFloating() || !vectorDtype.isFloating())
            throw new IllegalArgumentException("Flux weights load as a floating dtype, got " + weightDtype + "/" + vectorDtype);
        Layout layout = Layout.of(src, prefix);
        requireNoExtraParts(src, prefix, layout, cfg);
        Map<String, Shape> shapes = expectedShapes(cfg);
        Set<String> patched = patch == null ? Set.of() : patch.names();
        for (String n : patched)
            if (!shapes.containsKey(n))
                throw new IllegalArgumentException("the weight patch changes '" + n + "', which Flux " + cfg + " does not have");
        Loader loader = new Loader(ops, src, prefix, layout, cfg);
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Shape> e : shapes.entrySet()) {
                DType dt = e.getValue().rank() == 2 ? weightDtype : vectorDtype;
                out.put(e.getKey(), loader.load(e.getKey(), e.getValue(), dt, patched.contains(e.getKey()) ? patch : null));
            }
        } catch (RuntimeException ex) {
            for (Tensor t : out.values()) t.close();
            throw ex;
        }
        return new FluxWeights(cfg, out);
    }

    /**
     * Shape checks cannot see parts of the checkpoint that the configuration leaves out: a guidance embedder or blocks
     * beyond the configured depth would be silently ignored and the model would compute something else.
     */
    private static void requireNoExtraParts(WeightSource src, String prefix, Layout layout, FluxConfig cfg) {
        ShapeReader r = new ShapeReader(src, prefix, layout);
        String extra = null;
        if (!cfg.guidanceEmbed() && r.has("guidance_in.in_layer.weight"))
            extra = "a guidance embedder (" + r.sources("guidance_in.in_layer.weight").get(0) + ": a dev/Kontext model)";
        else if (r.has("double_blocks." + cfg.depth() + ".img_mod.lin.weight"))
            extra = r.countBlocks("double_blocks.") + " double blocks";
        else if (r.has("single_blocks." + cfg.depthSingle() + ".modulation.lin.weight"))
            extra = r.countBlocks("single_blocks.") + " single blocks";
        if (extra != null)
            throw new CheckpointException("Flux " + where(src, null) + " has " + extra + ", which " + cfg
                    + " leaves out; load it with the configuration FluxConfig.detect reads from the file");
    }

    /** "" when the transformer's tensors are unprefixed, {@value #BFL_PREFIX} or another prefix ending in '.' otherwise. */
    public static String detectPrefix(WeightSource w) {
        if (w.contains("img_in.weight") || w.contains("x_embedder.weight")) return "";
        if (w.contains(BFL_PREFIX + "img_in.weight")) return BFL_PREFIX;
        for (String n : w.names()) {
            if (n.endsWith(".img_in.weight")) return n.substring(0, n.length() - "img_in.weight".length());
            if (n.endsWith(".x_embedder.weight")) return n.substring(0, n.length() - "x_embedder.weight".length());
        }
        throw new CheckpointException("not a Flux transformer: " + where(w, null) + " has no 'img_in.weight' (BFL/ComfyUI) or "
                + "'x_embedder.weight' (diffusers), with or without a prefix such as '" + BFL_PREFIX + "'");
    }

    private static boolean isFp8(DType d) { return d == DType.F8_E4M3 || d == DType.F8_E5M2; }

    /** "file F" or "tensor 'N' in file F", for messages. */
    static String where(WeightSource w, String name) { return ScaledFp8.where(w, name); }

    /** Shapes of canonical tensors in a checkpoint of either layout, for {@link FluxConfig#detect}. */
    static final class ShapeReader {
        private final WeightSource w;
        private final String prefix;
        private final Layout layout;

        ShapeReader(WeightSource w, String prefix, Layout layout) {
            this.w = w;
            this.prefix = prefix;
            this.layout = layout;
        }

        List<String> sources(String canonical) {
            if (layout == Layout.BFL) return List.of(prefix + canonical);
            List<String> out = new ArrayList<>();
            for (String s : diffusersSources(canonical).sources()) out.add(prefix + s);
            return out;
        }

        boolean has(String canonical) {
            for (String s : sources(canonical)) if (!w.contains(s)) return false;
            return true;
        }

        /** Shape of the canonical tensor (rows of diffusers parts added up); rank checked. */
        long[] shape(String canonical, int rank) {
            long[] shape = null;
            for (String s : sources(canonical)) {
                if (!w.contains(s))
                    throw new CheckpointException("Flux " + FluxWeights.where(w, null) + " lacks tensor '" + s + "' (canonical '"
                            + canonical + "'), needed to read the model's configuration; is this a Flux.1 transformer?");
                long[] d = w.info(s).shape().dims();
                if (d.length != rank)
                    throw new CheckpointException("Flux checkpoint: " + FluxWeights.where(w, s) + " has shape " + Arrays.toString(d)
                            + ", expected a rank-" + rank + " tensor");
                if (shape == null) shape = d;
                else shape[0] += d[0];
            }
            return shape;
        }

        String where(String canonical) { return FluxWeights.where(w, sources(canonical).get(0)); }

        /** Number of consecutive blocks 0..n−1 present ("double_blocks." or "single_blocks."). */
        int countBlocks(String kind) {
            String probe = kind.equals("double_blocks.") ? ".img_mod.lin.weight" : ".modulation.lin.weight";
            int n = 0;
            while (has(kind + n + probe)) n++;
            return n;
        }
    }

    /** Reads, checks, dequantizes and uploads canonical tensors. */
    private static final class Loader {
        private final Ops ops;
        private final WeightSource w;
        private final String prefix;
        private final Layout layout;
        private final FluxConfig cfg;

        Loader(Ops ops, WeightSource w, String prefix, Layout layout, FluxConfig cfg) {
            this.ops = ops;
            this.w = w;
            this.prefix = prefix;
            this.layout = layout;
            this.cfg = cfg;
        }

        Tensor load(String name, Shape expected, DType dtype, Patch patch) {
            List<String> sources;
            long[] rows;
            boolean swap;
            if (layout == Layout.BFL) {
                sources = List.of(prefix + name);
                rows = new long[] {expected.dim(0)};
                swap = false;
            } else {
                DiffusersRecipe r = diffusersSources(name);
                sources = new ArrayList<>();
                for (String s : r.sources()) sources.add(prefix + s);
                rows = partRows(cfg, name, expected, sources.size());
                swap = r.swapHalves();
            }
            for (int k = 0; k < sources.size(); k++) check(sources.get(k), name, expected.with(0, rows[k]));
            try (Scope scope = Scope.open()) {
                DType fetchAs = patch == null ? dtype : DType.F32;
                List<Tensor> parts = new ArrayList<>();
                for (String s : sources) parts.add(fetch(s, fetchAs));
                Tensor t = parts.size() == 1 ? parts.get(0) : ops.concat(0, parts.toArray(Tensor[]::new));
                if (swap) {
                    long half = expected.dim(0) / 2;
                    t = ops.concat(0, ops.slice(t, 0, half, 2 * half), ops.slice(t, 0, 0, half));
                }
                if (patch != null) {
                    t = patch.apply(ops, name, t);
                    if (!t.shape().equals(expected) || t.dtype() != DType.F32)
                        throw new IllegalStateException("the weight patch returned " + t.dtype() + t.shape() + " for '" + name
                                + "', expected F32" + expected);
                    DType merged = isFp8(dtype) ? DType.BF16 : dtype;
                    if (merged != DType.F32) t = ops.cast(t, merged);
                }
                return scope.keep(t);
            }
        }

        private void check(String source, String canonical, Shape expected) {
            String what = source.equals(prefix + canonical) ? "" : " (part of canonical '" + canonical + "')";
            if (!w.contains(source))
                throw new CheckpointException("Flux " + where(w, null) + " lacks tensor '" + source + "'" + what
                        + ", expected shape " + expected + " for " + cfg + ". The file is incomplete or holds another model; "
                        + "let FluxConfig.detect read the configuration from the file");
            TensorInfo info = w.info(source);
            if (!info.shape().equals(expected))
                throw new CheckpointException("Flux checkpoint: " + where(w, source) + what + " has shape " + info.shape()
                        + ", expected " + expected + " for " + cfg + ". The checkpoint does not match the configuration; "
                        + "let FluxConfig.detect read it from the file");
        }

        /** Uploads one stored tensor as {@code dtype}, applying a ComfyUI weight scale when the file has one. */
        private Tensor fetch(String source, DType dtype) {
            return ScaledFp8.fetch(ops, w, source, dtype, "Flux checkpoint");
        }
    }
}
