package org.dit4j.models.flux;

import java.net.URISyntaxException;
import java.nio.file.Path;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;

/** The diffusers reference data under src/test/resources/flux (written by scripts/reference/flux_reference.py). */
final class FluxTestData {
    private FluxTestData() {}

    static Path resource(String name) {
        try {
            var url = FluxTestData.class.getResource("/flux/" + name);
            if (url == null) throw new IllegalStateException("test resource flux/" + name + " is missing");
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The tiny dev config of the reference (2 double + 2 single blocks, 2 heads × 16, guidance). */
    static FluxConfig tinyDev() {
        return new FluxConfig(32, 2, 2, 2, 64, 64, 32, 24, 128, new int[] {4, 6, 6}, 10000, true);
    }

    /** The tiny schnell config of the reference (1 double + 2 single blocks, 16 channels, no guidance). */
    static FluxConfig tinySchnell() {
        return new FluxConfig(32, 2, 1, 2, 16, 16, 32, 24, 128, new int[] {4, 6, 6}, 10000, false);
    }

    /** Runs the transformer on the reference inputs of {@code io} (an open *_io.safetensors). */
    static Tensor forward(Ops ops, FluxTransformer model, WeightSource io) {
        Tensor g = io.contains("guidance") ? ops.upload(io.tensor("guidance")) : null;
        return model.forward(ops.upload(io.tensor("img")), ops.upload(io.tensor("txt")), ops.upload(io.tensor("y")),
                ops.upload(io.tensor("timesteps")), g, io.tensor("img_ids"), io.tensor("txt_ids"));
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
}
