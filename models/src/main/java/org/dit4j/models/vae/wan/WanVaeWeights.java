package org.dit4j.models.vae.wan;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.NavigableSet;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * The tensors of a Wan2.1 VAE under one canonical naming: the original names of {@code Wan2.1_VAE.pth} /
 * ComfyUI's {@code wan_2.1_vae.safetensors}, without prefix (models.md §2.8), e.g.
 * {@code decoder.upsamples.4.residual.2.weight}. The original model keeps flat module lists:
 * <ul>
 *   <li>{@code encoder.downsamples.N}: per level, numResBlocks residual blocks then (all but the last level) the
 *       resample; N = level·(numResBlocks+1) + j;</li>
 *   <li>{@code decoder.upsamples.N}: per level in the order they run (coarsest first), numResBlocks+1 residual blocks
 *       then (all but the last) the resample; N = level·(numResBlocks+2) + j;</li>
 *   <li>a residual block is {@code residual.{0: RMS_norm gamma, 2: conv, 3: RMS_norm gamma, 6: conv}} plus
 *       {@code shortcut} (1³ conv) when its channel count changes; a resample is {@code resample.1} (the 2-D conv) plus
 *       {@code time_conv} for the temporal modes; {@code middle.{0, 2}} are residual blocks and {@code middle.1} the
 *       attention ({@code norm.gamma, to_qkv, proj}); {@code head.{0.gamma, 2}} the output norm and conv;
 *       {@code conv1} / {@code conv2} the 1³ convs on the moments / on the decoder's input (diffusers'
 *       {@code quant_conv} / {@code post_quant_conv}).</li>
 * </ul>
 * Layouts read: the original/ComfyUI names, unprefixed or under any prefix ending in '.' ({@code vae.},
 * {@code first_stage_model.}, …), and diffusers' {@code AutoencoderKLWan} ({@code encoder.down_blocks.N} with the same
 * flat index, {@code decoder.up_blocks.i.resnets.j} / {@code .upsamplers.0}, {@code mid_block}, {@code conv_in},
 * {@code norm_out}, {@code conv_out}, {@code norm1/conv1/norm2/conv2/conv_shortcut}), as diffusers'
 * {@code convert_wan_vae_to_diffusers} renames them for Wan2.1's structure. Shapes are the stored ones (RMS-norm gammas
 * {@code [C, 1, 1, 1]}, the attention's {@code [C, 1, 1]}, 1×1 convs {@code [O, C, 1, 1]}); stored dtypes F32, BF16,
 * F16 (and fp8) are read, uploaded and optionally cast. This object owns the uploaded tensors until {@link #close()}.
 */
public final class WanVaeWeights implements AutoCloseable {

    /** Prefixes tried first, in order (then any prefix ending in '.'). */
    public static final List<String> KNOWN_PREFIXES = List.of("", "vae.", "first_stage_model.");

    /** Naming scheme of a checkpoint. */
    public enum Layout { ORIGINAL, DIFFUSERS }

    private final WanVaeConfig config;
    private final Map<String, Tensor> tensors;

    private WanVaeWeights(WanVaeConfig config, Map<String, Tensor> tensors) {
        this.config = config;
        this.tensors = tensors;
    }

    public WanVaeConfig config() { return config; }

    /** Canonical names, in load order. */
    public List<String> names() { return List.copyOf(tensors.keySet()); }

    public boolean has(String name) { return tensors.containsKey(name); }

    /** The backend tensor of canonical {@code name}. */
    public Tensor tensor(String name) {
        Tensor t = tensors.get(name);
        if (t == null) throw new IllegalArgumentException("no Wan VAE weight named '" + name + "' (config " + config + ")");
        return t;
    }

    /** Releases every tensor. */
    @Override public void close() {
        for (Tensor t : tensors.values()) t.close();
        tensors.clear();
    }

    // ------------------------------------------------------------------------------------------------ canonical names

    /** Flat index of encoder level {@code level}'s residual block j (j = numResBlocks: its resample). */
    static int encoderIndex(WanVaeConfig cfg, int level, int j) { return level * (cfg.numResBlocks() + 1) + j; }

    /** Flat index of decoder level {@code level}'s (running order) residual block j (j = numResBlocks+1: its resample). */
    static int decoderIndex(WanVaeConfig cfg, int level, int j) { return level * (cfg.numResBlocks() + 2) + j; }

    /** Every canonical tensor of {@code cfg} with its stored shape, in the order the model runs. */
    public static Map<String, Shape> expectedShapes(WanVaeConfig cfg) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int levels = cfg.levels(), deepest = cfg.channels(levels - 1), z = cfg.zDim();
        if (cfg.hasEncoder()) {
            conv3(s, "encoder.conv1", cfg.baseDim(), cfg.inChannels(), 3, 3);
            int prev = cfg.baseDim();
            for (int i = 0; i < levels; i++) {
                int c = cfg.channels(i);
                for (int j = 0; j < cfg.numResBlocks(); j++) {
                    residual(s, "encoder.downsamples." + encoderIndex(cfg, i, j), prev, c);
                    prev = c;
                }
                if (i < levels - 1) {
                    String p = "encoder.downsamples." + encoderIndex(cfg, i, cfg.numResBlocks());
                    conv2(s, p + ".resample.1", c, c, 3);
                    if (cfg.temporalDownsample(i)) conv3(s, p + ".time_conv", c, c, 3, 1);
                }
            }
            middle(s, "encoder", deepest);
            gamma(s, "encoder.head.0", deepest);
            conv3(s, "encoder.head.2", 2 * z, deepest, 3, 3);
            conv3(s, "conv1", 2 * z, 2 * z, 1, 1);
        }
        if (cfg.hasDecoder()) {
            conv3(s, "conv2", z, z, 1, 1);
            conv3(s, "decoder.conv1", deepest, z, 3, 3);
            middle(s, "decoder", deepest);
            int prev = deepest;
            for (int i = 0; i < levels; i++) {
                int c = cfg.channels(levels - 1 - i);
                for (int j = 0; j <= cfg.numResBlocks(); j++) {
                    residual(s, "decoder.upsamples." + decoderIndex(cfg, i, j), prev, c);
                    prev = c;
                }
                if (i < levels - 1) {
                    String p = "decoder.upsamples." + decoderIndex(cfg, i, cfg.numResBlocks() + 1);
                    conv2(s, p + ".resample.1", c / 2, c, 3);
                    if (cfg.temporalDownsample(levels - 2 - i)) conv3(s, p + ".time_conv", 2 * c, c, 3, 1);
                    prev = c / 2;
                }
            }
            gamma(s, "decoder.head.0", cfg.channels(0));
            conv3(s, "decoder.head.2", cfg.outChannels(), cfg.channels(0), 3, 3);
        }
        return s;
    }

    /** A 3-D conv [O, C, kt, k, k] (kt = 3 and k = 1 for the time convs) and its bias. */
    private static void conv3(Map<String, Shape> s, String module, long out, long in, long kt, long k) {
        s.put(module + ".weight", Shape.of(out, in, kt, k, k));
        s.put(module + ".bias", Shape.of(out));
    }

    private static void conv2(Map<String, Shape> s, String module, long out, long in, long k) {
        s.put(module + ".weight", Shape.of(out, in, k, k));
        s.put(module + ".bias", Shape.of(out));
    }

    private static void gamma(Map<String, Shape> s, String module, long c) { s.put(module + ".gamma", Shape.of(c, 1, 1, 1)); }

    private static void residual(Map<String, Shape> s, String p, int in, int out) {
        gamma(s, p + ".residual.0", in);
        conv3(s, p + ".residual.2", out, in, 3, 3);
        gamma(s, p + ".residual.3", out);
        conv3(s, p + ".residual.6", out, out, 3, 3);
        if (in != out) conv3(s, p + ".shortcut", out, in, 1, 1);
    }

    private static void middle(Map<String, Shape> s, String part, int c) {
        residual(s, part + ".middle.0", c, c);
        s.put(part + ".middle.1.norm.gamma", Shape.of(c, 1, 1));
        conv2(s, part + ".middle.1.to_qkv", 3L * c, c, 1);
        conv2(s, part + ".middle.1.proj", c, c, 1);
        residual(s, part + ".middle.2", c, c);
    }

    // ------------------------------------------------------------------------------------------------ diffusers names

    private static final String[][] RESNET = {
        {"residual.0.gamma", "norm1.gamma"}, {"residual.2.", "conv1."}, {"residual.3.gamma", "norm2.gamma"},
        {"residual.6.", "conv2."}, {"shortcut.", "conv_shortcut."},
    };

    /** Renames the part of a residual block (or resample: unchanged) from original to diffusers names. */
    static String resnetPart(String s) {
        for (String[] r : RESNET) if (s.startsWith(r[0])) return r[1] + s.substring(r[0].length());
        return s;
    }

    private static String resnetPartBack(String s) {
        for (String[] r : RESNET) if (s.startsWith(r[1])) return r[0] + s.substring(r[1].length());
        return s;
    }

    /**
     * The diffusers name of canonical {@code name} in a model with {@code numResBlocks} residual blocks per encoder
     * level (needed for the decoder's flat indices only). Throws for a name that is not canonical.
     */
    public static String toDiffusers(String name, int numResBlocks) {
        Matcher m;
        if ((m = match("conv([12])\\.(weight|bias)", name)) != null)
            return (m.group(1).equals("1") ? "quant_conv." : "post_quant_conv.") + m.group(2);
        if ((m = match("(encoder|decoder)\\.conv1\\.(weight|bias)", name)) != null) return m.group(1) + ".conv_in." + m.group(2);
        if ((m = match("(encoder|decoder)\\.head\\.0\\.gamma", name)) != null) return m.group(1) + ".norm_out.gamma";
        if ((m = match("(encoder|decoder)\\.head\\.2\\.(weight|bias)", name)) != null) return m.group(1) + ".conv_out." + m.group(2);
        if ((m = match("(encoder|decoder)\\.middle\\.([02])\\.(.+)", name)) != null)
            return m.group(1) + ".mid_block.resnets." + (m.group(2).equals("0") ? 0 : 1) + "." + resnetPart(m.group(3));
        if ((m = match("(encoder|decoder)\\.middle\\.1\\.(.+)", name)) != null) return m.group(1) + ".mid_block.attentions.0." + m.group(2);
        if ((m = match("encoder\\.downsamples\\.(\\d+)\\.(.+)", name)) != null)
            return "encoder.down_blocks." + m.group(1) + "." + resnetPart(m.group(2));
        if ((m = match("decoder\\.upsamples\\.(\\d+)\\.(.+)", name)) != null) {
            int n = Integer.parseInt(m.group(1)), per = numResBlocks + 2, level = n / per, j = n % per;
            if (j <= numResBlocks) return "decoder.up_blocks." + level + ".resnets." + j + "." + resnetPart(m.group(2));
            return "decoder.up_blocks." + level + ".upsamplers.0." + m.group(2);
        }
        throw new IllegalArgumentException("'" + name + "' is not a canonical Wan VAE tensor name");
    }

    /** The canonical name of diffusers tensor {@code name}, or null when it is not an AutoencoderKLWan (2.1) name. */
    public static String fromDiffusers(String name, int numResBlocks) {
        Matcher m;
        if ((m = match("(post_)?quant_conv\\.(weight|bias)", name)) != null)
            return (m.group(1) == null ? "conv1." : "conv2.") + m.group(2);
        if ((m = match("(encoder|decoder)\\.conv_in\\.(weight|bias)", name)) != null) return m.group(1) + ".conv1." + m.group(2);
        if ((m = match("(encoder|decoder)\\.norm_out\\.gamma", name)) != null) return m.group(1) + ".head.0.gamma";
        if ((m = match("(encoder|decoder)\\.conv_out\\.(weight|bias)", name)) != null) return m.group(1) + ".head.2." + m.group(2);
        if ((m = match("(encoder|decoder)\\.mid_block\\.resnets\\.([01])\\.(.+)", name)) != null)
            return m.group(1) + ".middle." + (m.group(2).equals("0") ? 0 : 2) + "." + resnetPartBack(m.group(3));
        if ((m = match("(encoder|decoder)\\.mid_block\\.attentions\\.0\\.(.+)", name)) != null) return m.group(1) + ".middle.1." + m.group(2);
        if ((m = match("encoder\\.down_blocks\\.(\\d+)\\.(.+)", name)) != null)
            return "encoder.downsamples." + m.group(1) + "." + resnetPartBack(m.group(2));
        int per = numResBlocks + 2;
        if ((m = match("decoder\\.up_blocks\\.(\\d+)\\.resnets\\.(\\d+)\\.(.+)", name)) != null)
            return "decoder.upsamples." + (Integer.parseInt(m.group(1)) * per + Integer.parseInt(m.group(2))) + "."
                    + resnetPartBack(m.group(3));
        if ((m = match("decoder\\.up_blocks\\.(\\d+)\\.upsamplers\\.0\\.(.+)", name)) != null)
            return "decoder.upsamples." + (Integer.parseInt(m.group(1)) * per + per - 1) + "." + m.group(2);
        return null;
    }

    private static Matcher match(String regex, String s) {
        Matcher m = Pattern.compile(regex).matcher(s);
        return m.matches() ? m : null;
    }

    // ------------------------------------------------------------------------------------------------ detection

    /** Names (relative to the prefix) that only a Wan VAE has, per layout. */
    private static final String[][] PROBES = {
        {"decoder.middle.0.residual.0.gamma", "encoder.middle.0.residual.0.gamma"},
        {"decoder.mid_block.resnets.0.norm1.gamma", "encoder.mid_block.resnets.0.norm1.gamma"},
    };

    private static final Pattern WAN22 = Pattern.compile(
            "encoder\\.downsamples\\.\\d+\\.downsamples\\..*|encoder\\.down_blocks\\.\\d+\\.resnets\\..*|decoder\\.up_blocks\\.\\d+\\.upsampler\\..*");

    /**
     * The prefix of the VAE's tensors: the first of {@link #KNOWN_PREFIXES} under which a Wan VAE mid block exists,
     * else any prefix ending in '.' that holds one.
     */
    public static String detectPrefix(WeightSource w) {
        for (String p : KNOWN_PREFIXES)
            for (String[] probes : PROBES) for (String probe : probes) if (w.contains(p + probe)) return p;
        for (String n : w.names())
            for (String[] probes : PROBES)
                for (String probe : probes) if (n.endsWith("." + probe)) return n.substring(0, n.length() - probe.length());
        throw new CheckpointException("not a Wan VAE: checkpoint " + w.path() + " has no '" + PROBES[0][0] + "' (original/ComfyUI "
                + "naming) or '" + PROBES[1][0] + "' (diffusers naming), nor their encoder counterparts, with or without a prefix "
                + "such as 'vae.'");
    }

    /** Shapes and stored names of a checkpoint's VAE tensors in either layout (for detection and loading). */
    static final class Reader {
        final WeightSource w;
        final String prefix;
        final Layout layout;
        /** Stored names under the prefix, the prefix removed. */
        private final NavigableSet<String> rel = new TreeSet<>();

        private Reader(WeightSource w, String prefix) {
            this.w = w;
            this.prefix = prefix;
            for (String n : w.names()) if (n.startsWith(prefix)) rel.add(n.substring(prefix.length()));
            boolean original = false, diffusers = false;
            for (String probe : PROBES[0]) original |= rel.contains(probe);
            for (String probe : PROBES[1]) diffusers |= rel.contains(probe);
            if (original && diffusers)
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + " mixes original and diffusers names under prefix '"
                        + prefix + "'; use one layout");
            this.layout = diffusers ? Layout.DIFFUSERS : Layout.ORIGINAL;
            for (String n : rel) {
                if (WAN22.matcher(n).matches())
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + " holds '" + prefix + n + "', a residual "
                            + "down/up block of Wan2.2's VAE; dit4j's Wan VAE implements Wan2.1's (z_dim 16)");
            }
        }

        static Reader of(WeightSource w) { return new Reader(w, detectPrefix(w)); }

        /** The stored name of canonical {@code name} (for diffusers, {@code numResBlocks} places decoder indices). */
        String source(String name, int numResBlocks) {
            return prefix + (layout == Layout.ORIGINAL ? name : toDiffusers(name, numResBlocks));
        }

        private boolean has(String relName) { return rel.contains(relName); }

        private boolean anyUnder(String relPrefix) {
            String c = rel.ceiling(relPrefix);
            return c != null && c.startsWith(relPrefix);
        }

        /** Shape of stored {@code relName} (relative to the prefix), which must exist with rank {@code rank}. */
        private long[] shape(String relName, int rank, String why) {
            String s = prefix + relName;
            if (!w.contains(s))
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + " lacks tensor '" + s + "', needed to read " + why);
            Shape shape = w.info(s).shape();
            if (shape.rank() != rank)
                throw new CheckpointException("Wan VAE checkpoint: tensor '" + s + "' in " + w.fileOf(s) + " has shape " + shape
                        + ", expected a rank-" + rank + " tensor");
            return shape.dims();
        }

        private String top(String canonical) { return layout == Layout.ORIGINAL ? canonical : toDiffusers(canonical, 0); }

        /** A residual block's tensor: {@code entry} (relative, ends in '.') + original suffix, renamed for diffusers. */
        private String part(String entry, String suffix) { return entry + (layout == Layout.ORIGINAL ? suffix : resnetPart(suffix)); }

        /** The flat list entries (relative prefixes ending in '.') of the encoder's levels, in order. */
        private List<String> encoderEntries() {
            String list = layout == Layout.ORIGINAL ? "encoder.downsamples." : "encoder.down_blocks.";
            List<String> out = new ArrayList<>();
            for (int n = 0; anyUnder(list + n + "."); n++) out.add(list + n + ".");
            return out;
        }

        /** The decoder's residual blocks and resamples in the order they run. */
        private List<String> decoderEntries() {
            List<String> out = new ArrayList<>();
            if (layout == Layout.ORIGINAL) {
                for (int n = 0; anyUnder("decoder.upsamples." + n + "."); n++) out.add("decoder.upsamples." + n + ".");
                return out;
            }
            for (int i = 0; anyUnder("decoder.up_blocks." + i + "."); i++) {
                String b = "decoder.up_blocks." + i + ".";
                for (int j = 0; anyUnder(b + "resnets." + j + "."); j++) out.add(b + "resnets." + j + ".");
                if (anyUnder(b + "upsamplers.0.")) out.add(b + "upsamplers.0.");
            }
            return out;
        }

        /** Level structure of one part: per-level output channels, residual blocks per level, time-conv flags. */
        private record Levels(List<Integer> channels, int blocksPerLevel, List<Boolean> temporal) {}

        private Levels walk(String part, List<String> entries) {
            List<Integer> channels = new ArrayList<>();
            List<Boolean> temporal = new ArrayList<>();
            int perLevel = -1, count = 0, lastOut = -1;
            String why = "the " + part + "'s level structure";
            for (String e : entries) {
                if (has(part(e, "residual.2.weight"))) {
                    lastOut = Math.toIntExact(shape(part(e, "residual.2.weight"), 5, why)[0]);
                    count++;
                } else if (has(e + "resample.1.weight")) {
                    perLevel = closeLevel(part, e, perLevel, count);
                    channels.add(lastOut);
                    temporal.add(has(e + "time_conv.weight"));
                    count = 0;
                } else if (has(e + "to_qkv.weight")) {
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + " has an attention block inside a " + part
                            + " level ('" + prefix + e + "to_qkv.weight'; attn_scales), which Wan2.1 does not have and dit4j "
                            + "does not implement");
                } else {
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": the " + part + " list entry '" + prefix + e
                            + "*' is neither a residual block nor a resample (no '" + part(e, "residual.2.weight") + "' or '"
                            + e + "resample.1.weight')");
                }
            }
            if (count == 0)
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": the " + part + "'s last level has no residual "
                        + "blocks (entries " + entries + ")");
            perLevel = closeLevel(part, "the last level", perLevel, count);
            channels.add(lastOut);
            return new Levels(channels, perLevel, temporal);
        }

        private int closeLevel(String part, String where, int perLevel, int count) {
            if (count == 0 || (perLevel >= 0 && perLevel != count))
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": the " + part + "'s levels hold different numbers "
                        + "of residual blocks (" + (perLevel < 0 ? 0 : perLevel) + " and " + count + " before " + where + ")");
            return count;
        }

        WanVaeConfig detect() {
            boolean enc = has(top("encoder.conv1.weight")), dec = has(top("decoder.conv1.weight"));
            if (!enc && !dec)
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + " has neither '" + prefix + top("encoder.conv1.weight")
                        + "' nor '" + prefix + top("decoder.conv1.weight") + "'");
            int in = -1, out = -1, base = -1, z = -1, blocks = -1;
            int[] channels = null;
            boolean[] temporal = null;
            if (enc) {
                long[] c1 = shape(top("encoder.conv1.weight"), 5, "the encoder's input channels");
                base = Math.toIntExact(c1[0]);
                in = Math.toIntExact(c1[1]);
                long moments = shape(top("encoder.head.2.weight"), 5, "the latent channels")[0];
                if (moments % 2 != 0)
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": the encoder emits " + moments
                            + " channels, expected an even number (mean ‖ log-variance)");
                z = Math.toIntExact(moments / 2);
                Levels l = walk("encoder", encoderEntries());
                channels = l.channels.stream().mapToInt(Integer::intValue).toArray();
                blocks = l.blocksPerLevel;
                temporal = new boolean[l.temporal.size()];
                for (int i = 0; i < temporal.length; i++) temporal[i] = l.temporal.get(i);
            }
            if (dec) {
                long[] c1 = shape(top("decoder.conv1.weight"), 5, "the latent channels");
                out = Math.toIntExact(shape(top("decoder.head.2.weight"), 5, "the output channels")[0]);
                Levels l = walk("decoder", decoderEntries());
                int n = l.channels.size();
                int[] ch = new int[n];
                for (int i = 0; i < n; i++) ch[i] = l.channels.get(n - 1 - i);
                boolean[] t = new boolean[n - 1];
                for (int i = 0; i < n - 1; i++) t[i] = l.temporal.get(n - 2 - i);
                int decZ = Math.toIntExact(c1[1]);
                if (enc && (!Arrays.equals(ch, channels) || !Arrays.equals(t, temporal)
                        || l.blocksPerLevel != blocks + 1 || decZ != z))
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": the encoder (channels "
                            + Arrays.toString(channels) + ", temporal " + Arrays.toString(temporal) + ", "
                            + blocks + " blocks per level, z " + z + ") and the decoder (channels " + Arrays.toString(ch)
                            + ", temporal " + Arrays.toString(t) + ", " + l.blocksPerLevel + " blocks per level, z "
                            + decZ + ") do not belong to one Wan VAE (the decoder has one block more per level)");
                channels = ch;
                temporal = t;
                blocks = l.blocksPerLevel - 1;
                z = decZ;
                if (blocks < 1)
                    throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": decoder levels hold " + l.blocksPerLevel
                            + " residual block(s), expected at least 2 (numResBlocks + 1)");
            }
            if (in < 0) in = out;
            if (out < 0) out = in;
            if (base < 0) base = channels[0];
            float[][] stats = WanVaeConfig.defaultLatentStats(z);
            try {
                return new WanVaeConfig(in, out, base, channels, blocks, temporal, z, stats[0], stats[1], enc, dec);
            } catch (IllegalArgumentException e) {
                throw new CheckpointException("Wan VAE checkpoint " + w.path() + ": " + e.getMessage(), e);
            }
        }

        /** Stored names under the prefix that belong to the VAE (the strictness check's universe). */
        Set<String> vaeNames() {
            Set<String> out = new LinkedHashSet<>();
            for (String s : rel) {
                if (!prefix.isEmpty() || s.startsWith("encoder.") || s.startsWith("decoder.") || s.matches("(conv[12]|(post_)?quant_conv)\\..*"))
                    out.add(prefix + s);
            }
            return out;
        }
    }

    // ------------------------------------------------------------------------------------------------ loading

    /**
     * Loads every tensor of {@code cfg} from {@code src} (prefix and layout detected) onto {@code ops}' device, cast to
     * {@code dtype} (null: keep each stored dtype). Fails, naming the tensor, its file, the expected and the found shape,
     * when a tensor is missing or misshapen, and when the checkpoint holds VAE tensors {@code cfg} leaves out.
     */
    public static WanVaeWeights load(Ops ops, WeightSource src, WanVaeConfig cfg, DType dtype) {
        if (dtype != null && !dtype.isFloating())
            throw new IllegalArgumentException("Wan VAE weights load as a floating dtype, got " + dtype);
        Reader r = Reader.of(src);
        Map<String, Shape> expected = expectedShapes(cfg);
        Map<String, String> sources = new LinkedHashMap<>();
        for (Map.Entry<String, Shape> e : expected.entrySet()) {
            String name = e.getKey(), s = r.source(name, cfg.numResBlocks());
            check(src, s, name, e.getValue(), cfg);
            sources.put(name, s);
        }
        Set<String> extra = r.vaeNames();
        extra.removeAll(sources.values());
        if (!extra.isEmpty()) {
            List<String> some = extra.stream().limit(6).toList();
            throw new CheckpointException("Wan VAE checkpoint " + src.path() + " has " + extra.size() + " tensor(s) that " + cfg
                    + " leaves out, e.g. " + some + "; the configuration does not match the file: let WanVaeConfig.detect read "
                    + "it from the file");
        }
        Map<String, Tensor> out = new LinkedHashMap<>();
        try {
            for (Map.Entry<String, String> e : sources.entrySet()) {
                Tensor t = ops.upload(src.tensor(e.getValue()));
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
        return new WanVaeWeights(cfg, out);
    }

    private static void check(WeightSource w, String source, String canonical, Shape expected, WanVaeConfig cfg) {
        String what = source.equals(canonical) ? "" : " (canonical '" + canonical + "')";
        if (!w.contains(source))
            throw new CheckpointException("Wan VAE checkpoint " + w.path() + " lacks tensor '" + source + "'" + what
                    + ", expected shape " + expected + " for " + cfg + ". The file is incomplete or holds another model; let "
                    + "WanVaeConfig.detect read the configuration from the file");
        TensorInfo info = w.info(source);
        if (!info.shape().equals(expected))
            throw new CheckpointException("Wan VAE checkpoint: tensor '" + source + "'" + what + " in " + w.fileOf(source)
                    + " has shape " + info.shape() + ", expected " + expected + " for " + cfg + ". The checkpoint does not "
                    + "match the configuration; let WanVaeConfig.detect read it from the file");
        if (info.dtype() == null || !info.dtype().isFloating())
            throw new CheckpointException("Wan VAE checkpoint: tensor '" + source + "' in " + w.fileOf(source) + " is stored as "
                    + w.dtypeName(source) + "; dit4j reads VAE weights stored as F32, BF16, F16 or fp8");
    }
}
