package org.dit4j.models.vae;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Conv2d;
import org.dit4j.models.nn.GroupNorm;
import org.dit4j.models.nn.Linear;

/**
 * The tensors of a KL autoencoder under one canonical naming: the BFL/LDM names of Flux's {@code ae.safetensors}
 * without prefix (models.md §1.10), e.g. {@code decoder.up.3.block.0.conv1.weight}, {@code decoder.mid.attn_1.q.weight}.
 * The one difference from BFL files: the mid-block attention's q, k, v, proj_out weights are kept as Linear weights
 * {@code [C, C]} (BFL stores 1×1 convs {@code [C, C, 1, 1]}, squeezed on load).
 *
 * <p>Layouts read:
 * <ul>
 *   <li>BFL / LDM / ComfyUI: the canonical names, unprefixed ({@code ae.safetensors}) or under {@code vae.} (ComfyUI
 *       all-in-one files) or {@code first_stage_model.} (SD single-file checkpoints) — any prefix ending in '.' is found;</li>
 *   <li>diffusers {@code AutoencoderKL}: {@code down_blocks.i.resnets.j}, {@code up_blocks.k.resnets.j},
 *       {@code mid_block.resnets.0/1}, {@code mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0}}
 *       (or the deprecated {@code query,key,value,proj_attn}), {@code conv_norm_out}, {@code conv_shortcut}.
 *       <b>diffusers {@code up_blocks.k} is BFL {@code up.(levels−1−k)}</b>: diffusers numbers decoder levels in the
 *       order they run (coarsest first), BFL by resolution (finest = 0), as diffusers'
 *       {@code convert_ldm_vae_checkpoint} does.</li>
 * </ul>
 * Stored dtypes F32, BF16, F16 (and fp8) are read; tensors are uploaded to the backend and optionally cast there.
 * This object owns the uploaded tensors until {@link #close()}.
 */
public final class VaeWeights implements AutoCloseable {

    /** Prefixes tried first, in order (then any prefix ending in '.'). */
    public static final List<String> KNOWN_PREFIXES = List.of("", "vae.", "first_stage_model.");

    /** Naming scheme of a checkpoint. */
    public enum Layout { BFL, DIFFUSERS }

    private final VaeConfig config;
    private final Map<String, Tensor> tensors;

