package org.dit4j.models.wan;

import static org.dit4j.models.wan.WanTestData.relL2;
import static org.dit4j.models.wan.WanTestData.resource;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The Wan transformer on the CPU backend against diffusers' WanTransformer3DModel (float32 reference). */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanTransformerTest {
    /** Both sides compute in float32; the reference's own f32-vs-f64 error is ≈3e-7. */
    static final double TOLERANCE = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @ParameterizedTest(name = "{0} ({1})")
    @CsvSource({
        "wan_a_diffusers,                  diffusers folder F32,   wan_a_io.safetensors",
        "wan_a_original.safetensors,       original BF16,          wan_a_io.safetensors",
        "wan_b_diffusers.safetensors,      diffusers BF16,         wan_b_io.safetensors",
        "wan_b_comfy_prefixed.safetensors, ComfyUI prefixed F32,   wan_b_io.safetensors",
    })
    void matchesDiffusers(String weights, String layout, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             Scope scope = Scope.open()) {
            WanConfig cfg = WanConfig.detect(w, 2);
            try (WanWeights ww = WanWeights.load(ops, w, cfg, DType.F32)) {
                Tensor out = ops.toHost(WanTestData.forward(ops, new WanTransformer(ops, ww), io, DType.F32));
                Tensor ref = io.tensor("out");
                assertEquals(ref.shape(), out.shape());
                double err = relL2(out.toFloatArray(), ref.toFloatArray());
                double err64 = relL2(out.toFloatArray(), io.tensor("out_f64").toFloatArray());
                System.out.printf("wan %-34s %-22s rel-L2 %.3e (vs f64 %.3e)%n", weights, layout, err, err64);
                assertTrue(err <= TOLERANCE, weights + ": rel-L2 " + err + " > " + TOLERANCE);
            }
        }
    }

    /**
     * BF16 weights and activations (F32 time MLP, modulation tables and cross-attention norm, as diffusers keeps them):
     * the error against the float32 reference may be at most twice what diffusers' own bf16 run of the same model gets
     * ("out_bf16", measured on the CPU: 4.9e-3 for a, 6.2e-3 for b).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"wan_a_original.safetensors, wan_a_io.safetensors", "wan_b_diffusers.safetensors, wan_b_io.safetensors"})
    void bf16ForwardIsAsCloseAsDiffusersBf16(String weights, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             WanWeights ww = WanWeights.load(ops, w, WanConfig.detect(w, 2), DType.BF16);
             Scope scope = Scope.open()) {
            Tensor out = WanTestData.forward(ops, new WanTransformer(ops, ww), io, DType.BF16);
            assertEquals(DType.BF16, out.dtype());
            float[] ref = io.tensor("out").toFloatArray();
            double err = relL2(ops.toHost(out).toFloatArray(), ref);
            double diffusersErr = relL2(io.tensor("out_bf16").toFloatArray(), ref);
            System.out.printf("wan %-30s BF16 rel-L2 %.3e (diffusers bf16: %.3e)%n", weights, err, diffusersErr);
            assertTrue(err <= 2 * diffusersErr, "bf16 rel-L2 " + err + " > 2 × diffusers' bf16 rel-L2 " + diffusersErr);
        }
    }
}
