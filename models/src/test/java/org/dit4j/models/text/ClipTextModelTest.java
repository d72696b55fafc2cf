package org.dit4j.models.text;

import static org.dit4j.models.text.TextTestData.assertMatches;
import static org.dit4j.models.text.TextTestData.ints;
import static org.dit4j.models.text.TextTestData.resource;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** CLIPTextModel on the CPU backend in F32 against transformers 5.17 (float32, CPU) on the same random weights. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class ClipTextModelTest {
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

    private static ClipTextModel load(WeightSource w, ClipTextConfig cfg, DType act) {
        return ClipTextModel.load(ops, w, ClipTextConfig.findPrefix(w), cfg, null, act);
    }

    @Test void detectsTheConfigurationAndPrefix() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"))) {
            assertEquals("text_model.", ClipTextConfig.findPrefix(w));
            assertEquals(TextTestData.tinyClip(), ClipTextConfig.detect(w, "text_model.", 4));
            var ex = assertThrows(CheckpointException.class, () -> ClipTextConfig.detect(w));
            assertTrue(ex.getMessage().contains("not a multiple of 64"), ex.getMessage());
        }
    }

    @Test void hiddenAndPooledMatchTransformers() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"));
             ClipTextModel m = load(w, TextTestData.tinyClip(), DType.F32);
             Scope s = Scope.open()) {
            ClipTextModel.Output o = m.encode(ints(io, "clip.ids"), null);
            assertMatches("CLIP hidden, causal mask only (Flux)", ops, o.hidden(), io, "clip.hidden", TOL);
            assertMatches("CLIP pooled at the first EOS", ops, o.pooled(), io, "clip.pooled", TOL);
        }
    }

    @Test void encodeLeavesOnlyHiddenAndPooledInTheCallersScope() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"));
             ClipTextModel m = load(w, TextTestData.tinyClip(), DType.F32);
             Scope s = Scope.open()) {
            m.encode(ints(io, "clip.ids"), ints(io, "clip.mask"));
            assertEquals(2, s.size(), "only hidden and pooled survive encode");
        }
    }

    @Test void paddingMaskMatchesTransformers() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"));
             ClipTextModel m = load(w, TextTestData.tinyClip(), DType.F32);
             Scope s = Scope.open()) {
            TextTestData.assertDistinct(io, "clip.hidden", "clip.hidden_masked", 1e-2);
            ClipTextModel.Output o = m.encode(ints(io, "clip.ids"), ints(io, "clip.mask"));
            assertMatches("CLIP hidden, causal + padding mask", ops, o.hidden(), io, "clip.hidden_masked", TOL);
            assertMatches("CLIP pooled, padding mask", ops, o.pooled(), io, "clip.pooled_masked", TOL);
        }
    }

    /** A legacy config (eos_token_id 2, as openai/clip-vit-large-patch14's) pools at the highest id, as transformers 5. */
    @Test void legacyEosConfigPoolsAtTheHighestId() {
        int[][] ids = ints(io, "clip_legacy.ids");
        assertEquals(6, ClipTextModel.pooledPosition(ids[0], 2));
        assertEquals(15, ClipTextModel.pooledPosition(ids[1], 2), "row 1 holds id 2 at 9 and 10, the highest id (119) at 15");
        assertEquals(6, ClipTextModel.pooledPosition(ids[0], 119));
        assertEquals(0, ClipTextModel.pooledPosition(new int[] {5, 6, 7}, 119), "no EOS: position 0, as argmax of all-false");
        assertEquals(2, ClipTextModel.pooledPosition(new int[] {49406, 320, 49407, 49407}, ClipTextConfig.CLIP_EOS));
        assertEquals(2, ClipTextModel.pooledPosition(new int[] {49406, 320, 49407, 49407}, 2), "both rules agree on CLIP's ids");
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"));
             ClipTextModel m = load(w, TextTestData.tinyClip().withEosTokenId(2), DType.F32);
             Scope s = Scope.open()) {
            ClipTextModel.Output o = m.encode(ids, null);
            assertMatches("CLIP legacy config hidden", ops, o.hidden(), io, "clip_legacy.hidden", TOL);
            assertMatches("CLIP legacy config pooled", ops, o.pooled(), io, "clip_legacy.pooled", TOL);
        }
    }

    @Test void unprefixedAndAllInOnePrefixesLoadTheSame(@TempDir Path tmp) {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors")); Scope s = Scope.open()) {
            for (String prefix : new String[] {"", "text_encoders.clip_l.transformer.text_model."}) {
                Path p = TextTestData.rewrite(w, tmp.resolve("clip" + prefix.length() + ".safetensors"),
                        n -> prefix + n.substring("text_model.".length()), (n, t) -> t);
                try (WeightSource pw = WeightSource.open(p)) {
                    assertEquals(prefix, ClipTextConfig.findPrefix(pw));
                    try (ClipTextModel m = load(pw, TextTestData.tinyClip(), DType.F32)) {
                        assertMatches("CLIP pooled, prefix '" + prefix + "'", ops, m.encode(ints(io, "clip.ids"), null).pooled(),
                                io, "clip.pooled", TOL);
                    }
                }
            }
        }
    }

    @Test void halfPrecisionActivationsStayCloseToTheF32Reference() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors")); Scope s = Scope.open()) {
            for (DType act : new DType[] {DType.BF16, DType.F16}) {
                try (ClipTextModel m = load(w, TextTestData.tinyClip(), act)) {
                    ClipTextModel.Output o = m.encode(ints(io, "clip.ids"), null);
                    assertEquals(act, o.pooled().dtype());
                    assertMatches("CLIP hidden, " + act + " activations", ops, o.hidden(), io, "clip.hidden", act == DType.BF16 ? 2e-2 : 3e-3);
                }
            }
        }
    }

    @Test void badInputsAreRefused() {
        try (WeightSource w = WeightSource.open(resource("clip.safetensors"));
             ClipTextModel m = load(w, TextTestData.tinyClip(), DType.F32)) {
            var tooLong = assertThrows(IllegalArgumentException.class, () -> m.encode(new int[][] {new int[17]}, null));
            assertTrue(tooLong.getMessage().contains("17 tokens exceed the 16 positions"), tooLong.getMessage());
            var range = assertThrows(IllegalArgumentException.class, () -> m.encode(new int[][] {{118, 120, 119}}, null));
            assertTrue(range.getMessage().contains("token id 120 at [0, 1]"), range.getMessage());
            var bos = assertThrows(IllegalArgumentException.class, () -> m.encode(new int[][] {{118, 119}}, new int[][] {{0, 1}}));
            assertTrue(bos.getMessage().contains("masks the first token"), bos.getMessage());
            var layers = assertThrows(CheckpointException.class, () -> ClipTextModel.load(ops, w, "text_model.",
                    new ClipTextConfig(120, 32, 4, 37, 3, 16, 1e-5f, ClipTextConfig.Activation.QUICK_GELU, 119), null, DType.F32));
            assertTrue(layers.getMessage().contains("has 2 layers"), layers.getMessage());
        }
    }
}
