package org.dit4j.models.vae.wan;

import static org.dit4j.models.vae.wan.WanVaeTestData.relL2;
import static org.dit4j.models.vae.wan.WanVaeTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVideoFrames.Rounding;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * WanVae on the CPU backend (F32) against diffusers' AutoencoderKLWan (float32 CPU, torch 2.13) on the same random
 * weights, in both layouts and the stored dtypes BF16, F16, F32: preprocessing, encoder mean (9 frames and 1 frame),
 * normalised latent, decode (unclamped and clamped, 3 latent frames and 1; also against diffusers' float64 run), 8-bit
 * frames (round half to even and truncation).
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanVaeReferenceTest {
    /** Both sides compute in float32 (sums in different orders). */
    static final double TOLERANCE = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    /** The model of {@code weights}: a diffusers folder reads its config.json; b's original file gets its stats passed. */
    static WanVae model(String weights, String which) {
        Path p = resource(weights);
        if (p.toFile().isDirectory() || which.equals("a")) return WanVae.load(ops, p, DType.F32);
        try (WeightSource w = WeightSource.open(p)) {
            return WanVae.load(ops, w, WanVaeConfig.detect(w).withLatentStats(WanVaeTestData.B_MEAN, WanVaeTestData.B_STD),
                    DType.F32);
        }
    }

    @ParameterizedTest(name = "{0} ({1})")
    @CsvSource({
        "a_diffusers,                     diffusers folder BF16,    a",
        "a_original.safetensors,          original BF16,            a",
        "b_diffusers,                     diffusers folder F16,     b",
        "b_original_prefixed.safetensors, original F32 under vae.,  b",
    })
    void matchesDiffusers(String weights, String layout, String which) {
        try (WanVae vae = model(weights, which); WeightSource io = WeightSource.open(resource(which + "_io.safetensors"));
             Scope scope = Scope.open()) {
            assertEquals(which.equals("a") ? WanVaeTestData.a() : WanVaeTestData.b(), vae.config());

            // 8-bit frames → [-1, 1] exactly as VideoProcessor.preprocess_video
            Tensor pixels = io.tensor("pixels");                                    // [T, H, W, 3]
            int t = pixels.shape().dimInt(0), h = pixels.shape().dimInt(1), w = pixels.shape().dimInt(2);
            float[] pv = pixels.toFloatArray();
            List<byte[]> frames = new ArrayList<>();
            for (int f = 0; f < t; f++) {
                byte[] rgb = new byte[h * w * 3];
                for (int i = 0; i < rgb.length; i++) rgb[i] = (byte) (int) pv[f * rgb.length + i];
                frames.add(rgb);
            }
            Tensor x = WanVideoFrames.fromRgb8(w, h, frames);
            assertArrayEquals(io.tensor("x").toFloatArray(), x.toFloatArray(), 0f, "preprocessed video");

            Tensor xd = ops.upload(x);
            double eMean = check(io, "mean", vae.encodeRaw(xd), weights);
            double eLatent = check(io, "latent", vae.encode(xd), weights);
            double eImg = check(io, "mean_img", vae.encodeRaw(ops.slice(xd, 2, 0, 1)), weights);

            Tensor z = ops.upload(io.tensor("z"));
            Tensor dec = ops.toHost(vae.decode(z));
            double eDec = check(io, "dec_raw", dec, weights);
            double eDec64 = check(io, "dec_raw_f64", dec, weights);
            double eClamped = check(io, "dec", clamp(dec), weights);
            double eDecImg = check(io, "dec_img", clamp(vae.decode(ops.slice(z, 2, 0, 1))), weights);

            // 8-bit output: our conversion of the reference decode is diffusers' exactly; of our decode, at most 1 step
            // off where the two decodes straddle a rounding boundary
            Tensor refDec = io.tensor("dec");
            int off = 0, total = 0;
            for (Rounding r : Rounding.values()) {
                float[] u8 = io.tensor(r == Rounding.NEAREST_EVEN ? "dec_u8" : "dec_u8_trunc").toFloatArray();
                int frameBytes = u8.length / (int) refDec.dim(2);
                for (int f = 0; f < refDec.dim(2); f++) {
                    byte[] fromRef = WanVideoFrames.toRgb8(refDec, 0, f, r), ours = WanVideoFrames.toRgb8(dec, 0, f, r);
                    for (int i = 0; i < frameBytes; i++) {
                        int want = (int) u8[f * frameBytes + i];
                        assertEquals(want, fromRef[i] & 0xFF, r + " 8-bit value " + i + " of frame " + f);
                        int d = Math.abs((ours[i] & 0xFF) - want);
                        assertTrue(d <= 1, r + " 8-bit value " + i + " of frame " + f + " differs by " + d);
                        off += d;
                    }
                }
                total += u8.length;
            }
            assertTrue(off <= total / 200, off + " of " + total + " 8-bit values differ by one step");
            System.out.printf("wanvae %-32s %-26s rel-L2 mean %.2e latent %.2e mean(1 frame) %.2e decode %.2e (vs f64 %.2e) "
                    + "clamped %.2e decode(1 frame) %.2e; 8-bit off-by-one %d/%d%n", weights, layout, eMean, eLatent, eImg, eDec, eDec64, eClamped,
                    eDecImg, off, total);
        }
    }

    /** clamp(x, −1, 1) of a host copy, as diffusers' decode ends. */
    static Tensor clamp(Tensor x) {
        float[] v = ops.toHost(x).toFloatArray();
        for (int i = 0; i < v.length; i++) v[i] = Math.max(-1f, Math.min(1f, v[i]));
        return Tensor.of(v, x.shape().dims());
    }

    static double check(WeightSource io, String name, Tensor got, String weights) {
        Tensor ref = io.tensor(name);
        Tensor host = ops.toHost(got);
        assertEquals(ref.shape(), host.shape(), name + " shape");
        double err = relL2(host.toFloatArray(), ref.toFloatArray());
        assertTrue(err <= TOLERANCE, weights + " " + name + ": rel-L2 " + err + " > " + TOLERANCE);
        return err;
    }
}
