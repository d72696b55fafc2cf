package org.dit4j.models.wan;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
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
 * The tensors of a Wan2.1 transformer under one canonical naming: the original (Wan-AI / ComfyUI) names without
 * prefix (models.md §2.6), e.g. {@code blocks.3.self_attn.q.weight}. Two layouts map onto it:
 * <ul>
 *   <li>original / ComfyUI files ({@code diffusion_pytorch_model*.safetensors} of Wan-AI/Wan2.1-T2V-*,
 *       {@code wan2.1_t2v_*.safetensors}): the same names, optionally under {@value #COMFY_PREFIX};</li>
 *   <li>diffusers {@code WanTransformer3DModel}: renamed one to one ({@link #toDiffusers}, {@link #fromDiffusers}).
 *       Note the swap of the block norms: the cross-attention LayerNorm is {@code norm3} in the original and
 *       {@code norm2} in diffusers (whose {@code norm3} is the FFN's parameter-free norm).</li>
 * </ul>
 * Storage may be F32, BF16, F16, F8_E4M3/F8_E5M2, or ComfyUI scaled fp8 ({@link ScaledFp8}). What diffusers keeps in
 * float32 when it loads a model in bf16 ({@code _keep_in_fp32_modules}) is loaded as F32 here whatever the requested
 * dtype: the time embedding MLP, the modulation tables of the blocks and of the head, and the cross-attention
 * LayerNorm. Tensors are uploaded to the backend and converted there; this object owns them until {@link #close()}.
 */
public final class WanWeights implements AutoCloseable {

    /** Prefix of the transformer inside ComfyUI checkpoints that carry it. */
    public static final String COMFY_PREFIX = "model.diffusion_model.";

    /** Naming scheme of a checkpoint. */
    public enum Layout {
        ORIGINAL, DIFFUSERS;

        /** Which layout the transformer under {@code prefix} uses, judged by its time projection's name. */
        public static Layout of(WeightSource w, String prefix) {
            if (w.contains(prefix + ORIGINAL_PROBE)) return ORIGINAL;
            if (w.contains(prefix + DIFFUSERS_PROBE)) return DIFFUSERS;
            throw new CheckpointException("not a Wan transformer: " + ScaledFp8.where(w, null) + " has neither '" + prefix
                    + ORIGINAL_PROBE + "' (original/ComfyUI naming) nor '" + prefix + DIFFUSERS_PROBE + "' (diffusers naming)");
        }
    }

    private static final String ORIGINAL_PROBE = "time_projection.1.weight";
    private static final String DIFFUSERS_PROBE = "condition_embedder.time_proj.weight";

    private final WanConfig config;
    private final Map<String, Tensor> tensors;

    private WanWeights(WanConfig config, Map<String, Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    public WanConfig config() { return config; }

    /** Canonical names, in load order. */
    public List<String> names() { return List.copyOf(tensors.keySet()); }

    /** The backend tensor of canonical {@code name}. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no Wan weight named '" + name + "' (config " + config + ")");
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
    public static Map<String, Shape> expectedShapes(WanConfig cfg) {
        long d = cfg.dim(), f = cfg.ffnDim();
        int[] p = cfg.patch();
        Map<String, Shape> s = new LinkedHashMap<>();
        s.put("patch_embedding.weight", Shape.of(d, cfg.inChannels(), p[0], p[1], p[2]));
        s.put("patch_embedding.bias", Shape.of(d));
        linear(s, "text_embedding.0", d, cfg.textDim());
        linear(s, "text_embedding.2", d, d);
        linear(s, "time_embedding.0", d, cfg.freqDim());
        linear(s, "time_embedding.2", d, d);
        linear(s, "time_projection.1", 6 * d, d);
        for (int i = 0; i < cfg.numLayers(); i++) {
            String b = "blocks." + i + ".";
            s.put(b + "modulation", Shape.of(1, 6, d));
            for (String a : new String[] {"self_attn", "cross_attn"}) {
                for (String x : new String[] {"q", "k", "v", "o"}) linear(s, b + a + "." + x, d, d);
                s.put(b + a + ".norm_q.weight", Shape.of(d));
                s.put(b + a + ".norm_k.weight", Shape.of(d));
            }
            if (cfg.crossAttnNorm()) {
                s.put(b + "norm3.weight", Shape.of(d));
                s.put(b + "norm3.bias", Shape.of(d));
            }
            linear(s, b + "ffn.0", f, d);
            linear(s, b + "ffn.2", d, f);
        }
        s.put("head.modulation", Shape.of(1, 2, d));
        linear(s, "head.head", cfg.patchFeaturesOut(), d);
        return s;
    }

    private static void linear(Map<String, Shape> s, String module, long out, long in) {
        s.put(module + ".weight", Shape.of(out, in));
        s.put(module + ".bias", Shape.of(out));
    }

    /** Whether canonical {@code name} is loaded as F32 whatever the requested dtype (diffusers' _keep_in_fp32_modules). */
    public static boolean keptInF32(String name) {
        return name.startsWith("time_embedding.") || name.endsWith("modulation") || name.contains(".norm3.");
    }

    /** Canonical name of an original/ComfyUI tensor name (strips {@value #COMFY_PREFIX} when present). */
    public static String fromOriginal(String name) {
        return name.startsWith(COMFY_PREFIX) ? name.substring(COMFY_PREFIX.length()) : name;
    }

    // ------------------------------------------------------------------------------------------------ diffusers

    private record Rule(Pattern canonical, String canonicalTemplate, Pattern diffusers, String diffusersTemplate) {}

    private static final List<Rule> RULES = new ArrayList<>();

    private static void rule(String canonical, String diffusers) {
        RULES.add(new Rule(templateRegex(canonical), canonical, templateRegex(diffusers), diffusers));
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
        rule("patch_embedding.{p}", "patch_embedding.{p}");
        rule("text_embedding.0.{p}", "condition_embedder.text_embedder.linear_1.{p}");
        rule("text_embedding.2.{p}", "condition_embedder.text_embedder.linear_2.{p}");
        rule("time_embedding.0.{p}", "condition_embedder.time_embedder.linear_1.{p}");
        rule("time_embedding.2.{p}", "condition_embedder.time_embedder.linear_2.{p}");
        rule("time_projection.1.{p}", "condition_embedder.time_proj.{p}");
        String b = "blocks.{i}.";
        rule(b + "modulation", b + "scale_shift_table");
        for (String[] a : new String[][] {{"self_attn", "attn1"}, {"cross_attn", "attn2"}}) {
            rule(b + a[0] + ".q.{p}", b + a[1] + ".to_q.{p}");
            rule(b + a[0] + ".k.{p}", b + a[1] + ".to_k.{p}");
            rule(b + a[0] + ".v.{p}", b + a[1] + ".to_v.{p}");
            rule(b + a[0] + ".o.{p}", b + a[1] + ".to_out.0.{p}");
            rule(b + a[0] + ".norm_q.weight", b + a[1] + ".norm_q.weight");
            rule(b + a[0] + ".norm_k.weight", b + a[1] + ".norm_k.weight");
        }
        rule(b + "norm3.{p}", b + "norm2.{p}");
        rule(b + "ffn.0.{p}", b + "ffn.net.0.proj.{p}");
        rule(b + "ffn.2.{p}", b + "ffn.net.2.{p}");
        rule("head.modulation", "scale_shift_table");
        rule("head.head.{p}", "proj_out.{p}");
    }

    /** The diffusers name of canonical {@code name}; throws for a name that is not a Wan2.1 T2V tensor. */
    public static String toDiffusers(String name) {
        for (Rule r : RULES) {
            Matcher m = r.canonical.matcher(name);
            if (m.matches()) return fill(r.diffusersTemplate, m);
        }
        throw new IllegalArgumentException("'" + name + "' is not a canonical Wan2.1 transformer tensor name");
    }

    /** The canonical name of diffusers tensor {@code name}, or null when it is not part of a Wan2.1 T2V transformer. */
    public static String fromDiffusers(String name) {
        for (Rule r : RULES) {
            Matcher m = r.diffusers.matcher(name);
            if (m.matches()) return fill(r.canonicalTemplate, m);
        }
        return null;
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Loads every tensor of {@code cfg} from {@code src} (layout and prefix detected) onto {@code ops}' device.
     * Weights of rank ≥ 2 become {@code dtype}; 1-D tensors (biases, norm scales) too, except that for an fp8
     * {@code dtype} they become BF16; {@link #keptInF32} tensors become F32.
     */
    public static WanWeights load(Ops ops, WeightSource src, WanConfig cfg, DType dtype) {
        DType vectors = dtype == DType.F8_E4M3 || dtype == DType.F8_E5M2 ? DType.BF16 : dtype;
        return load(ops, src, detectPrefix(src), cfg, dtype, vectors);
    }

    /** Loads with an explicit prefix and explicit dtypes for weights of rank ≥ 2 and for 1-D tensors. */
    public static WanWeights load(Ops ops, WeightSource src, String prefix, WanConfig cfg, DType weightDtype, DType vectorDtype) {
        if (!weightDtype.isFloating() || !vectorDtype.isFloating())
            throw new IllegalArgumentException("Wan weights load as a floating dtype, got " + weightDtype + "/" + vectorDtype);
        ShapeReader r = new ShapeReader(src, prefix);
        r.refuseUnsupported();
        requireNoExtraParts(r, cfg);
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, Shape> e : expectedShapes(cfg).entrySet()) {
                String name = e.getKey();
                DType dt = keptInF32(name) ? DType.F32 : e.getValue().rank() >= 2 ? weightDtype : vectorDtype;
                String source = r.source(name);
                r.check(source, name, e.getValue(), cfg);
                try (Scope scope = Scope.open()) {
                    out.put(name, scope.keep(ScaledFp8.fetch(ops, src, source, dt, "Wan checkpoint")));
                }
            }
        } catch (RuntimeException ex) {
            for (Tensor t : out.values()) t.close();
            throw ex;
        }
        return new WanWeights(cfg, out);
    }

    /**
     * Takes ownership of tensors already on a backend under canonical names (e.g. random benchmark weights made on the
     * device). Every tensor of {@link #expectedShapes} must be there with its shape and no other; {@link #keptInF32}
     * tensors must be F32.
     */
    public static WanWeights of(WanConfig cfg, Map<String, Tensor> tensors) {
        Map<String, Shape> expected = expectedShapes(cfg);
        for (Map.Entry<String, Shape> e : expected.entrySet()) {
            Tensor t = tensors.get(e.getKey());
            if (t == null) throw new IllegalArgumentException("Wan weights: tensor '" + e.getKey() + "' " + e.getValue()
                    + " is missing (config " + cfg + ")");
            if (!t.shape().equals(e.getValue())) throw new IllegalArgumentException("Wan weights: tensor '" + e.getKey()
                    + "' has shape " + t.shape() + ", expected " + e.getValue() + " for " + cfg);
            if (keptInF32(e.getKey()) && t.dtype() != DType.F32) throw new IllegalArgumentException("Wan weights: tensor '"
                    + e.getKey() + "' must be F32 (kept in float32 like diffusers does), got " + t.dtype());
        }
        for (String n : tensors.keySet())
            if (!expected.containsKey(n)) throw new IllegalArgumentException("Wan weights: '" + n + "' is not a tensor of " + cfg);
        Map<String, Tensor> ordered = new LinkedHashMap<>();
        for (String n : expected.keySet()) ordered.put(n, tensors.get(n));
        return new WanWeights(cfg, ordered);
    }

    /** Blocks beyond the configured depth, or a cross-attention norm the configuration leaves out, would be ignored. */
    private static void requireNoExtraParts(ShapeReader r, WanConfig cfg) {
        String extra = null;
        if (r.has("blocks." + cfg.numLayers() + ".self_attn.q.weight")) extra = r.countBlocks() + " blocks";
        else if (!cfg.crossAttnNorm() && r.has("blocks.0.norm3.weight"))
            extra = "a cross-attention LayerNorm (" + r.source("blocks.0.norm3.weight") + ")";
        if (extra != null)
            throw new CheckpointException("Wan " + ScaledFp8.where(r.w, null) + " has " + extra + ", which " + cfg
                    + " leaves out; load it with the configuration WanConfig.detect reads from the file");
    }

    /** "" when the transformer's tensors are unprefixed, {@value #COMFY_PREFIX} or another prefix ending in '.' otherwise. */
    public static String detectPrefix(WeightSource w) {
        if (w.contains(ORIGINAL_PROBE) || w.contains(DIFFUSERS_PROBE)) return "";
        if (w.contains(COMFY_PREFIX + ORIGINAL_PROBE)) return COMFY_PREFIX;
        for (String n : w.names()) {
            if (n.endsWith("." + ORIGINAL_PROBE)) return n.substring(0, n.length() - ORIGINAL_PROBE.length());
            if (n.endsWith("." + DIFFUSERS_PROBE)) return n.substring(0, n.length() - DIFFUSERS_PROBE.length());
        }
        throw new CheckpointException("not a Wan transformer: " + ScaledFp8.where(w, null) + " has no '" + ORIGINAL_PROBE
                + "' (original/ComfyUI) or '" + DIFFUSERS_PROBE + "' (diffusers), with or without a prefix such as '"
                + COMFY_PREFIX + "'");
    }

    /** Stored names and shapes of canonical tensors in a checkpoint of either layout. */
    static final class ShapeReader {
        final WeightSource w;
        private final String prefix;
        private final Layout layout;

        ShapeReader(WeightSource w, String prefix) {
            this.w = w;
            this.prefix = prefix;
            this.layout = Layout.of(w, prefix);
        }

        /** The stored name of canonical {@code name}. */
        String source(String canonical) {
            return prefix + (layout == Layout.ORIGINAL ? canonical : toDiffusers(canonical));
        }

        List<String> sources(String canonical) { return List.of(source(canonical)); }

        boolean has(String canonical) { return w.contains(source(canonical)); }

        String where(String canonical) { return ScaledFp8.where(w, source(canonical)); }

        /** Shape of the canonical tensor; rank checked. */
        long[] shape(String canonical, int rank) {
            String s = source(canonical);
            if (!w.contains(s))
                throw new CheckpointException("Wan " + ScaledFp8.where(w, null) + " lacks tensor '" + s + "' (canonical '"
                        + canonical + "'), needed to read the model's configuration; is this a Wan2.1 transformer?");
            long[] d = w.info(s).shape().dims();
            if (d.length != rank)
                throw new CheckpointException("Wan checkpoint: " + ScaledFp8.where(w, s) + " has shape " + Arrays.toString(d)
                        + ", expected a rank-" + rank + " tensor");
            return d;
        }

        /** Number of consecutive blocks 0..n−1 present. */
        int countBlocks() {
            int n = 0;
            while (has("blocks." + n + ".self_attn.q.weight")) n++;
            return n;
        }

        /** Image-to-video and other variants carry tensors this T2V transformer would silently ignore. */
        void refuseUnsupported() {
            String[][] probes = layout == Layout.ORIGINAL
                    ? new String[][] {{"img_emb.proj.0.weight", "image-to-video (CLIP image embedding)"},
                                      {"blocks.0.cross_attn.k_img.weight", "image-to-video (image cross-attention)"},
                                      {"vace_patch_embedding.weight", "VACE"}}
                    : new String[][] {{"condition_embedder.image_embedder.norm1.weight", "image-to-video (CLIP image embedding)"},
                                      {"blocks.0.attn2.add_k_proj.weight", "image-to-video (image cross-attention)"},
                                      {"vace_patch_embedding.weight", "VACE"}};
            for (String[] p : probes) {
                if (w.contains(prefix + p[0]))
                    throw new CheckpointException("Wan " + ScaledFp8.where(w, prefix + p[0]) + " belongs to a " + p[1]
                            + " model; dit4j's Wan transformer implements text-to-video (Wan2.1 T2V 1.3B/14B) only");
            }
        }

        void check(String source, String canonical, Shape expected, WanConfig cfg) {
            String what = source.equals(canonical) ? "" : " (canonical '" + canonical + "')";
            if (!w.contains(source))
                throw new CheckpointException("Wan " + ScaledFp8.where(w, null) + " lacks tensor '" + source + "'" + what
                        + ", expected shape " + expected + " for " + cfg + ". The file is incomplete or holds another model; "
                        + "let WanConfig.detect read the configuration from the file");
            TensorInfo info = w.info(source);
            if (!info.shape().equals(expected))
                throw new CheckpointException("Wan checkpoint: " + ScaledFp8.where(w, source) + what + " has shape "
                        + info.shape() + ", expected " + expected + " for " + cfg + ". The checkpoint does not match the "
                        + "configuration; let WanConfig.detect read it from the file");
        }
    }
}