    private VaeWeights(VaeConfig config, Map<String, Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    public VaeConfig config() { return config; }

    /** Canonical names, in load order. */
    public List<String> names() { return List.copyOf(tensors.keySet()); }

    /** Whether canonical tensor {@code name} was loaded. */
    public boolean has(String name) { return tensors.containsKey(name); }

    /** The backend tensor of canonical {@code name}. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no VAE weight named '" + name + "' (config " + config + ")");
        return t;
    }

    /** The convolution {@code module}.weight/.bias with stride 1 and "same" padding. */
    Conv2d conv(String module) { return Conv2d.same(tensor(module + ".weight"), tensor(module + ".bias")); }

    /** The convolution {@code module}.weight/.bias with the given stride and padding. */
    Conv2d conv(String module, int stride, int padding) {
        return new Conv2d(tensor(module + ".weight"), tensor(module + ".bias"), stride, padding);
    }

    /** The GroupNorm {@code module}.weight/.bias with the configuration's groups and {@link VaeConfig#EPS}. */
    GroupNorm norm(String module) {
        return new GroupNorm(tensor(module + ".weight"), tensor(module + ".bias"), config.normGroups(), VaeConfig.EPS);
    }

    Linear linear(String module) { return new Linear(tensor(module + ".weight"), tensor(module + ".bias")); }

    /** Releases every tensor. */
    @Override public void close() {
        for (Tensor t : tensors.values()) t.close();
        tensors.clear();
    }

    // ------------------------------------------------------------------------------------------------ canonical names

    /** Every canonical tensor of {@code cfg} with its shape, in the order the model runs. */
    public static Map<String, Shape> expectedShapes(VaeConfig cfg) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int n = cfg.levels(), last = cfg.channels(n - 1), lat = cfg.latentChannels();
        if (cfg.hasEncoder()) {
            conv(s, "encoder.conv_in", cfg.channels(0), cfg.inChannels(), 3);
            int prev = cfg.channels(0);
            for (int i = 0; i < n; i++) {
                int c = cfg.channels(i);
                for (int j = 0; j < cfg.layersPerBlock(); j++) resnet(s, "encoder.down." + i + ".block." + j, j == 0 ? prev : c, c);
                if (i < n - 1) conv(s, "encoder.down." + i + ".downsample.conv", c, c, 3);
                prev = c;
            }
            mid(s, "encoder", last, cfg.midAttention());
            vector(s, "encoder.norm_out", last);
            conv(s, "encoder.conv_out", 2 * lat, last, 3);
            if (cfg.useQuantConv()) conv(s, "quant_conv", 2 * lat, 2 * lat, 1);
        }
        if (cfg.hasDecoder()) {
            if (cfg.usePostQuantConv()) conv(s, "post_quant_conv", lat, lat, 1);
            conv(s, "decoder.conv_in", last, lat, 3);
            mid(s, "decoder", last, cfg.midAttention());
            int prev = last;
            for (int i = n - 1; i >= 0; i--) {
                int c = cfg.channels(i);
                for (int j = 0; j <= cfg.layersPerBlock(); j++) resnet(s, "decoder.up." + i + ".block." + j, j == 0 ? prev : c, c);
                if (i > 0) conv(s, "decoder.up." + i + ".upsample.conv", c, c, 3);
                prev = c;
            }
            vector(s, "decoder.norm_out", cfg.channels(0));
            conv(s, "decoder.conv_out", cfg.outChannels(), cfg.channels(0), 3);
        }
        return s;
    }

    private static void conv(Map<String, Shape> s, String module, long out, long in, long k) {
        s.put(module + ".weight", Shape.of(out, in, k, k));
        s.put(module + ".bias", Shape.of(out));
    }

    private static void vector(Map<String, Shape> s, String module, long c) {
        s.put(module + ".weight", Shape.of(c));
        s.put(module + ".bias", Shape.of(c));
    }

    private static void linear(Map<String, Shape> s, String module, long c) {
        s.put(module + ".weight", Shape.of(c, c));
        s.put(module + ".bias", Shape.of(c));
    }

    private static void resnet(Map<String, Shape> s, String p, int in, int out) {
        vector(s, p + ".norm1", in);
        conv(s, p + ".conv1", out, in, 3);
        vector(s, p + ".norm2", out);
        conv(s, p + ".conv2", out, out, 3);
        if (in != out) conv(s, p + ".nin_shortcut", out, in, 1);
    }

    private static void mid(Map<String, Shape> s, String part, int c, boolean attention) {
        resnet(s, part + ".mid.block_1", c, c);
        if (attention) {
            String a = part + ".mid.attn_1.";
            vector(s, a + "norm", c);
            for (String x : new String[] {"q", "k", "v", "proj_out"}) linear(s, a + x, c);
        }
        resnet(s, part + ".mid.block_2", c, c);
    }

    /** Whether canonical {@code name} is an attention projection weight (Linear [C,C]; 1×1 conv [C,C,1,1] in BFL files). */
    static boolean isAttentionProjection(String name) {
        return name.matches("(encoder|decoder)\\.mid\\.attn_1\\.(q|k|v|proj_out)\\.weight");
    }

    // ------------------------------------------------------------------------------------------------ diffusers names

    private static final String[][] ATTN = {
        // canonical, diffusers, deprecated diffusers (before diffusers 0.14)
        {"norm", "group_norm", "group_norm"}, {"q", "to_q", "query"}, {"k", "to_k", "key"}, {"v", "to_v", "value"},
        {"proj_out", "to_out.0", "proj_attn"},
    };

    private static String resnetPart(String s) { return s.replace("nin_shortcut", "conv_shortcut"); }

