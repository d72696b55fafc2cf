package org.dit4j.models.text;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * Reads the tensors of one text encoder from a checkpoint: names under a prefix, shapes checked against the
 * configuration, any floating storage dtype (F32, BF16, F16, F8_E4M3, F8_E5M2) and ComfyUI "scaled fp8", where an
 * fp8 {@code <layer>.weight} comes with a float {@code <layer>.scale_weight} (older files, marked by a
 * {@code scaled_fp8} tensor) or {@code <layer>.weight_scale} (newer files, tagged by {@code <layer>.comfy_quant}),
 * a scalar or one value per output row, and W = float(w8)·scale.
 *
 * <p>Everything loaded is recorded; {@link #release} frees it (the model calls it from its {@code close()}).
 */
final class TextWeights {
    private final Ops ops;
    private final WeightSource src;
    private final String prefix;
    private final String model;
    private final DType weightDtype;
    private final List<Tensor> owned = new ArrayList<>();

    /**
     * @param model       what is loaded, for messages ("T5 encoder")
     * @param weightDtype dtype of 2-D linear weights on the device, or null to keep the stored dtype (fp8 weights then
     *                    stay fp8 and their scale is applied to the linear's output)
     */
    TextWeights(Ops ops, WeightSource src, String prefix, String model, DType weightDtype) {
        if (weightDtype != null && !weightDtype.isFloating())
            throw new IllegalArgumentException(model + ": weights must load as a floating dtype, got " + weightDtype);
        this.ops = ops;
        this.src = src;
        this.prefix = prefix;
        this.model = model;
        this.weightDtype = weightDtype;
    }

    /** Tensors loaded so far, for the model to free. */
    List<Tensor> owned() { return owned; }

    static void release(List<Tensor> tensors) {
        for (Tensor t : tensors) t.close();
        tensors.clear();
    }

    boolean has(String name) { return src.contains(prefix + name); }

    /** A 1-D tensor (norm weight, bias) as F32 on the device. */
    Tensor vector(String name, long size) {
        String full = check(name, Shape.of(size));
        try (Scope s = Scope.open()) {
            Tensor t = uploaded(full);
            if (t.dtype() != DType.F32) t = ops.cast(t, DType.F32);
            return own(s.keep(t));
        }
    }

    /** {@code module}.weight [out, in] (with its ComfyUI scale, if any) and, when {@code bias}, {@code module}.bias [out]. */
    TextLinear linear(String module, long out, long in, boolean bias) {
        String wName = check(module + ".weight", Shape.of(out, in));
        Tensor b = bias ? vector(module + ".bias", out) : null;
        float[] scale = scaleOf(wName, out);
        try (Scope s = Scope.open()) {
            Tensor w = uploaded(wName);
            boolean fp8 = w.dtype() == DType.F8_E4M3 || w.dtype() == DType.F8_E5M2;
            if (scale == null) {
                if (weightDtype != null && w.dtype() != weightDtype) w = ops.cast(w, weightDtype);
                return new TextLinear(own(s.keep(w)), b);
            }
            if (!fp8)
                throw new CheckpointException(model + ": " + where(wName) + " has a ComfyUI weight scale but is stored as "
                        + w.dtype() + "; scales belong to fp8 weights. The file is not a ComfyUI scaled-fp8 checkpoint "
                        + "dit4j understands");
            if (weightDtype == null || weightDtype == w.dtype()) {
                Tensor row = scale.length == 1 ? null : own(s.keep(toDevice(Tensor.of(scale, out))));
                return new TextLinear(own(s.keep(w)), b, scale.length == 1 ? scale[0] : 1f, row);
            }
            if (weightDtype == DType.F8_E4M3 || weightDtype == DType.F8_E5M2)
                throw new IllegalArgumentException(model + ": " + where(wName) + " is scaled " + w.dtype() + " (W = w8·scale); "
                        + "it cannot be re-stored as " + weightDtype + " without its scale: load it as stored (weight dtype "
                        + "null), BF16, F16 or F32");
            Tensor f = ops.cast(w, DType.F32);
            Tensor deq = scale.length == 1 ? ops.scale(f, scale[0]) : ops.mul(f, toDevice(Tensor.of(scale, out, 1)));
            return new TextLinear(own(s.keep(weightDtype == DType.F32 ? deq : ops.cast(deq, weightDtype))), b);
        }
    }

    /** An embedding table [rows, cols] kept on the host (rows are gathered there), with its ComfyUI scale if any. */
    EmbeddingTable embedding(String name, long rows, long cols) {
        String full = check(name, Shape.of(rows, cols));
        Tensor stored = src.tensor(full);
        try (Scope s = Scope.open()) {
            Tensor copy = Tensor.zeros(stored.dtype(), stored.shape());
            MemorySegment.copy(stored.segment(), 0, copy.segment(), 0, stored.byteSize());
            float[] scale = scaleOf(full, rows);
            float[] perRow = null;
            if (scale != null) {
                perRow = new float[Math.toIntExact(rows)];
                for (int i = 0; i < perRow.length; i++) perRow[i] = scale[scale.length == 1 ? 0 : i];
            }
            return new EmbeddingTable(model + " " + where(full), own(s.keep(copy)), perRow);
        }
    }

    /** A small tensor's values on the host (decoded from its stored dtype), e.g. a relative-position bias table. */
    float[] hostFloats(String name, Shape shape) {
        String full = check(name, shape);
        return src.tensor(full).toFloatArray();
    }

    /** The name with prefix, after checking that it exists with {@code expected} shape and a floating dtype. */
    String check(String name, Shape expected) {
        String full = prefix + name;
        if (!src.contains(full))
            throw new CheckpointException(model + ": checkpoint " + src.path() + " lacks tensor '" + full + "' (expected shape "
                    + expected + "). The file is incomplete or holds another model" + nearby(name));
        TensorInfo info = src.info(full);
        if (!info.shape().equals(expected))
            throw new CheckpointException(model + ": " + where(full) + " has shape " + info.shape() + ", expected " + expected
                    + ". The checkpoint does not match the configuration; let the configuration be detected from the file");
        if (info.dtype() == null || !info.dtype().isFloating())
            throw new CheckpointException(model + ": " + where(full) + " is stored as " + src.dtypeName(full) + quantFormat(full)
                    + ", which dit4j cannot load; use a bf16, fp16, fp32, fp8 or ComfyUI scaled-fp8 file");
        return full;
    }

    String where(String fullName) { return "tensor '" + fullName + "' in " + src.fileOf(fullName); }

    // ------------------------------------------------------------------------------------------------ helpers

    private Tensor own(Tensor t) {
        owned.add(t);
        return t;
    }

    /** The stored tensor on the device (a host copy on the CPU backend, so that the file may be closed). */
    private Tensor uploaded(String full) { return ops.upload(src.tensor(full)); }

    private Tensor toDevice(Tensor host) { return TextModels.toDevice(ops, host); }

    /**
     * The ComfyUI scale of {@code <layer>.weight}: one value, or one per output row; null when the file has none.
     * A scalar scale of 1 is still returned (the weight is then plain fp8).
     */
    private float[] scaleOf(String weightName, long rows) {
        if (!weightName.endsWith(".weight")) return null;
        String layer = weightName.substring(0, weightName.length() - ".weight".length());
        for (String key : new String[] {layer + ".scale_weight", layer + ".weight_scale"}) {
            if (!src.contains(key)) continue;
            TensorInfo si = src.info(key);
            if (si.dtype() == null || !si.dtype().isFloating())
                throw new CheckpointException(model + ": " + where(key) + " is stored as " + src.dtypeName(key) + quantFormat(weightName)
                        + "; dit4j reads float weight scales of fp8 weights only");
            long n = si.shape().numel();
            if (n != 1 && n != rows)
                throw new CheckpointException(model + ": the weight scale " + where(key) + " has shape " + si.shape()
                        + "; expected a scalar or one value per output row (" + rows + ")");
            return src.tensor(key).toFloatArray();
        }
        return null;
    }

    /** " (ComfyUI quantization {json})" when a {@code <layer>.comfy_quant} tag is readable, else "". */
    private String quantFormat(String weightName) {
        if (!weightName.endsWith(".weight")) return "";
        String key = weightName.substring(0, weightName.length() - ".weight".length()) + ".comfy_quant";
        if (!src.contains(key)) return "";
        try {
            byte[] b = src.tensor(key).segment().toArray(ValueLayout.JAVA_BYTE);
            return " (ComfyUI quantization " + new String(b, StandardCharsets.UTF_8) + ")";
        } catch (RuntimeException e) {
            return " (ComfyUI quantization tag present)";
        }
    }

    /** " (names that end alike: …)" listing up to three stored names ending in {@code name}'s last two parts. */
    private String nearby(String name) {
        int cut = name.lastIndexOf('.', name.lastIndexOf('.') - 1);
        String tail = cut < 0 ? name : name.substring(cut);
        List<String> hits = new ArrayList<>();
        for (String n : src.names()) {
            if (n.endsWith(tail)) hits.add(n);
            if (hits.size() == 3) break;
        }
        return hits.isEmpty() ? "" : " (names that end alike: " + hits + "; is the prefix '" + prefix + "' right?)";
    }

    // ------------------------------------------------------------------------------------------------ prefixes

    /**
     * The prefix under which a model's tensors are stored: the part before {@code probe} in the one stored name that
     * ends with it ("" or ending in '.'). Fails naming the candidates when there is none or more than one.
     *
     * @param probe a name every checkpoint of the model has, e.g. "encoder.block.0.layer.0.SelfAttention.q.weight"
     */
    static String findPrefix(WeightSource src, String probe, String model, String example) {
        TreeSet<String> found = new TreeSet<>();
        for (String n : src.names()) {
            if (!n.endsWith(probe)) continue;
            String p = n.substring(0, n.length() - probe.length());
            if (p.isEmpty() || p.endsWith(".")) found.add(p);
        }
        if (found.size() == 1) return found.first();
        if (found.isEmpty())
            throw new CheckpointException("not a " + model + ": checkpoint " + src.path() + " has no tensor named '" + probe
                    + "', with or without a prefix such as '" + example + "'");
        throw new CheckpointException("checkpoint " + src.path() + " holds several " + model + "s, under the prefixes "
                + found + "; pass the prefix of the one to load");
    }

    /** Number of consecutive indices 0, 1, … for which {@code template} (with "{i}") names a stored tensor. */
    int count(String template) {
        int n = 0;
        while (src.contains(prefix + template.replace("{i}", Integer.toString(n)))) n++;
        return n;
    }
}
