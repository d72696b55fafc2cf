package org.dit4j.models.flux.lora;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.Tensor;

/**
 * The tensors of a LoRA file for a Flux.1 transformer, each assigned to the canonical weight it changes
 * ({@link org.dit4j.models.flux.FluxWeights} naming). Module names of every common style are recognised
 * ({@link FluxLoraNames}: BFL/ComfyUI, kohya, diffusers/PEFT, OneTrainer, LyCORIS, XLabs), with the tensor suffixes
 * <ul>
 *   <li>low-rank pairs: {@code .lora_A.weight}/{@code .lora_B.weight} (PEFT; also {@code .lora_A.default.weight}),
 *       {@code .lora_down.weight}/{@code .lora_up.weight} (kohya, ComfyUI), {@code .lora.down.weight}/{@code .lora.up.weight},
 *       {@code _lora.down.weight}/{@code _lora.up.weight}, {@code .lora_linear_layer.down.weight}/{@code .up.weight},
 *       and XLabs' {@code .down.weight}/{@code .up.weight}: ΔW = scale · B·A with A = down [rank, in], B = up [out, rank];</li>
 *   <li>{@code .alpha}: a scalar; scale = alpha / rank;</li>
 *   <li>{@code .lora_B.bias} (PEFT lora_bias): Δb = scale · bias;</li>
 *   <li>{@code .diff} / {@code .diff_b}: a full ΔW / Δb (ComfyUI), scale 1.</li>
 * </ul>
 * Without an {@code .alpha} the scale is 1 (alpha = rank), as in ComfyUI, kohya and PEFT's default — except for
 * diffusers/PEFT files whose header carries diffusers' {@code lora_adapter_metadata} (written by
 * {@code save_lora_weights}): there the adapter's {@code lora_alpha}, {@code alpha_pattern} (PEFT's pattern rule:
 * the module path ends with the pattern after a dot or is it) and {@code use_rslora} (scale alpha/√rank) apply, as
 * diffusers applies them. (ComfyUI ignores that metadata; diffusers, which writes it, does not.)
 * <p>
 * Keys that are recognised but target other models are kept apart: text-encoder LoRAs ({@code lora_te*},
 * {@code text_encoder*}) and unknown keys. Adapters other than plain LoRA (DoRA, LoHa, LoKr, LoCon mid weights, OFT)
 * and BFL's Control LoRAs are refused with a message that says so. This class reads headers and scalars only; the
 * tensors stay in the {@link WeightSource}, which the caller owns.
 */
public final class LoraFile {

    /** Naming style of the module names (see {@link FluxLoraNames}). */
    public enum Style {
        BFL("BFL/ComfyUI"), KOHYA("kohya"), DIFFUSERS("diffusers/PEFT"), ONETRAINER("OneTrainer"), LYCORIS("LyCORIS"), XLABS("XLabs");

        private final String label;

        Style(String label) { this.label = label; }

        @Override public String toString() { return label; }
    }

    /** What a tensor contributes. */
    public enum Kind {
        /** ΔW = scale·up·down. */
        LOW_RANK,
        /** ΔW = scale·tensor (full matrix). */
        DIFF,
        /** Δbias = scale·tensor. */
        BIAS
    }

    /**
     * One contribution to a canonical tensor.
     *
     * @param module     the module name as written in the file
     * @param style      its naming style
     * @param target     canonical tensor changed ({@code ….weight}, or {@code ….bias} for {@link Kind#BIAS})
     * @param firstPart  first diffusers part of the target covered (rows: {@link org.dit4j.models.flux.FluxWeights#diffusersPartRows})
     * @param partCount  number of parts covered
     * @param swapHalves the rows are in diffusers' (scale, shift) order and land swapped
     * @param kind       how the tensors combine
     * @param up         LOW_RANK: B [out, rank]; DIFF/BIAS: the tensor
     * @param down       LOW_RANK: A [rank, in]; otherwise null
     * @param rank       LOW_RANK: the rank; otherwise 0
     * @param alpha      the alpha used (NaN when none applied)
     * @param scale      the factor before the strength: alpha/rank (alpha/√rank for rsLoRA), 1 without alpha
     */
    public record Entry(String module, Style style, String target, int firstPart, int partCount, boolean swapHalves, Kind kind,
                        String up, String down, long rank, double alpha, double scale) {}