    private static String resnetPartBack(String s) { return s.replace("conv_shortcut", "nin_shortcut"); }

    /**
     * The diffusers names canonical {@code name} may have in a model of {@code levels} levels: the current name first,
     * then deprecated spellings (attention {@code query/key/value/proj_attn}). Throws for a name that is not canonical.
     */
    public static List<String> toDiffusers(String name, int levels) {
        Matcher m;
        if ((m = match("encoder\\.down\\.(\\d+)\\.block\\.(\\d+)\\.(.+)", name)) != null)
            return List.of("encoder.down_blocks." + m.group(1) + ".resnets." + m.group(2) + "." + resnetPart(m.group(3)));
        if ((m = match("encoder\\.down\\.(\\d+)\\.downsample\\.conv\\.(weight|bias)", name)) != null)
            return List.of("encoder.down_blocks." + m.group(1) + ".downsamplers.0.conv." + m.group(2));
        if ((m = match("decoder\\.up\\.(\\d+)\\.block\\.(\\d+)\\.(.+)", name)) != null)
            return List.of("decoder.up_blocks." + flip(m.group(1), levels) + ".resnets." + m.group(2) + "." + resnetPart(m.group(3)));
        if ((m = match("decoder\\.up\\.(\\d+)\\.upsample\\.conv\\.(weight|bias)", name)) != null)
            return List.of("decoder.up_blocks." + flip(m.group(1), levels) + ".upsamplers.0.conv." + m.group(2));
        if ((m = match("(encoder|decoder)\\.mid\\.block_([12])\\.(.+)", name)) != null)
            return List.of(m.group(1) + ".mid_block.resnets." + (Integer.parseInt(m.group(2)) - 1) + "." + resnetPart(m.group(3)));
        if ((m = match("(encoder|decoder)\\.mid\\.attn_1\\.(norm|q|k|v|proj_out)\\.(weight|bias)", name)) != null) {
            for (String[] a : ATTN) {
                if (a[0].equals(m.group(2))) {
                    String base = m.group(1) + ".mid_block.attentions.0.";
                    String cur = base + a[1] + "." + m.group(3), old = base + a[2] + "." + m.group(3);
                    return cur.equals(old) ? List.of(cur) : List.of(cur, old);
                }
            }
        }
        if ((m = match("(encoder|decoder)\\.norm_out\\.(weight|bias)", name)) != null)
            return List.of(m.group(1) + ".conv_norm_out." + m.group(2));
        if (name.matches("(encoder|decoder)\\.conv_(in|out)\\.(weight|bias)|(post_)?quant_conv\\.(weight|bias)"))
            return List.of(name);
        throw new IllegalArgumentException("'" + name + "' is not a canonical VAE tensor name");
    }

    private static final List<Map.Entry<Pattern, Function<Matcher, String>>> FROM_DIFFUSERS = new ArrayList<>();

    private static void from(String regex, Function<Matcher, String> f) {
        FROM_DIFFUSERS.add(Map.entry(Pattern.compile(regex), f));
    }

    static {
        from("encoder\\.down_blocks\\.(\\d+)\\.resnets\\.(\\d+)\\.(.+)",
                m -> "encoder.down." + m.group(1) + ".block." + m.group(2) + "." + resnetPartBack(m.group(3)));
        from("encoder\\.down_blocks\\.(\\d+)\\.downsamplers\\.0\\.conv\\.(weight|bias)",
                m -> "encoder.down." + m.group(1) + ".downsample.conv." + m.group(2));
        from("(encoder|decoder)\\.mid_block\\.resnets\\.([01])\\.(.+)",
                m -> m.group(1) + ".mid.block_" + (Integer.parseInt(m.group(2)) + 1) + "." + resnetPartBack(m.group(3)));
        from("(encoder|decoder)\\.mid_block\\.attentions\\.0\\.(group_norm|to_q|to_k|to_v|to_out\\.0|query|key|value|proj_attn)\\.(weight|bias)",
                m -> {
                    for (String[] a : ATTN)
                        if (a[1].equals(m.group(2)) || a[2].equals(m.group(2))) return m.group(1) + ".mid.attn_1." + a[0] + "." + m.group(3);
                    throw new AssertionError(m.group(2));
                });
        from("(encoder|decoder)\\.conv_norm_out\\.(weight|bias)", m -> m.group(1) + ".norm_out." + m.group(2));
        from("((encoder|decoder)\\.conv_(in|out)|(post_)?quant_conv)\\.(weight|bias)", m -> m.group(0));
    }

