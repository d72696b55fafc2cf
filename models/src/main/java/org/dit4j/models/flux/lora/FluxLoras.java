package org.dit4j.models.flux.lora;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;

/**
 * LoRA files bound to one Flux configuration, merged into the weights while they load
 * ({@link FluxWeights#load(Ops, WeightSource, FluxConfig, DType, FluxWeights.Patch)}):
 * W' = W + Σ strength·scale·B·A over every LoRA and module that targets W, computed in F32 on the backend (a row
 * block of a fused qkv/linear1 weight for a split diffusers module; halves swapped for diffusers' final modulation),
 * then rounded once to the weight dtype — BF16 for fp8 weights (merged values are not fp8 values; such tensors take
 * twice the memory).
 * <p>
 * {@link #open} checks everything it can from the headers before any weight loads: each module's target exists in
 * the configuration and has the shapes of the LoRA's matrices. Keys that do not apply — unknown keys, text-encoder
 * LoRAs (dit4j patches the transformer only; all-zero ones are skipped silently), modules of blocks or embedders the
 * model does not have — are an error unless {@code ignoreUnknown}, in which case {@link #notes} says what was left out.
 * A file with no applicable tensor at all is always an error, naming the model family it looks like.
 * This object keeps the LoRA files mapped until {@link #close}.
 */
public final class FluxLoras implements FluxWeights.Patch, AutoCloseable {

    private static final int LIST = 5;

    /** One contribution, resolved to rows of its target. */
    private record Contribution(WeightSource w, LoraFile.Entry e, long rowStart, long rows, double factor) {}

    private final List<WeightSource> sources;
    private final List<LoraFile> files;
    private final List<LoraSpec> specs;
    private final Map<String, List<Contribution>> byTarget;
    private final List<String> notes;

    private FluxLoras(List<WeightSource> sources, List<LoraFile> files, List<LoraSpec> specs, Map<String, List<Contribution>> byTarget,
                      List<String> notes) {
        this.sources = sources;
        this.files = files;
        this.specs = specs;
        this.byTarget = byTarget;
        this.notes = notes;
    }

    /** Opens and checks {@code specs} for a model of configuration {@code cfg} (see the class comment). */
    public static FluxLoras open(List<LoraSpec> specs, FluxConfig cfg, boolean ignoreUnknown) {
        List<WeightSource> sources = new ArrayList<>();
        try {
            List<LoraFile> files = new ArrayList<>();
            Map<String, List<Contribution>> byTarget = new LinkedHashMap<>();
            List<String> notes = new ArrayList<>();
            Map<String, Shape> shapes = FluxWeights.expectedShapes(cfg);
            for (LoraSpec spec : specs) {
                WeightSource w = WeightSource.open(spec.file());
                sources.add(w);
                LoraFile f = LoraFile.read(w);
                files.add(f);
                bind(spec, w, f, cfg, shapes, ignoreUnknown, byTarget, notes);
            }
            return new FluxLoras(List.copyOf(sources), List.copyOf(files), List.copyOf(specs), byTarget, List.copyOf(notes));
        } catch (RuntimeException e) {
            for (WeightSource w : sources) w.close();
            throw e;
        }
    }

    private static void bind(LoraSpec spec, WeightSource w, LoraFile f, FluxConfig cfg, Map<String, Shape> shapes, boolean ignoreUnknown,
                             Map<String, List<Contribution>> byTarget, List<String> notes) {
        List<String> unmatched = new ArrayList<>();      // "key (why)"
        List<Contribution> found = new ArrayList<>();
        for (LoraFile.Entry e : f.entries()) {
            Shape target = shapes.get(e.target());
            if (target == null) {
                unmatched.add((e.kind() == LoraFile.Kind.LOW_RANK ? e.down() : e.up()) + " (" + absent(e.target(), cfg) + ")");
                continue;
            }
            long[] partRows = FluxWeights.diffusersPartRows(cfg, e.target().endsWith(".bias") ? weightOf(e.target()) : e.target());
            long start = 0, rows = 0;
            for (int k = 0; k < e.firstPart(); k++) start += partRows[k];
            for (int k = e.firstPart(); k < e.firstPart() + e.partCount(); k++) rows += partRows[k];
            checkShapes(w, e, target, rows, cfg);
            found.add(new Contribution(w, e, start, rows, spec.strength() * e.scale()));
        }
        if (found.isEmpty()) {
            List<String> all = new ArrayList<>(w.names());
            String family = LoraFile.guessFamily(all);
            throw new CheckpointException("LoRA file " + w.path() + " has no tensor for a Flux.1 transformer"
                    + (family != null ? "; it looks like a LoRA for " + family : "")
                    + (unmatched.isEmpty() ? "" : "; its Flux modules do not exist in this model: " + list(unmatched))
                    + (all.isEmpty() ? " (it holds no tensors)" : " (keys such as " + list(all) + ")"));
        }
        if (f.textEncoderEffective())
            unmatched.add(f.textEncoderKeys().size() + " text-encoder tensors such as " + f.textEncoderKeys().get(0)
                    + " (dit4j applies LoRAs to the Flux transformer only)");
        for (String k : f.unknownKeys()) unmatched.add(k + " (unknown)");
        if (!unmatched.isEmpty()) {
            String what = "LoRA file " + w.path() + ": " + unmatched.size() + " tensor group" + (unmatched.size() == 1 ? "" : "s")
                    + " not applied: " + list(unmatched);
            if (!ignoreUnknown)
                throw new CheckpointException(what + ". The file may be for another model or use a naming dit4j does not know; "
                        + "apply the rest anyway with --lora-ignore-unknown (FluxLoras.open(…, ignoreUnknown = true))");
            notes.add(what);
        }
        if (spec.strength() == 0f) return;     // checked, but changes nothing
        for (Contribution c : found) byTarget.computeIfAbsent(c.e().target(), k -> new ArrayList<>()).add(c);
    }

