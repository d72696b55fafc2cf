package org.dit4j.models.wan;

import java.net.URISyntaxException;
import java.nio.file.Path;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/** The diffusers reference data under src/test/resources/wan (written by scripts/reference/wan_reference.py). */
final class WanTestData {
    private WanTestData() {}

    static Path resource(String name) {
        try {
            var url = WanTestData.class.getResource("/wan/" + name);
            if (url == null) throw new IllegalStateException("test resource wan/" + name + " is missing");
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Config a of the reference: 2 layers, 2 heads × 16, ffn 64, text dim 32, 16 channels. */
    static WanConfig tinyA() { return new WanConfig(32, 2, 2, 64, 16, 16, 32, 256, new int[] {1, 2, 2}, true); }

    /** Config b of the reference: 2 layers, 2 heads × 32, ffn 96, text dim 24, 4 channels. */
    static WanConfig tinyB() { return new WanConfig(64, 2, 2, 96, 4, 4, 24, 256, new int[] {1, 2, 2}, true); }

    /** Runs the transformer on the reference inputs of {@code io} (an open wan_*_io.safetensors) in {@code dtype}. */
    static Tensor forward(Ops ops, WanTransformer model, WeightSource io, DType dtype) {
        Tensor latent = ops.upload(io.tensor("latent")), context = ops.upload(io.tensor("context"));
        if (dtype != DType.F32) {
            latent = ops.cast(latent, dtype);
            context = ops.cast(context, dtype);
        }
        return model.forward(latent, io.tensor("timesteps"), context);
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