    /**
     * The canonical name of diffusers tensor {@code name} in a model of {@code levels} levels, or null when it is not
     * a diffusers AutoencoderKL tensor name.
     */
    public static String fromDiffusers(String name, int levels) {
        Matcher m = match("decoder\\.up_blocks\\.(\\d+)\\.resnets\\.(\\d+)\\.(.+)", name);
        if (m != null) return "decoder.up." + flip(m.group(1), levels) + ".block." + m.group(2) + "." + resnetPartBack(m.group(3));
        m = match("decoder\\.up_blocks\\.(\\d+)\\.upsamplers\\.0\\.conv\\.(weight|bias)", name);
        if (m != null) return "decoder.up." + flip(m.group(1), levels) + ".upsample.conv." + m.group(2);
        for (Map.Entry<Pattern, Function<Matcher, String>> e : FROM_DIFFUSERS) {
            Matcher x = e.getKey().matcher(name);
            if (x.matches()) return e.getValue().apply(x);
        }
        return null;
    }

    private static Matcher match(String regex, String s) {
        Matcher m = Pattern.compile(regex).matcher(s);
        return m.matches() ? m : null;
    }

    private static int flip(String index, int levels) {
        int i = Integer.parseInt(index);
        if (i >= levels)
            throw new IllegalArgumentException("decoder level " + i + " does not exist in a VAE of " + levels + " levels");
        return levels - 1 - i;
    }

    // ------------------------------------------------------------------------------------------------ detection

    /**
     * The prefix of the VAE's tensors: the first of {@link #KNOWN_PREFIXES} under which {@code decoder.conv_in.weight}
     * or {@code encoder.conv_in.weight} exists, else any prefix ending in '.' that holds one.
     */
    public static String detectPrefix(WeightSource w) {
        for (String p : KNOWN_PREFIXES)
            if (w.contains(p + "decoder.conv_in.weight") || w.contains(p + "encoder.conv_in.weight")) return p;
        for (String n : w.names()) {
            for (String probe : new String[] {".decoder.conv_in.weight", ".encoder.conv_in.weight"})
                if (n.endsWith(probe)) return n.substring(0, n.length() - probe.length() + 1);
        }
        throw new CheckpointException("not a VAE: checkpoint " + w.path() + " has no 'decoder.conv_in.weight' or "
                + "'encoder.conv_in.weight', with or without a prefix such as 'vae.' or 'first_stage_model.'");
    }

    /** Which naming the VAE under {@code prefix} uses, judged by its level and mid-block names. */
    public static Layout layoutOf(WeightSource w, String prefix) {
        boolean bfl = false, diffusers = false;
        for (String n : w.names()) {
            if (!n.startsWith(prefix)) continue;
            String s = n.substring(prefix.length());
            if (s.startsWith("encoder.down_blocks.") || s.startsWith("decoder.up_blocks.") || s.contains(".mid_block."))
                diffusers = true;
            else if (s.startsWith("encoder.down.") || s.startsWith("decoder.up.") || s.startsWith("encoder.mid.")
                    || s.startsWith("decoder.mid."))
                bfl = true;
        }
        if (bfl && diffusers)
            throw new CheckpointException("VAE checkpoint " + w.path() + " mixes BFL names (encoder.down.*, decoder.up.*, *.mid.*) "
                    + "and diffusers names (down_blocks, up_blocks, mid_block) under prefix '" + prefix + "'; use one layout");
        if (!bfl && !diffusers)
            throw new CheckpointException("VAE checkpoint " + w.path() + " has no level or mid-block tensors under prefix '"
                    + prefix + "' (neither BFL 'decoder.up.0.block.0.*' nor diffusers 'decoder.up_blocks.0.resnets.0.*')");
        return diffusers ? Layout.DIFFUSERS : Layout.BFL;
    }

