package org.dit4j.models.vae.wan;

import java.net.URISyntaxException;
import java.nio.file.Path;

/** The diffusers reference data under src/test/resources/wanvae (written by scripts/reference/wan_vae_reference.py). */
final class WanVaeTestData {
    private WanVaeTestData() {}

    static Path resource(String name) {
        try {
            var url = WanVaeTestData.class.getResource("/wanvae/" + name);
            if (url == null) throw new IllegalStateException("test resource wanvae/" + name + " is missing");
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Config a: Wan2.1's structure at base 2 (channels [2, 4, 8, 8]), 2 blocks, temporal [F, T, T], z 16, Wan2.1 stats. */
    static WanVaeConfig a() {
        return new WanVaeConfig(3, 3, 2, new int[] {2, 4, 8, 8}, 2, new boolean[] {false, true, true}, 16,
                WanVaeConfig.WAN21_LATENTS_MEAN, WanVaeConfig.WAN21_LATENTS_STD, true, true);
    }

    static final float[] B_MEAN = {0.25f, -0.5f, 0.125f, 1.0f}, B_STD = {1.5f, 0.75f, 2.0f, 1.25f};

    /** Config b: base 4, channels [4, 8, 8], 1 block, temporal [T, F], z 4 with made-up stats. */
    static WanVaeConfig b() {
        return new WanVaeConfig(3, 3, 4, new int[] {4, 8, 8}, 1, new boolean[] {true, false}, 4, B_MEAN, B_STD, true, true);
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
