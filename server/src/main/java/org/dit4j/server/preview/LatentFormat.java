package org.dit4j.server.preview;

/**
 * ComfyUI's latent formats as far as the server needs them ({@code comfy/latent_formats.py}): how a VAE latent maps into the
 * model's space and back, and the linear latent → RGB projection of its latent2rgb previews.
 */
public enum LatentFormat {

    /** Flux.1: (x − 0.1159)·0.3611 in, x/0.3611 + 0.1159 out. */
    FLUX(new float[][] {
            {-0.0346f, 0.0244f, 0.0681f}, {0.0034f, 0.0210f, 0.0687f}, {0.0275f, -0.0668f, -0.0433f}, {-0.0174f, 0.0160f, 0.0617f},
            {0.0859f, 0.0721f, 0.0329f}, {0.0004f, 0.0383f, 0.0115f}, {0.0405f, 0.0861f, 0.0915f}, {-0.0236f, -0.0185f, -0.0259f},
            {-0.0245f, 0.0250f, 0.1180f}, {0.1008f, 0.0755f, -0.0421f}, {-0.0515f, 0.0201f, 0.0011f}, {0.0428f, -0.0012f, -0.0036f},
            {0.0817f, 0.0765f, 0.0749f}, {-0.1264f, -0.0522f, -0.1103f}, {-0.0280f, -0.0881f, -0.0499f}, {-0.1262f, -0.0982f, -0.0778f}},
            new float[] {-0.0329f, -0.0718f, -0.0851f}),

    /** Wan2.1: per-channel (x − mean)/std in, x·std + mean out (scale factor 1). */
    WAN21(new float[][] {
            {-0.1299f, -0.1692f, 0.2932f}, {0.0671f, 0.0406f, 0.0442f}, {0.3568f, 0.2548f, 0.1747f}, {0.0372f, 0.2344f, 0.1420f},
            {0.0313f, 0.0189f, -0.0328f}, {0.0296f, -0.0956f, -0.0665f}, {-0.3477f, -0.4059f, -0.2925f}, {0.0166f, 0.1902f, 0.1975f},
            {-0.0412f, 0.0267f, -0.1364f}, {-0.1293f, 0.0740f, 0.1636f}, {0.0680f, 0.3019f, 0.1128f}, {0.0032f, 0.0581f, 0.0639f},
            {-0.1251f, 0.0927f, 0.1699f}, {0.0060f, -0.0633f, 0.0005f}, {0.3477f, 0.2275f, 0.2950f}, {0.1984f, 0.0913f, 0.1861f}},
            new float[] {-0.1835f, -0.0868f, -0.3360f});

    private final float[][] rgbFactors;
    private final float[] rgbBias;

    LatentFormat(float[][] rgbFactors, float[] rgbBias) {
        this.rgbFactors = rgbFactors;
        this.rgbBias = rgbBias;
    }

    /** Latent channels the projection reads. */
    public int channels() { return rgbFactors.length; }

    /** latent_rgb_factors[c][k]: weight of latent channel c in colour k (R, G, B). */
    public float factor(int channel, int colour) { return rgbFactors[channel][colour]; }

    /** latent_rgb_factors_bias[k]. */
    public float bias(int colour) { return rgbBias[colour]; }
}