    private enum Role { DOWN, UP, ALPHA, UP_BIAS, DIFF, DIFF_BIAS, XDOWN, XUP }

    private record Suffix(String text, Role role) {}

    /** In matching order; XDOWN/XUP count only for XLabs module names. */
    private static final List<Suffix> SUFFIXES = List.of(
            new Suffix(".lora_A.weight", Role.DOWN), new Suffix(".lora_B.weight", Role.UP),
            new Suffix(".lora_A.default.weight", Role.DOWN), new Suffix(".lora_B.default.weight", Role.UP),
            new Suffix(".lora_down.weight", Role.DOWN), new Suffix(".lora_up.weight", Role.UP),
            new Suffix(".lora_linear_layer.down.weight", Role.DOWN), new Suffix(".lora_linear_layer.up.weight", Role.UP),
            new Suffix(".lora.down.weight", Role.DOWN), new Suffix(".lora.up.weight", Role.UP),
            new Suffix("_lora.down.weight", Role.DOWN), new Suffix("_lora.up.weight", Role.UP),
            new Suffix(".alpha", Role.ALPHA), new Suffix(".lora_B.bias", Role.UP_BIAS),
            new Suffix(".diff", Role.DIFF), new Suffix(".diff_b", Role.DIFF_BIAS),
            new Suffix(".down.weight", Role.XDOWN), new Suffix(".up.weight", Role.XUP));

    /** Tensor suffixes of adapters this loader does not implement, with their names for messages. */
    private static final Map<String, String> UNSUPPORTED = new LinkedHashMap<>();

    static {
        UNSUPPORTED.put(".dora_scale", "DoRA");
        UNSUPPORTED.put(".lora_magnitude_vector", "DoRA");
        UNSUPPORTED.put(".lora_mid.weight", "LoCon/Tucker (lora_mid)");
        for (String s : new String[] {".hada_w1_a", ".hada_w1_b", ".hada_w2_a", ".hada_w2_b", ".hada_t1", ".hada_t2"})
            UNSUPPORTED.put(s, "LyCORIS LoHa");
        for (String s : new String[] {".lokr_w1", ".lokr_w2", ".lokr_w1_a", ".lokr_w1_b", ".lokr_w2_a", ".lokr_w2_b", ".lokr_t2"})
            UNSUPPORTED.put(s, "LyCORIS LoKr");
        for (String s : new String[] {".oft_blocks", ".oft_diag", ".oft_R.weight"}) UNSUPPORTED.put(s, "OFT/BOFT");
        UNSUPPORTED.put(".set_weight", "a weight replacement (set_weight)");
        UNSUPPORTED.put(".reshape_weight", "a weight reshape (Control LoRA)");
    }

    private static final Pattern TEXT_ENCODER = Pattern.compile("^(lora_te\\d*_|text_encoders?[._0-9]|lora_te\\d*\\.|te\\d?\\.)");

    private final Path path;
    private final List<Entry> entries;
    private final List<String> unknownKeys;
    private final List<String> textEncoderKeys;
    private final boolean textEncoderEffective;

    private LoraFile(Path path, List<Entry> entries, List<String> unknownKeys, List<String> textEncoderKeys, boolean textEncoderEffective) {
        this.path = path;
        this.entries = List.copyOf(entries);
        this.unknownKeys = List.copyOf(unknownKeys);
        this.textEncoderKeys = List.copyOf(textEncoderKeys);
        this.textEncoderEffective = textEncoderEffective;
    }

    /** Where the file was read from. */
    public Path path() { return path; }