    /** Reads shapes of canonical tensors in a checkpoint of either layout (for {@link VaeConfig#detect} and loading). */
    static final class ShapeReader {
        final WeightSource w;
        final String prefix;
        final Layout layout;
        final int levels;

        private ShapeReader(WeightSource w, String prefix, Layout layout) {
            this.w = w;
            this.prefix = prefix;
            this.layout = layout;
            int enc = countLevels("encoder"), dec = countLevels("decoder");
            if (enc > 0 && dec > 0 && enc != dec)
                throw new CheckpointException("VAE checkpoint " + w.path() + ": the encoder has " + enc + " levels but the decoder "
                        + dec + "; the file mixes two models");
            this.levels = Math.max(enc, dec);
            if (levels == 0)
                throw new CheckpointException("VAE checkpoint " + w.path() + " has no ResnetBlock of level 0 ("
                        + (layout == Layout.BFL ? "'" + prefix + "decoder.up.0.block.0.conv1.weight'"
                        : "'" + prefix + "decoder.up_blocks.0.resnets.0.conv1.weight'") + " or the encoder's)");
        }

        static ShapeReader of(WeightSource w) {
            String prefix = detectPrefix(w);
            return new ShapeReader(w, prefix, layoutOf(w, prefix));
        }

        private int countLevels(String part) {
            int n = 0;
            while (w.contains(prefix + levelProbe(part, n))) n++;
            return n;
        }

        private String levelProbe(String part, int i) {
            if (layout == Layout.BFL)
                return part.equals("encoder") ? "encoder.down." + i + ".block.0.conv1.weight" : "decoder.up." + i + ".block.0.conv1.weight";
            return part.equals("encoder") ? "encoder.down_blocks." + i + ".resnets.0.conv1.weight"
                    : "decoder.up_blocks." + i + ".resnets.0.conv1.weight";
        }

        /** The stored name of canonical {@code name} (for diffusers: the first spelling present, else the current one). */
        String source(String name) {
            if (layout == Layout.BFL) return prefix + name;
            List<String> c = toDiffusers(name, levels);
            for (String s : c) if (w.contains(prefix + s)) return prefix + s;
            return prefix + c.get(0);
        }

        boolean has(String name) { return w.contains(source(name)); }

        /** Dimension {@code i} of canonical tensor {@code name}, which must exist with rank {@code rank}. */
        int dim(String name, int rank, int i) {
            String s = source(name);
            if (!w.contains(s))
                throw new CheckpointException("VAE checkpoint " + w.path() + " lacks tensor '" + s + "' (canonical '" + name
                        + "'), needed to read the model's configuration; is this a KL autoencoder (Flux/SD VAE)?");
            Shape shape = w.info(s).shape();
            if (shape.rank() != rank)
                throw new CheckpointException("VAE checkpoint: tensor '" + s + "' in " + w.fileOf(s) + " has shape " + shape
                        + ", expected a rank-" + rank + " tensor");
            return shape.dimInt(i);
        }

        /** Number of consecutive indices j = 0, 1, … for which canonical {@code before + j + after} exists. */
        int count(String before, String after) {
            int n = 0;
            while (has(before + n + after)) n++;
            return n;
        }

        int levels() { return levels; }

