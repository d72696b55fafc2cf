package org.dit4j.models.text;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Function;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/** The transformers reference data under src/test/resources/text (scripts/reference/text_encoders_reference.py). */
final class TextTestData {
    private TextTestData() {}

    static Path resource(String name) {
        try {
            var url = TextTestData.class.getResource("/text/" + name);
            if (url == null) throw new IllegalStateException("test resource text/" + name + " is missing");
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The tiny T5 config of the reference: d_model 32, d_kv 8, 4 heads, d_ff 48, 2 layers, vocab 100. */
    static T5Config tinyT5(boolean umt5) {
        return new T5Config(100, 32, 8, 4, 48, 2, 32, 128, umt5, 1e-6f);
    }

    /** The tiny CLIP config of the reference: width 32, 4 heads, MLP 37, 2 layers, vocab 120, 16 positions, EOS 119. */
    static ClipTextConfig tinyClip() {
        return new ClipTextConfig(120, 32, 4, 37, 2, 16, 1e-5f, ClipTextConfig.Activation.QUICK_GELU, 119);
    }

    /** An integer tensor [B, L] of the io file as rows of ints. */
    static int[][] ints(WeightSource io, String name) {
        Tensor t = io.tensor(name);
        int b = t.shape().dimInt(0), l = t.shape().dimInt(1);
        int[][] out = new int[b][l];
        for (int i = 0; i < b; i++) for (int j = 0; j < l; j++) out[i][j] = (int) t.getFloat((long) i * l + j);
        return out;
    }

    /** The values of a device tensor, copied to the host. */
    static float[] floats(Ops ops, Tensor t) {
        Tensor h = t.device().isCpu() ? t : ops.toHost(t);
        float[] v = h.toFloatArray();
        if (h != t) h.close();
        return v;
    }

    /** ‖a − b‖₂ / ‖b‖₂ in double. */
    static double relL2(float[] a, float[] b) {
        assertEquals(b.length, a.length, "element count");
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            double d = (double) a[i] - b[i];
            num += d * d;
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    /** Asserts shape and rel-L2 ≤ tol of {@code actual} against the io file's {@code expected}; returns the rel-L2. */
    static double assertMatches(String what, Ops ops, Tensor actual, WeightSource io, String expected, double tol) {
        Tensor ref = io.tensor(expected);
        assertEquals(ref.shape(), actual.shape(), what + ": shape");
        float[] a = floats(ops, actual);
        for (float v : a) assertTrue(Float.isFinite(v), what + ": non-finite output " + v);
        double e = relL2(a, ref.toFloatArray());
        assertTrue(e <= tol, what + ": rel-L2 " + e + " vs transformers' " + expected + " exceeds " + tol);
        System.out.printf("%s: rel-L2 %.3g vs %s (tolerance %.0e)%n", what, e, expected, tol);
        return e;
    }

    /**
     * Writes the tensors of {@code src} to {@code file}, renamed by {@code rename} (null drops the tensor) and
     * converted by {@code convert} (name, tensor) → host tensor.
     */
    static Path rewrite(WeightSource src, Path file, Function<String, String> rename,
                        java.util.function.BiFunction<String, Tensor, Tensor> convert) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : src.names()) {
            String m = rename.apply(n);
            if (m != null) out.put(m, convert.apply(n, src.tensor(n)));
        }
        SafeTensorsWriter.write(file, out, Map.of());
        return file;
    }

    /** A host copy of {@code t} with every value rounded through {@code dtype} and stored as {@code storeAs}. */
    static Tensor roundTrip(Tensor t, org.dit4j.core.tensor.DType dtype, org.dit4j.core.tensor.DType storeAs) {
        float[] v = t.toFloatArray();
        Tensor narrow = Tensor.of(dtype, v, t.shape().dims());
        Tensor out = Tensor.of(storeAs, narrow.toFloatArray(), t.shape().dims());
        narrow.close();
        return out;
    }

    /** Asserts that two reference outputs differ by more than {@code min} (so a test comparing to one of them can fail). */
    static void assertDistinct(WeightSource io, String a, String b, double min) {
        double e = relL2(io.tensor(a).toFloatArray(), io.tensor(b).toFloatArray());
        assertTrue(e > min, a + " and " + b + " differ by rel-L2 " + e + " only; the case would not test anything");
    }

    static String shape(Tensor t) { return Arrays.toString(t.shape().dims()); }

    static Shape shapeOf(long... d) { return Shape.of(d); }
}
