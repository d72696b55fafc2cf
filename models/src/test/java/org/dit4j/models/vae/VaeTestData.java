package org.dit4j.models.vae;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.BiFunction;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.Tensor;

/** The diffusers reference data under src/test/resources/vae (written by scripts/reference/vae_reference.py). */
final class VaeTestData {
    private VaeTestData() {}

    static Path resource(String name) {
        try {
            var url = VaeTestData.class.getResource("/vae/" + name);
            if (url == null) throw new IllegalStateException("test resource vae/" + name + " is missing");
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The flux_tiny reference config: levels [8,16,16], 2 layers, 16 latents, 4 groups, Flux scaling, mid attention. */
    static VaeConfig fluxTiny() {
        return new VaeConfig(3, 3, new int[] {8, 16, 16}, 2, 16, 4, VaeConfig.FLUX_SCALING, VaeConfig.FLUX_SHIFT, false,
                false, true, true, true);
    }

    /** The sd_tiny reference config: levels [8,16], 1 layer, 4 latents, 4 groups, quant convs, no mid attention. */
    static VaeConfig sdTiny() {
        return new VaeConfig(3, 3, new int[] {8, 16}, 1, 4, 4, VaeConfig.SD_SCALING, 0f, true, true, false, true, true);
    }

    /** ‖a − b‖₂ / ‖b‖₂ in double. */
    static double relL2(float[] a, float[] b) {
        if (a.length != b.length) throw new AssertionError("length " + a.length + " vs " + b.length);
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    /**
     * Writes a copy of {@code src} to {@code out}: each tensor passed through {@code edit(name, tensor)}, which returns
     * the tensor to write (null drops it); names are prefixed with {@code prefix}; {@code extra} is added at the end.
     */
    static Path rewrite(WeightSource src, Path out, String prefix, BiFunction<String, Tensor, Tensor> edit,
                        Map<String, Tensor> extra) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        for (String n : src.names()) {
            Tensor t = edit.apply(n, src.tensor(n));
            if (t != null) m.put(prefix + n, t);
        }
        if (extra != null) m.putAll(extra);
        SafeTensorsWriter.write(out, m, Map.of());
        return out;
    }

    /** A host copy of {@code t} as {@code dtype} (round to nearest even). */
    static Tensor castHost(Tensor t, org.dit4j.core.tensor.DType dtype) {
        return Tensor.of(dtype, t.toFloatArray(), t.shape().dims());
    }
}
