package org.dit4j.models.flux;

import static org.dit4j.models.flux.FluxTestData.relL2;
import static org.dit4j.models.flux.FluxTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

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

/** The Flux transformer on the CPU backend against diffusers' FluxTransformer2DModel (float32 reference). */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxTransformerTest {
    /** Both sides compute in float32; the reference's own f32-vs-f64 error is ≈3e-7. */
    static final double TOLERANCE = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @ParameterizedTest(name = "{0} ({1})")
    @CsvSource({
        "flux_dev_diffusers/diffusion_pytorch_model.safetensors.index.json, diffusers sharded F32, flux_dev_io.safetensors",
        "flux_dev_diffusers,                                                 diffusers folder,     flux_dev_io.safetensors",
        "flux_dev_bfl.safetensors,                                           BFL BF16,             flux_dev_io.safetensors",
        "flux_schnell_diffusers.safetensors,                                 diffusers BF16,       flux_schnell_io.safetensors",
        "flux_schnell_bfl_prefixed.safetensors,                              BFL prefixed F32,     flux_schnell_io.safetensors",
    })
    void matchesDiffusers(String weights, String layout, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             Scope scope = Scope.open()) {
            FluxConfig cfg = FluxConfig.detect(w);
            try (FluxWeights fw = FluxWeights.load(ops, w, cfg, DType.F32)) {
                FluxTransformer model = new FluxTransformer(ops, fw);
                Tensor out = ops.toHost(FluxTestData.forward(ops, model, io));
                Tensor ref = io.tensor("out");
                assertEquals(ref.shape(), out.shape());
                double err = relL2(out.toFloatArray(), ref.toFloatArray());
                System.out.printf("flux %-50s %-22s rel-L2 %.3e%n", weights, layout, err);
                assertTrue(err <= TOLERANCE, weights + ": rel-L2 " + err + " > " + TOLERANCE);
            }
        }
    }

    /**
     * BF16 weights and activations (the GPU's working precision): the error against the float32 reference may be at
     * most twice what diffusers' own bf16 run of the same model gets ("out_bf16", on the GPU).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"flux_dev_bfl.safetensors, flux_dev_io.safetensors", "flux_schnell_diffusers.safetensors, flux_schnell_io.safetensors"})
    void bf16ForwardIsAsCloseAsDiffusersBf16(String weights, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             FluxWeights fw = FluxWeights.load(ops, w, FluxConfig.detect(w), DType.BF16);
             Scope scope = Scope.open()) {
            FluxTransformer model = new FluxTransformer(ops, fw);
            Tensor g = io.contains("guidance") ? io.tensor("guidance") : null;
            Tensor out = model.forward(ops.cast(ops.upload(io.tensor("img")), DType.BF16),
                    ops.cast(ops.upload(io.tensor("txt")), DType.BF16), ops.cast(ops.upload(io.tensor("y")), DType.BF16),
                    io.tensor("timesteps"), g, io.tensor("img_ids"), io.tensor("txt_ids"));
            assertEquals(DType.BF16, out.dtype());
            float[] ref = io.tensor("out").toFloatArray();
            double err = relL2(ops.toHost(out).toFloatArray(), ref);
            double diffusersErr = relL2(io.tensor("out_bf16").toFloatArray(), ref);
            System.out.printf("flux %-38s BF16 weights+activations rel-L2 %.3e (diffusers bf16: %.3e)%n", weights, err, diffusersErr);
            assertTrue(err <= 2 * diffusersErr, "bf16 rel-L2 " + err + " > 2 × diffusers' bf16 rel-L2 " + diffusersErr);
        }
    }

    @Test void forwardKeepsOnlyItsOutput() {
        try (WeightSource w = WeightSource.open(resource("flux_dev_bfl.safetensors"));
             WeightSource io = WeightSource.open(resource("flux_dev_io.safetensors"));
             FluxWeights fw = FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F32);
             Scope scope = Scope.open()) {
            Tensor img = ops.upload(io.tensor("img")), txt = ops.upload(io.tensor("txt")), y = ops.upload(io.tensor("y"));
            Tensor t = ops.upload(io.tensor("timesteps")), g = ops.upload(io.tensor("guidance"));
            int before = scope.size();
            Tensor out = new FluxTransformer(ops, fw).forward(img, txt, y, t, g, io.tensor("img_ids"), io.tensor("txt_ids"));
            assertEquals(before + 1, scope.size(), "a forward must leave exactly its output in the caller's scope");
            assertTrue(!out.isReleased() && !img.isReleased() && !txt.isReleased(), "output and inputs stay alive");
        }
    }

    @Test void guidanceIsRequiredForDev() {
        try (WeightSource w = WeightSource.open(resource("flux_dev_bfl.safetensors"));
             WeightSource io = WeightSource.open(resource("flux_dev_io.safetensors"));
             FluxWeights fw = FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F32);
             Scope scope = Scope.open()) {
            FluxTransformer model = new FluxTransformer(ops, fw);
            var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> model.forward(
                    io.tensor("img"), io.tensor("txt"), io.tensor("y"), io.tensor("timesteps"), null,
                    io.tensor("img_ids"), io.tensor("txt_ids")));
            assertTrue(e.getMessage().contains("guidance"), e.getMessage());
        }
    }

    @Test void flopsOfFluxDevAt1024() {
        FluxTransformer.Flops f = FluxTransformer.flops(FluxConfig.dev(), 4096, 512);
        assertEquals(59.5e12, f.linear(), 0.05e12);
        assertEquals(14.9e12, f.attention(), 0.05e12);
        assertEquals(74.4e12, f.total(), 0.05e12);
        // attention is exactly 57 layers × 4·L²·D
        assertEquals(57 * 4.0 * 4608 * 4608 * 3072, f.attention(), 1.0);
    }

    @Test void presets() {
        FluxConfig dev = FluxConfig.dev();
        assertEquals(128, dev.headDim());
        assertArrayEquals(new int[] {16, 56, 56}, dev.axesDim());
        assertArrayEquals(dev.axesDim(), FluxConfig.defaultAxesDim(128));
        assertArrayEquals(new int[] {4, 6, 6}, FluxConfig.defaultAxesDim(16));
        assertTrue(dev.guidanceEmbed());
        assertEquals(dev.withGuidanceEmbed(false), FluxConfig.schnell());
    }
}