        /** Stored names under the prefix that belong to the VAE's modules (the strictness check's universe). */
        Set<String> vaeNames() {
            Set<String> out = new LinkedHashSet<>();
            for (String n : w.names()) {
                if (!n.startsWith(prefix)) continue;
                String s = n.substring(prefix.length());
                if (!prefix.isEmpty() || s.startsWith("encoder.") || s.startsWith("decoder.") || s.startsWith("quant_conv.")
                        || s.startsWith("post_quant_conv.")) out.add(n);
            }
            return out;
        }
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Loads every tensor of {@code cfg} from {@code src} (prefix and layout detected) onto {@code ops}' device, cast
     * to {@code dtype} (null: keep each stored dtype). Fails, naming the tensor, its file, the expected and the found
     * shape, when a tensor is missing or misshapen, and when the checkpoint holds VAE tensors {@code cfg} leaves out.
     */
    public static VaeWeights load(Ops ops, WeightSource src, VaeConfig cfg, DType dtype) {
        if (dtype != null && !dtype.isFloating())
            throw new IllegalArgumentException("VAE weights load as a floating dtype, got " + dtype);
        ShapeReader r = ShapeReader.of(src);
        if (r.levels() != cfg.levels())
            throw new CheckpointException("VAE checkpoint " + src.path() + " has " + r.levels() + " resolution levels but "
                    + cfg + " has " + cfg.levels() + "; let VaeConfig.detect read the configuration from the file");
        Map<String, Shape> expected = expectedShapes(cfg);
        Map<String, String> sources = new LinkedHashMap<>();
        for (Map.Entry<String, Shape> e : expected.entrySet()) {
            String name = e.getKey(), s = r.source(name);
            check(src, s, name, e.getValue(), cfg);
            sources.put(name, s);
        }
        Set<String> extra = r.vaeNames();
        extra.removeAll(sources.values());
        if (!extra.isEmpty()) {
            List<String> some = extra.stream().limit(6).toList();
            throw new CheckpointException("VAE checkpoint " + src.path() + " has " + extra.size() + " tensor(s) that " + cfg
                    + " leaves out, e.g. " + some + "; the configuration does not match the file: let VaeConfig.detect "
                    + "read it from the file");
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : sources.entrySet()) {
                Tensor host = src.tensor(e.getValue()).view(expected.get(e.getKey()));
                Tensor t = ops.upload(host);
                if (dtype != null && t.dtype() != dtype) {
                    Tensor c = ops.cast(t, dtype);
                    t.close();
                    t = c;
                }
                out.put(e.getKey(), t);
            }
        } catch (RuntimeException ex) {
            for (Tensor t : out.values()) t.close();
            throw ex;
        }
        return new VaeWeights(cfg, out);
    }

    private static void check(WeightSource w, String source, String canonical, Shape expected, VaeConfig cfg) {
        String what = source.equals(canonical) ? "" : " (canonical '" + canonical + "')";
        if (!w.contains(source))
            throw new CheckpointException("VAE checkpoint " + w.path() + " lacks tensor '" + source + "'" + what + ", expected shape "
                    + expected + " for " + cfg + ". The file is incomplete or holds another model; let VaeConfig.detect "
                    + "read the configuration from the file");
        TensorInfo info = w.info(source);
        Shape found = info.shape();
        boolean ok = found.equals(expected);
        if (!ok && isAttentionProjection(canonical) && found.rank() > 2 && found.dim(0) == expected.dim(0)
                && found.dim(1) == expected.dim(1)) {
            ok = true;   // a 1×1 conv [C, C, 1, 1] (BFL) or conv1d [C, C, 1]: the same numbers as the Linear [C, C]
            for (int i = 2; i < found.rank(); i++) ok &= found.dim(i) == 1;
        }
        if (!ok)
            throw new CheckpointException("VAE checkpoint: tensor '" + source + "'" + what + " in " + w.fileOf(source)
                    + " has shape " + found + ", expected " + expected + " for " + cfg + ". The checkpoint does not match "
                    + "the configuration; let VaeConfig.detect read it from the file (and pass norm groups/scaling it cannot see)");
        if (info.dtype() == null || !info.dtype().isFloating())
            throw new CheckpointException("VAE checkpoint: tensor '" + source + "' in " + w.fileOf(source) + " is stored as "
                    + w.dtypeName(source) + "; dit4j reads VAE weights stored as F32, BF16, F16 or fp8");
    }
}