    /** Every contribution to the Flux transformer, in file order of their modules. */
    public List<Entry> entries() { return entries; }

    /** Keys that are neither Flux-transformer LoRA tensors nor text-encoder ones, sorted. */
    public List<String> unknownKeys() { return unknownKeys; }

    /** Keys of a text-encoder LoRA (CLIP or T5), sorted; dit4j applies LoRAs to the transformer only. */
    public List<String> textEncoderKeys() { return textEncoderKeys; }

    /** Whether the text-encoder part changes anything (some trainers save it with all-zero up matrices). */
    public boolean textEncoderEffective() { return textEncoderEffective; }

    /** The naming styles found. */
    public Set<Style> styles() {
        Set<Style> s = EnumSet.noneOf(Style.class);
        for (Entry e : entries) s.add(e.style());
        return s;
    }

    /** "kohya, 494 low-rank pairs (rank 16, alpha 16)" and the like. */
    public String summary() {
        StringBuilder sb = new StringBuilder();
        Set<Style> styles = styles();
        sb.append(styles.isEmpty() ? "no Flux tensors" : String.join("+", styles.stream().map(Style::toString).toList()));
        long pairs = entries.stream().filter(e -> e.kind() == Kind.LOW_RANK).count();
        long other = entries.size() - pairs;
        sb.append(", ").append(pairs).append(" low-rank pair").append(pairs == 1 ? "" : "s");
        Set<Long> ranks = new java.util.TreeSet<>();
        Set<Double> alphas = new java.util.TreeSet<>();
        for (Entry e : entries) {
            if (e.kind() != Kind.LOW_RANK) continue;
            ranks.add(e.rank());
            if (!Double.isNaN(e.alpha())) alphas.add(e.alpha());
        }
        if (!ranks.isEmpty()) {
            sb.append(" (rank ").append(join(ranks));
            if (!alphas.isEmpty()) sb.append(", alpha ").append(join(alphas));
            sb.append(')');
        }
        if (other > 0) sb.append(", ").append(other).append(" full difference").append(other == 1 ? "" : "s");
        if (!textEncoderKeys.isEmpty())
            sb.append(", ").append(textEncoderKeys.size()).append(" text-encoder tensors").append(textEncoderEffective ? "" : " (all zero)");
        if (!unknownKeys.isEmpty()) sb.append(", ").append(unknownKeys.size()).append(" unknown tensors");
        return sb.toString();
    }

    private static String join(Set<? extends Number> values) {
        List<String> s = new ArrayList<>();
        for (Number n : values) {
            if (s.size() == 4) {
                s.add("…");
                break;
            }
            double d = n.doubleValue();
            s.add(d == Math.rint(d) ? Long.toString((long) d) : Double.toString(d));
        }
        return String.join("/", s);
    }

    /** Whether {@code w} looks like a LoRA file at all (any key with a LoRA suffix), for model detection. */
    public static boolean looksLikeLora(WeightSource w) {
        for (String n : w.names()) {
            if (n.contains("lora_") || n.endsWith(".alpha") || n.contains(".lora.") || n.contains("_lora.") || n.contains("_lora1.")
                    || n.contains("_lora2.")) return true;
        }
        return false;
    }

    // ------------------------------------------------------------------------------------------------ reading

