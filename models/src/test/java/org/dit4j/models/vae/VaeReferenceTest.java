package org.dit4j.models.vae;

import static org.dit4j.models.vae.VaeTestData.relL2;
import static org.dit4j.models.vae.VaeTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * AutoencoderKL on the CPU backend (F32) against diffusers' AutoencoderKL (float32 CPU, torch 2.11) on the same
 * random weights, in both layouts: encoder mean, scaled latent, decode, tiled decode, 8-bit conversion.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class VaeReferenceTest {
    /** Both sides compute in float32 (sums in different orders); observed errors are ≈1e-7. */
    static final double TOLERANCE = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    /** The model of {@code weights}: a diffusers folder reads its config.json; single files get the 4 groups passed. */
    static AutoencoderKL model(String weights) {
        Path p = resource(weights);
        if (p.toFile().isDirectory()) return AutoencoderKL.load(ops, p, DType.F32);
        try (WeightSource w = WeightSource.open(p)) {
            return AutoencoderKL.load(ops, w, VaeConfig.detect(w, 4), DType.F32);
        }
    }

    @ParameterizedTest(name = "{0} ({1})")
    @CsvSource({
        "flux_tiny_diffusers,            diffusers folder + config.json, flux_tiny_io.safetensors, flux",
        "flux_tiny_bfl.safetensors,      BFL,                            flux_tiny_io.safetensors, flux",
        "sd_tiny_diffusers.safetensors,  diffusers file,                 sd_tiny_io.safetensors,   sd",
        "sd_tiny_bfl.safetensors,        BFL first_stage_model. prefix,  sd_tiny_io.safetensors,   sd",
    })
    void matchesDiffusers(String weights, String layout, String ioFile, String which) {
        try (AutoencoderKL vae = model(weights); WeightSource io = WeightSource.open(resource(ioFile));
             Scope scope = Scope.open()) {
            assertEquals(which.equals("flux") ? VaeTestData.fluxTiny() : VaeTestData.sdTiny(), vae.config());

            // 8-bit pixels → [-1, 1] exactly as VaeImageProcessor.preprocess
            Tensor pixels = io.tensor("pixels");                                    // [B, H, W, 3]
            int b = pixels.shape().dimInt(0), h = pixels.shape().dimInt(1), w = pixels.shape().dimInt(2);
            byte[][] rgb = new byte[b][];
            float[] pv = pixels.toFloatArray();
            for (int n = 0; n < b; n++) {
                rgb[n] = new byte[h * w * 3];
                for (int i = 0; i < rgb[n].length; i++) rgb[n][i] = (byte) (int) pv[n * rgb[n].length + i];
            }
            Tensor x = VaeImages.fromRgb8(w, h, rgb);
            assertArrayEquals(io.tensor("x").toFloatArray(), x.toFloatArray(), 0f, "preprocessed image");

            Tensor xd = ops.upload(x);
            double eMean = check(io, "mean", vae.encodeRaw(xd), weights);
            double eLatent = check(io, "latent", vae.encode(xd), weights);
            Tensor z = ops.upload(io.tensor("z"));
            Tensor dec = ops.toHost(vae.decode(z));
            double eDec = check(io, "dec", dec, weights);
            double eTiled = check(io, "dec_tiled", vae.decodeTiled(z, 4, 1), weights);

            // 8-bit output: our rounding of the reference decode is diffusers' exactly; of our decode, at most 1 step
            // off where the two decodes straddle a rounding boundary
            float[] u8 = io.tensor("dec_u8").toFloatArray();
            Tensor refDec = io.tensor("dec");
            int off = 0;
            for (int n = 0; n < b; n++) {
                byte[] fromRef = VaeImages.toRgb8(refDec, n), ours = VaeImages.toRgb8(dec, n);
                for (int i = 0; i < fromRef.length; i++) {
                    int want = (int) u8[n * fromRef.length + i];
                    assertEquals(want, fromRef[i] & 0xFF, "8-bit value " + i + " of image " + n);
                    int d = Math.abs((ours[i] & 0xFF) - want);
                    assertTrue(d <= 1, "8-bit value " + i + " of image " + n + " differs by " + d);
                    off += d;
                }
            }
            assertTrue(off <= u8.length / 200, off + " of " + u8.length + " 8-bit values differ by one step");
            System.out.printf("vae %-30s %-32s rel-L2 mean %.2e latent %.2e decode %.2e tiled %.2e; 8-bit off-by-one %d/%d%n",
                    weights, layout, eMean, eLatent, eDec, eTiled, off, u8.length);
        }
    }

    /**
     * BF16 weights and activations (the GPU's working precision) through the same code: every op rounds its output to
     * bf16 (8 significant bits), so the error against the float32 reference grows with depth; measured 1.5e-2 (mean) and
     * 2e-2 (decode) here; the bound is twice that.
     */
    @Test void bf16ActivationsStayClose() {
        try (WeightSource w = WeightSource.open(resource("flux_tiny_bfl.safetensors"));
             AutoencoderKL vae = AutoencoderKL.load(ops, w, VaeConfig.detect(w, 4), DType.BF16);
             WeightSource io = WeightSource.open(resource("flux_tiny_io.safetensors")); Scope scope = Scope.open()) {
            Tensor x = ops.cast(ops.upload(io.tensor("x")), DType.BF16);
            Tensor z = ops.cast(ops.upload(io.tensor("z")), DType.BF16);
            Tensor mean = vae.encodeRaw(x), dec = vae.decode(z), tiled = vae.decodeTiled(z, 4, 1);
            assertEquals(DType.BF16, dec.dtype());
            double[] err = {
                relL2(ops.toHost(mean).toFloatArray(), io.tensor("mean").toFloatArray()),
                relL2(ops.toHost(dec).toFloatArray(), io.tensor("dec").toFloatArray()),
                relL2(ops.toHost(tiled).toFloatArray(), io.tensor("dec_tiled").toFloatArray())};
            System.out.printf("vae BF16 weights+activations vs diffusers F32: rel-L2 mean %.2e decode %.2e tiled %.2e%n",
                    err[0], err[1], err[2]);
            for (double e : err) assertTrue(e <= 4e-2, "bf16 rel-L2 " + e + " > 4e-2");
        }
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