    private static String weightOf(String bias) { return bias.substring(0, bias.length() - ".bias".length()) + ".weight"; }

    /** Why a canonical name is not in the model. */
    private static String absent(String canonical, FluxConfig cfg) {
        String[] p = canonical.split("\\.");
        if (p[0].equals("double_blocks")) return "targets double block " + p[1] + ", the model has " + cfg.depth();
        if (p[0].equals("single_blocks")) return "targets single block " + p[1] + ", the model has " + cfg.depthSingle();
        if (p[0].equals("guidance_in")) return "targets the guidance embedder, which this model (schnell-like) does not have";
        return "targets " + canonical + ", which this model does not have";
    }

    private static void checkShapes(WeightSource w, LoraFile.Entry e, Shape target, long rows, FluxConfig cfg) {
        long cols = target.rank() == 2 ? target.dim(1) : -1;
        String where = "LoRA file " + w.path() + ": module '" + e.module() + "' (→ " + e.target()
                + (rows == target.dim(0) ? "" : ", " + rows + " of its " + target.dim(0) + " rows") + ")";
        switch (e.kind()) {
            case LOW_RANK -> {
                Shape a = w.info(e.down()).shape(), b = w.info(e.up()).shape();
                if (a.dim(1) != cols || b.dim(0) != rows)
                    throw new CheckpointException(where + " has down " + a + " and up " + b + ", but the weight takes " + cols
                            + " inputs and " + rows + " outputs: the LoRA was trained for another model (this one is " + cfg + ")");
            }
            case DIFF -> {
                Shape d = LoraFile.floating(w, e.up()).shape();
                if (!d.equals(Shape.of(rows, cols)))
                    throw new CheckpointException(where + " has a diff of shape " + d + ", expected " + Shape.of(rows, cols));
            }
            case BIAS -> {
                Shape d = LoraFile.floating(w, e.up()).shape();
                if (!d.equals(Shape.of(rows)))
                    throw new CheckpointException(where + " has a bias difference of shape " + d + ", expected " + Shape.of(rows));
            }
        }
        if (e.swapHalves() && rows != target.dim(0))
            throw new IllegalStateException("swapped halves need the whole tensor: " + e);
    }

    private static String list(List<String> items) {
        List<String> head = items.subList(0, Math.min(LIST, items.size()));
        return String.join(", ", head) + (items.size() > LIST ? " … (" + items.size() + " in all)" : "");
    }

    // ------------------------------------------------------------------------------------------------ what was bound

    /** The files, in order. */
    public List<LoraFile> files() { return files; }

    /** One line per file: "name ×0.8: kohya, 494 low-rank pairs (rank 16, alpha 16); changes 494 weight tensors". */
    public List<String> describe() {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < files.size(); i++) {
            LoraFile f = files.get(i);
            WeightSource w = sources.get(i);
            long targets = byTarget.values().stream().filter(l -> l.stream().anyMatch(c -> c.w() == w)).count();
            out.add(String.format(Locale.ROOT, "%s ×%s: %s; changes %d weight tensors", f.path().getFileName(), fmt(specs.get(i).strength()), f.summary(), targets));
        }
        return out;
    }

    /** What was left out (with {@code ignoreUnknown}); empty when everything applied. */
    public List<String> notes() { return notes; }

    private static String fmt(float f) { return f == Math.rint(f) ? Integer.toString((int) f) : Float.toString(f); }

    // ------------------------------------------------------------------------------------------------ merging

    @Override public Set<String> names() { return Collections.unmodifiableSet(new LinkedHashSet<>(byTarget.keySet())); }

    @Override public Tensor apply(Ops ops, String name, Tensor base) {
        List<Contribution> cs = byTarget.get(name);
        if (cs == null) return base;
        long total = base.dim(0);
        Tensor acc = base;
        for (Contribution c : cs) {
            Tensor d = delta(ops, c);
            if (c.rows() != total) {
                long after = total - c.rowStart() - c.rows();
                long[] pads = d.rank() == 2 ? new long[] {0, 0, c.rowStart(), after} : new long[] {c.rowStart(), after};
                d = ops.pad(d, pads, 0f);
            }
            acc = ops.add(acc, d);
        }
        return acc;
    }

    /** strength·scale·B·A (or the scaled diff), F32, in canonical row order. */
    private static Tensor delta(Ops ops, Contribution c) {
        LoraFile.Entry e = c.e();
        Tensor d = switch (e.kind()) {
            case LOW_RANK -> ops.matmul(f32(ops, c.w(), e.up()), f32(ops, c.w(), e.down()));
            case DIFF, BIAS -> f32(ops, c.w(), e.up());
        };
        d = ops.scale(d, (float) c.factor());
        if (e.swapHalves()) {
            long half = d.dim(0) / 2;
            d = ops.concat(0, ops.slice(d, 0, half, 2 * half), ops.slice(d, 0, 0, half));
        }
        return d;
    }

    private static Tensor f32(Ops ops, WeightSource w, String key) {
        TensorInfo info = LoraFile.floating(w, key);
        Tensor x = ops.upload(w.tensor(key));
        return info.dtype() == DType.F32 ? x : ops.cast(x, DType.F32);
    }

    @Override public void close() {
        for (WeightSource w : sources) w.close();
    }
}
