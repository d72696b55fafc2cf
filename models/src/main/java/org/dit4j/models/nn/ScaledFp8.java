package org.dit4j.models.nn;

import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * Uploading stored transformer weights, including ComfyUI "scaled fp8" files (models.md §0): an fp8
 * {@code <layer>.weight} with a float {@code <layer>.scale_weight} (older files, marked by a {@code scaled_fp8}
 * tensor) or {@code <layer>.weight_scale} (newer files, with a {@code <layer>.comfy_quant} format tag), a scalar or
 * one value per output row; such weights are dequantized as W = float(w8)·scale. Shared by the transformer loaders
 * (Flux, Wan), which name the model in their messages.
 */
public final class ScaledFp8 {
    private ScaledFp8() {}

    /**
     * Uploads stored tensor {@code source} to {@code ops}' device as {@code dtype}, applying its ComfyUI weight scale
     * when the file has one (an fp8 {@code dtype} is refused for a scaled weight: the scale would be lost).
     *
     * Intermediates (the upload, the F32 dequantization) are registered with the current {@link
     * org.dit4j.core.tensor.Scope}: call it inside a scope and keep the result.
     *
     * @param what the model, for messages ("Flux checkpoint")
     */
    public static Tensor fetch(Ops ops, WeightSource w, String source, DType dtype, String what) {
        TensorInfo info = w.info(source);
        if (info.dtype() == null || !info.dtype().isFloating())
            throw new CheckpointException(what + ": " + where(w, source) + " is stored as " + w.dtypeName(source)
                    + quantFormat(w, source) + ", which dit4j cannot load; use a bf16, fp16, fp32, fp8 or ComfyUI "
                    + "scaled-fp8 checkpoint");
        Tensor scale = scaleOf(w, source, what);
        Tensor x = ops.upload(w.tensor(source));
        if (scale == null) return x.dtype() == dtype ? x : ops.cast(x, dtype);
        if (dtype == DType.F8_E4M3 || dtype == DType.F8_E5M2)
            throw new IllegalArgumentException(what + ": " + where(w, source) + " is scaled fp8 (W = w8·scale); "
                    + "it cannot be kept as " + dtype + " without its scale: load it as BF16, F16 or F32");
        Tensor f = ops.cast(x, DType.F32);
        long rowsOut = info.shape().dim(0);
        Tensor scaled;
        if (scale.numel() == 1) {
            scaled = ops.scale(f, scale.getFloat(0));
        } else if (scale.numel() == rowsOut) {
            long[] dims = new long[info.shape().rank()];
            Arrays.fill(dims, 1);
            dims[0] = rowsOut;
            scaled = ops.mul(f, ops.upload(hostF32(scale)).view(dims));
        } else {
            throw new CheckpointException(what + ": the weight scale of " + where(w, source) + " has shape "
                    + scale.shape() + "; expected a scalar or one value per output row (" + rowsOut + ")");
        }
        return dtype == DType.F32 ? scaled : ops.cast(scaled, dtype);
    }

    /**
     * The ComfyUI scale of a stored {@code <layer>.weight}: {@code <layer>.scale_weight} or
     * {@code <layer>.weight_scale} as a host tensor, or null when the file has none.
     */
    public static Tensor scaleOf(WeightSource w, String source, String what) {
        if (!source.endsWith(".weight")) return null;
        String layer = source.substring(0, source.length() - ".weight".length());
        for (String key : new String[] {layer + ".scale_weight", layer + ".weight_scale"}) {
            if (w.contains(key)) {
                TensorInfo si = w.info(key);
                if (si.dtype() == null || !si.dtype().isFloating())
                    throw new CheckpointException(what + ": " + where(w, key) + " is stored as " + w.dtypeName(key)
                            + quantFormat(w, source) + "; dit4j reads float weight scales of fp8 weights only");
                return w.tensor(key);
            }
        }
        return null;
    }

    /** " (ComfyUI quantization X)" when a {@code <layer>.comfy_quant} tag is readable, else "". */
    public static String quantFormat(WeightSource w, String source) {
        if (!source.endsWith(".weight")) return "";
        String key = source.substring(0, source.length() - ".weight".length()) + ".comfy_quant";
        if (!w.contains(key)) return "";
        try {
            byte[] b = w.tensor(key).segment().toArray(ValueLayout.JAVA_BYTE);
            return " (ComfyUI quantization " + new String(b, StandardCharsets.UTF_8) + ")";
        } catch (RuntimeException e) {
            return " (ComfyUI quantization tag present)";
        }
    }

    /** "checkpoint F" or "tensor 'N' in F", for messages. */
    public static String where(WeightSource w, String name) {
        if (name == null || !w.contains(name)) return "checkpoint " + w.path();
        return "tensor '" + name + "' in " + w.fileOf(name);
    }

    private static Tensor hostF32(Tensor t) {
        float[] v = new float[Math.toIntExact(t.numel())];
        for (int i = 0; i < v.length; i++) v[i] = t.getFloat(i);
        return Tensor.of(v, v.length);
    }
}
