package org.dit4j.models.text;

import static org.dit4j.models.text.TextTestData.assertMatches;
import static org.dit4j.models.text.TextTestData.ints;
import static org.dit4j.models.text.TextTestData.resource;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * T5 v1.1 / umT5 encoders on the CPU backend in F32 against transformers 5.17's T5EncoderModel / UMT5EncoderModel
 * (float32, CPU) on the same random weights: rel-L2 ≤ 1e-4.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class T5EncoderTest {
    private static final double TOL = 1e-4;
    private static CpuBackend ops;
    private static WeightSource io;

    @BeforeAll static void open() {
        ops = new CpuBackend(2);
        io = WeightSource.open(resource("text_io.safetensors"));
    }

    @AfterAll static void close() {
        io.close();
        ops.close();
    }

    @Test void bucketsMatchTransformersForEveryDistance() {
        Tensor ref = io.tensor("t5.buckets");
        for (int r = -300; r <= 300; r++)
            assertEquals((int) ref.getFloat(r + 300), T5Encoder.relativeBucket(r, 32, 128), "bucket of relative position " + r);
    }

    @Test void detectsT5v11AndUmt5FromShapes() {
        try (WeightSource t5 = WeightSource.open(resource("t5_v11.safetensors"));
             WeightSource u = WeightSource.open(resource("umt5.safetensors"))) {
            assertEquals("", T5Config.findPrefix(t5));
            assertEquals(TextTestData.tinyT5(false), T5Config.detect(t5));
            assertEquals(TextTestData.tinyT5(true), T5Config.detect(u));
        }
    }

    @Test void t5v11WithoutMaskMatchesTransformers() {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.F32);
             Scope s = Scope.open()) {
            assertMatches("T5 v1.1, no mask (Flux)", ops, enc.encode(ints(io, "t5.ids"), null), io, "t5.hidden", TOL);
        }
    }

    @Test void t5v11WithMaskMatchesTransformers() {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.F32);
             Scope s = Scope.open()) {
            TextTestData.assertDistinct(io, "t5.hidden", "t5.hidden_masked", 1e-2);
            assertMatches("T5 v1.1, padding mask", ops, enc.encode(ints(io, "t5.ids"), ints(io, "t5.mask")), io,
                    "t5.hidden_masked", TOL);
        }
    }

    @Test void umt5PerLayerBiasWithAndWithoutMaskMatchesTransformers() {
        try (WeightSource w = WeightSource.open(resource("umt5.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.F32);
             Scope s = Scope.open()) {
            assertTrue(enc.config().perLayerBias());
            TextTestData.assertDistinct(io, "umt5.hidden", "umt5.hidden_masked", 1e-2);
            assertMatches("umT5, padding mask (Wan)", ops, enc.encode(ints(io, "umt5.ids"), ints(io, "umt5.mask")), io,
                    "umt5.hidden_masked", TOL);
            assertMatches("umT5, no mask", ops, enc.encode(ints(io, "umt5.ids"), null), io, "umt5.hidden", TOL);
        }
    }

    @Test void comfyScaledFp8MatchesTransformersOnTheDequantizedWeights() {
        try (WeightSource w = WeightSource.open(resource("t5_scaled_fp8.safetensors"));
             Scope s = Scope.open()) {
            assertEquals(DType.F8_E4M3, w.info("encoder.block.0.layer.0.SelfAttention.q.weight").dtype());
            TextTestData.assertDistinct(io, "t5.hidden", "fp8.hidden", 1e-3);   // the fp8 rounding is visible
            try (T5Encoder kept = T5Encoder.load(ops, w, DType.F32)) {       // fp8 kept, scale after the matmul
                assertMatches("scaled fp8, weights kept fp8", ops, kept.encode(ints(io, "t5.ids"), null), io, "fp8.hidden", TOL);
            }
            try (T5Encoder deq = T5Encoder.load(ops, w, "", T5Config.detect(w), DType.F32, DType.F32)) {   // dequantized at load
                assertMatches("scaled fp8, dequantized to F32", ops, deq.encode(ints(io, "t5.ids"), null), io, "fp8.hidden", TOL);
            }
        }
    }

    /**
     * bf16, f16 and plain fp8 storage decode exactly: a file storing the weights in such a dtype gives the same output
     * as an F32 file holding the same (rounded) values.
     */
    @Test void narrowStorageDecodesExactly(@TempDir Path tmp) {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors")); Scope s = Scope.open()) {
            int[][] ids = ints(io, "t5.ids");
            for (DType narrow : new DType[] {DType.BF16, DType.F16, DType.F8_E4M3}) {
                Path f32 = TextTestData.rewrite(w, tmp.resolve("f32-" + narrow + ".safetensors"), n -> n,
                        (n, t) -> TextTestData.roundTrip(t, narrow, DType.F32));
                Path stored = TextTestData.rewrite(w, tmp.resolve(narrow + ".safetensors"), n -> n,
                        (n, t) -> TextTestData.roundTrip(t, narrow, narrow));
                try (WeightSource a = WeightSource.open(f32); WeightSource b = WeightSource.open(stored);
                     T5Encoder ea = T5Encoder.load(ops, a, DType.F32); T5Encoder eb = T5Encoder.load(ops, b, DType.F32)) {
                    assertEquals(narrow, b.info("encoder.block.1.layer.1.DenseReluDense.wo.weight").dtype());
                    float[] ya = TextTestData.floats(ops, ea.encode(ids, null)), yb = TextTestData.floats(ops, eb.encode(ids, null));
                    double e = TextTestData.relL2(yb, ya);
                    assertTrue(e <= 1e-6, narrow + " storage vs the same values in F32: rel-L2 " + e);
                }
            }
        }
    }

    /**
     * Newer ComfyUI files carry one scale per output row ({@code weight_scale} [out]): the kept-fp8 path (scale on the
     * output) and the dequantize-at-load path (W = w8·scale per row) must agree, and differ from ignoring the scale.
     */
    @Test void rowwiseWeightScalesApplyPerOutputRow(@TempDir Path tmp) {
        try (WeightSource w = WeightSource.open(resource("t5_scaled_fp8.safetensors")); Scope s = Scope.open()) {
            java.util.Random rnd = new java.util.Random(5);
            Path p = TextTestData.rewrite(w, tmp.resolve("rowwise.safetensors"),
                    n -> n.endsWith(".scale_weight") ? n.replace(".scale_weight", ".weight_scale") : n.equals("scaled_fp8") ? null : n,
                    (n, t) -> {
                        if (!n.endsWith(".scale_weight")) return t;
                        long rows = w.info(n.replace(".scale_weight", ".weight")).shape().dim(0);
                        float[] v = new float[(int) rows];
                        for (int i = 0; i < v.length; i++) v[i] = t.getFloat(0) * (0.5f + rnd.nextFloat());
                        return Tensor.of(v, rows);
                    });
            int[][] ids = ints(io, "t5.ids");
            try (WeightSource rw = WeightSource.open(p);
                 T5Encoder kept = T5Encoder.load(ops, rw, DType.F32);
                 T5Encoder deq = T5Encoder.load(ops, rw, "", T5Config.detect(rw), DType.F32, DType.F32)) {
                float[] a = TextTestData.floats(ops, kept.encode(ids, null)), b = TextTestData.floats(ops, deq.encode(ids, null));
                double e = TextTestData.relL2(a, b);
                assertTrue(e <= 1e-5, "row-wise scale after the matmul vs dequantized at load: rel-L2 " + e);
                double vsScalar = TextTestData.relL2(a, io.tensor("fp8.hidden").toFloatArray());
                assertTrue(vsScalar > 1e-2, "the row scales must change the output (rel-L2 to the scalar-scale output " + vsScalar + ")");
            }
        }
    }

    @Test void encodeLeavesOnlyItsResultInTheCallersScope() {
        try (WeightSource w = WeightSource.open(resource("umt5.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.F32);
             Scope s = Scope.open()) {
            enc.encode(ints(io, "umt5.ids"), ints(io, "umt5.mask"));
            assertEquals(1, s.size(), "intermediates (activations, per-layer biases) must be freed inside encode");
        }
    }

    @Test void prefixedFileWithEmbedTokensNameLoadsTheSame(@TempDir Path tmp) {
        String prefix = "text_encoders.t5xxl.transformer.";
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors")); Scope s = Scope.open()) {
            Path p = TextTestData.rewrite(w, tmp.resolve("prefixed.safetensors"),
                    n -> prefix + (n.equals("shared.weight") ? "encoder.embed_tokens.weight" : n), (n, t) -> t);
            try (WeightSource pw = WeightSource.open(p); T5Encoder enc = T5Encoder.load(ops, pw, DType.F32)) {
                assertEquals(prefix, T5Config.findPrefix(pw));
                assertMatches("prefixed ComfyUI all-in-one layout", ops, enc.encode(ints(io, "t5.ids"), null), io, "t5.hidden", TOL);
            }
        }
    }

    @Test void bf16ActivationsStayCloseToTheF32Reference() {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.BF16);
             Scope s = Scope.open()) {
            Tensor y = enc.encode(ints(io, "t5.ids"), null);
            assertEquals(DType.BF16, y.dtype());
            // bf16 keeps 8 bits of mantissa: each rounding adds ~2^-9 relative error; two blocks stay well under 2e-2
            double e = assertMatches("T5 v1.1, BF16 activations", ops, y, io, "t5.hidden", 2e-2);
            assertTrue(e > 1e-5, "BF16 activations must actually round (rel-L2 " + e + ")");
        }
    }

    @Test void refusesF16ActivationsWithTheReason() {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"))) {
            var ex = assertThrows(IllegalArgumentException.class, () -> T5Encoder.load(ops, w, DType.F16));
            assertTrue(ex.getMessage().contains("overflows in fp16"), ex.getMessage());
        }
    }

    @Test void configMismatchesAreNamed() {
        try (WeightSource t5 = WeightSource.open(resource("t5_v11.safetensors"));
             WeightSource u = WeightSource.open(resource("umt5.safetensors"))) {
            var perLayer = assertThrows(CheckpointException.class,
                    () -> T5Encoder.load(ops, t5, "", TextTestData.tinyT5(true), null, DType.F32));
            assertTrue(perLayer.getMessage().contains("encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight"),
                    perLayer.getMessage());
            var shared = assertThrows(CheckpointException.class,
                    () -> T5Encoder.load(ops, u, "", TextTestData.tinyT5(false), null, DType.F32));
            assertTrue(shared.getMessage().contains("umT5"), shared.getMessage());
            var layers = assertThrows(CheckpointException.class,
                    () -> T5Encoder.load(ops, t5, "", new T5Config(100, 32, 8, 4, 48, 3, 32, 128, false, 1e-6f), null, DType.F32));
            assertTrue(layers.getMessage().contains("has 2 blocks"), layers.getMessage());
            var width = assertThrows(CheckpointException.class,
                    () -> T5Encoder.load(ops, t5, "", new T5Config(100, 32, 8, 4, 64, 2, 32, 128, false, 1e-6f), null, DType.F32));
            assertTrue(width.getMessage().contains("wi_0.weight") && width.getMessage().contains("[48, 32]"), width.getMessage());
            var prefix = assertThrows(CheckpointException.class,
                    () -> T5Encoder.load(ops, t5, "t5.", TextTestData.tinyT5(false), null, DType.F32));
            assertTrue(prefix.getMessage().contains("'t5.shared.weight'"), prefix.getMessage());
        }
    }

    @Test void badIdsAreRefusedWithTheirPosition() {
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"));
             T5Encoder enc = T5Encoder.load(ops, w, DType.F32)) {
            var range = assertThrows(IllegalArgumentException.class, () -> enc.encode(new int[][] {{5, 100, 1}}, null));
            assertTrue(range.getMessage().contains("token id 100 at [0, 1]"), range.getMessage());
            var ragged = assertThrows(IllegalArgumentException.class, () -> enc.encode(new int[][] {{5, 1}, {1}}, null));
            assertTrue(ragged.getMessage().contains("same length"), ragged.getMessage());
            var allMasked = assertThrows(IllegalArgumentException.class, () -> enc.encode(new int[][] {{5, 1}}, new int[][] {{0, 0}}));
            assertTrue(allMasked.getMessage().contains("masks every token"), allMasked.getMessage());
        }
    }

    @Test void closeReleasesTheWeights() {
        T5Encoder enc;
        try (WeightSource w = WeightSource.open(resource("t5_v11.safetensors"))) {
            enc = T5Encoder.load(ops, w, DType.F32);
        }
        // the file is closed: the model holds its own copies
        try (Scope s = Scope.open()) {
            assertMatches("after closing the file", ops, enc.encode(ints(io, "t5.ids"), null), io, "t5.hidden", TOL);
        }
        enc.close();
        assertThrows(RuntimeException.class, () -> enc.encode(ints(io, "t5.ids"), null));
        assertFalse(enc.toString().isEmpty());
    }
}