    /** Reads the key layout of {@code w} (headers and alphas only). */
    public static LoraFile read(WeightSource w) {
        refuseUnsupported(w);
        Metadata meta = Metadata.of(w);
        // module -> role -> key, under the first reading of the key whose module resolves
        Map<String, Map<Role, String>> groups = new LinkedHashMap<>();
        Map<String, FluxLoraNames.Resolved> resolved = new LinkedHashMap<>();
        List<String> unknown = new ArrayList<>(), te = new ArrayList<>();
        boolean teEffective = false;
        for (String key : w.names()) {
            if (TEXT_ENCODER.matcher(key).find()) {
                te.add(key);
                if (!teEffective && isUpLike(key) && !allZero(w, key)) teEffective = true;
                continue;
            }
            boolean placed = false;
            for (Suffix s : SUFFIXES) {
                if (!key.endsWith(s.text()) || key.length() == s.text().length()) continue;
                String module = key.substring(0, key.length() - s.text().length());
                FluxLoraNames.Resolved r = resolved.containsKey(module) ? resolved.get(module) : FluxLoraNames.resolve(module);
                if (r == null) continue;
                boolean xlabsSuffix = s.role() == Role.XDOWN || s.role() == Role.XUP;
                if (xlabsSuffix != (r.style() == Style.XLABS)) continue;
                resolved.put(module, r);
                Role role = s.role() == Role.XDOWN ? Role.DOWN : s.role() == Role.XUP ? Role.UP : s.role();
                String previous = groups.computeIfAbsent(module, m -> new LinkedHashMap<>()).put(role, key);
                if (previous != null)
                    throw new CheckpointException("LoRA file " + w.path() + " has two tensors for the same part of module '" + module
                            + "': '" + previous + "' and '" + key + "'; the file mixes two conventions and cannot be read unambiguously");
                placed = true;
                break;
            }
            if (!placed) unknown.add(key);
        }
        refuseControlLora(w, groups);
        List<Entry> entries = new ArrayList<>();
        for (Map.Entry<String, Map<Role, String>> g : groups.entrySet()) {
            String module = g.getKey();
            Map<Role, String> keys = g.getValue();
            FluxLoraNames.Resolved r = resolved.get(module);
            String bias = r.canonical().substring(0, r.canonical().length() - ".weight".length()) + ".bias";
            String down = keys.get(Role.DOWN), up = keys.get(Role.UP);
            if ((down == null) != (up == null)) {
                String have = down != null ? down : up;
                throw new CheckpointException("LoRA file " + w.path() + ": '" + have + "' has no matching " + (down != null ? "up (B)" : "down (A)")
                        + " tensor; the file is incomplete or uses an unknown naming for it");
            }
            double alpha = Double.NaN, scale = 1;
            long rank = 0;
            if (down != null) {
                rank = checkPair(w, down, up);
                String alphaKey = keys.get(Role.ALPHA);
                if (alphaKey != null) {
                    alpha = scalar(w, alphaKey);
                    scale = alpha / rank;
                } else if (meta != null && r.style() == Style.DIFFUSERS) {
                    alpha = meta.alphaFor(r.peftModule());
                    scale = meta.rsLora ? alpha / Math.sqrt(rank) : alpha / rank;
                }
                entries.add(new Entry(module, r.style(), r.canonical(), r.firstPart(), r.partCount(), r.swapHalves(), Kind.LOW_RANK,
                        up, down, rank, alpha, scale));
                if (keys.containsKey(Role.UP_BIAS))
                    entries.add(new Entry(module, r.style(), bias, r.firstPart(), r.partCount(), r.swapHalves(), Kind.BIAS,
                            keys.get(Role.UP_BIAS), null, 0, alpha, scale));
            } else {
                if (keys.containsKey(Role.ALPHA)) unknown.add(keys.get(Role.ALPHA));
                if (keys.containsKey(Role.UP_BIAS)) unknown.add(keys.get(Role.UP_BIAS));
            }
            if (keys.containsKey(Role.DIFF))
                entries.add(new Entry(module, r.style(), r.canonical(), r.firstPart(), r.partCount(), r.swapHalves(), Kind.DIFF,
                        keys.get(Role.DIFF), null, 0, Double.NaN, 1));
            if (keys.containsKey(Role.DIFF_BIAS))
                entries.add(new Entry(module, r.style(), bias, r.firstPart(), r.partCount(), r.swapHalves(), Kind.BIAS,
                        keys.get(Role.DIFF_BIAS), null, 0, Double.NaN, 1));
        }
        unknown.sort(null);
        te.sort(null);
        return new LoraFile(w.path(), entries, unknown, te, teEffective);
    }

    /** Checks A [rank, in] and B [out, rank] and returns the rank. */
    private static long checkPair(WeightSource w, String down, String up) {
        TensorInfo a = floating(w, down), b = floating(w, up);
        if (a.shape().rank() != 2 || b.shape().rank() != 2 || a.shape().dim(0) != b.shape().dim(1))
            throw new CheckpointException("LoRA file " + w.path() + ": '" + down + "' " + a.shape() + " and '" + up + "' " + b.shape()
                    + " are not a low-rank pair (expected down [rank, in] and up [out, rank]; conv LoRAs do not apply to Flux)");
        return a.shape().dim(0);
    }

    static TensorInfo floating(WeightSource w, String key) {
        TensorInfo t = w.info(key);
        if (t.dtype() == null || !t.dtype().isFloating())
            throw new CheckpointException("LoRA file " + w.path() + ": tensor '" + key + "' is stored as " + w.dtypeName(key)
                    + "; LoRA tensors must be floating point (F32, BF16, F16 or fp8)");
        return t;
    }

    private static double scalar(WeightSource w, String key) {
        TensorInfo t = floating(w, key);
        if (t.shape().numel() != 1)
            throw new CheckpointException("LoRA file " + w.path() + ": alpha '" + key + "' has shape " + t.shape() + ", expected a scalar");
        double v = w.tensor(key).getFloat(0);
        if (!Double.isFinite(v)) throw new CheckpointException("LoRA file " + w.path() + ": alpha '" + key + "' is " + v);
        return v;
    }

    private static boolean isUpLike(String key) {
        return key.endsWith("lora_up.weight") || key.endsWith("lora_B.weight") || key.endsWith(".up.weight");
    }

    private static boolean allZero(WeightSource w, String key) {
        TensorInfo t = w.info(key);
        if (t.dtype() == null || !t.dtype().isFloating()) return false;
        Tensor x = w.tensor(key);
        for (long i = 0, n = x.numel(); i < n; i++) if (x.getFloat(i) != 0f) return false;
        return true;
    }

    private static void refuseUnsupported(WeightSource w) {
        for (String key : w.names()) {
            for (Map.Entry<String, String> u : UNSUPPORTED.entrySet()) {
                if (key.endsWith(u.getKey()) || key.contains(u.getKey() + "."))
                    throw new CheckpointException("LoRA file " + w.path() + " holds " + u.getValue() + " tensors (e.g. '" + key + "'); dit4j "
                            + "applies plain LoRA (down/up pairs with alpha, full diffs) only. Convert the adapter to a plain LoRA or "
                            + "use one that is");
            }
        }
    }

    /** BFL's FLUX.1 Canny/Depth LoRAs widen img_in (128 input channels) and set the norm scales: a different model. */
    private static void refuseControlLora(WeightSource w, Map<String, Map<Role, String>> groups) {
        boolean norms = false;
        for (String key : w.names()) if (key.endsWith("_norm.scale")) norms = true;
        Map<Role, String> imgIn = null;
        for (Map.Entry<String, Map<Role, String>> g : groups.entrySet())
            if (g.getKey().endsWith("img_in") || g.getKey().endsWith("x_embedder")) imgIn = g.getValue();
        if (norms && imgIn != null && imgIn.containsKey(Role.DOWN))
            throw new CheckpointException("LoRA file " + w.path() + " is a Flux Control LoRA (it replaces the QK-norm scales and adapts "
                    + "img_in, whose down matrix has " + w.info(imgIn.get(Role.DOWN)).shape().dim(1) + " inputs: FLUX.1 Canny/Depth-dev-lora); "
                    + "it needs a control image, which dit4j does not support");
    }

    // ------------------------------------------------------------------------------------------------ family guess

    private static final String[][] FAMILIES = {
            {"double_stream_modulation", "Flux.2"}, {"single_stream_modulation", "Flux.2"},
            {"input_blocks", "Stable Diffusion 1.x/2.x/XL (UNet)"}, {"down_blocks", "Stable Diffusion 1.x/2.x/XL (UNet)"},
            {"joint_blocks", "Stable Diffusion 3"}, {"cross_attn", "Wan 2.x"}, {"self_attn", "Wan 2.x"},
            {"img_mlp_fc", "HunyuanVideo"}, {"img_mod_linear", "HunyuanVideo"}, {"img_mod.linear", "HunyuanVideo"},
            {"individual_token_refiner", "HunyuanVideo"}, {"img_mlp.net", "Qwen-Image"}, {"img_mod.1", "Qwen-Image"},
            {"attn1", "a diffusers UNet or CogVideoX"}, {"layers.", "Lumina/Z-Image"}, {"layers_", "Lumina/Z-Image"},
            {"lora_te", "a text encoder only"}};

    /** What an unrecognised set of keys looks like ("Stable Diffusion 3", …), or null. */
    public static String guessFamily(Iterable<String> keys) {
        Map<String, Integer> votes = new TreeMap<>();
        for (String k : keys) {
            String low = k.toLowerCase(Locale.ROOT);
            for (String[] f : FAMILIES) if (low.contains(f[0])) votes.merge(f[1], 1, Integer::sum);
        }
        return votes.entrySet().stream().max(Map.Entry.comparingByValue()).map(Map.Entry::getKey).orElse(null);
    }

    // ------------------------------------------------------------------------------------------------ PEFT metadata

    /** diffusers' {@code lora_adapter_metadata}: the PEFT LoraConfig of the transformer adapter. */
    private record Metadata(double loraAlpha, Map<String, Double> alphaPattern, boolean rsLora) {
        static Metadata of(WeightSource w) {
            String raw = w.metadata().get("lora_adapter_metadata");
            if (raw == null) return null;
            Object parsed;
            try {
                parsed = Json.parse(raw);
            } catch (Json.SyntaxException e) {
                throw new CheckpointException("LoRA file " + w.path() + ": its 'lora_adapter_metadata' is not valid JSON: " + e.getMessage(), e);
            }
            if (!(parsed instanceof Map<?, ?> m)) return null;
            String p = m.containsKey("transformer.lora_alpha") ? "transformer." : m.containsKey("lora_alpha") ? "" : null;
            if (p == null) return null;
            if (Boolean.TRUE.equals(m.get(p + "use_dora")))
                throw new CheckpointException("LoRA file " + w.path() + " is a DoRA adapter (use_dora in its metadata); dit4j applies plain LoRA only");
            double alpha = number(w, p + "lora_alpha", m.get(p + "lora_alpha"));
            Map<String, Double> patterns = new LinkedHashMap<>();
            if (m.get(p + "alpha_pattern") instanceof Map<?, ?> ap)
                for (Map.Entry<?, ?> e : ap.entrySet()) patterns.put(String.valueOf(e.getKey()), number(w, p + "alpha_pattern", e.getValue()));
            return new Metadata(alpha, patterns, Boolean.TRUE.equals(m.get(p + "use_rslora")));
        }

        private static double number(WeightSource w, String what, Object v) {
            if (v instanceof Number n) return n.doubleValue();
            throw new CheckpointException("LoRA file " + w.path() + ": metadata '" + what + "' is " + v + ", expected a number");
        }

        /** PEFT's rule: the first pattern p with module ~ (.*\.)?(p)$ wins; otherwise lora_alpha. */
        double alphaFor(String module) {
            for (Map.Entry<String, Double> e : alphaPattern.entrySet()) {
                Pattern p;
                try {
                    p = Pattern.compile("(.*\\.)?(" + e.getKey() + ")$");
                } catch (PatternSyntaxException ex) {
                    throw new CheckpointException("LoRA metadata: alpha_pattern key '" + e.getKey() + "' is not a regular expression dit4j can read: "
                            + ex.getDescription(), ex);
                }
                if (p.matcher(module).lookingAt()) return e.getValue();
            }
            return loraAlpha;
        }
    }
}
