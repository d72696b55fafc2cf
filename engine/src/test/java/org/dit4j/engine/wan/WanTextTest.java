package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.Encoding;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Wan's prompt cleaning and the trim-then-zero-pad of the umT5 states. */
class WanTextTest {
    @TempDir Path tmp;

    @Test void cleansLikePromptClean() {
        assertEquals("a & b c", WanText.clean("  a &amp;amp; b\n\t c  "));
        assertEquals("<x> \"q\" 'a' é", WanText.clean("&lt;x&gt;\u3000&quot;q&quot;\u00A0&#39;a&#x27; &#233;"));
        assertEquals("&unknown; stays", WanText.clean("&unknown; stays"));
        assertEquals("", WanText.clean(" \n "));
    }

    @Test void trimsToTheRealLengthAndZeroPads() throws Exception {
        Path dir = TinyWan.writeDiffusers(tmp.resolve("w"), 5);
        try (Ops ops = new CpuBackend(); WeightSource w = WeightSource.open(dir.resolve("text_encoder"))) {
            T5Tokenizer tok = T5Tokenizer.fromFolder(dir.resolve("tokenizer"));
            T5Encoder t5 = T5Encoder.load(ops, w, DType.F32);
            List<String> prompts = List.of("a red fox", "the   big   city at night");
            List<Encoding> enc = WanText.tokenize(tok, prompts, 16);
            assertEquals(4, enc.get(0).length(), "3 words + EOS");
            assertEquals(tok.encode("the big city at night", 16, true, true), enc.get(1), "whitespace collapsed before tokenizing");
            assertEquals(7, enc.get(1).length(), "▁the ▁big ▁city ▁ at ▁night </s>");
            try (Tensor raw = t5.encode(enc, true); Tensor ctx = WanText.encode(ops, tok, t5, prompts, 16, DType.F32)) {
                assertEquals(List.of(2L, 16L, (long) TinyWan.T5_D), List.of(ctx.dim(0), ctx.dim(1), ctx.dim(2)));
                float[] r = raw.toFloatArray(), c = ctx.toFloatArray();
                int d = TinyWan.T5_D;
                for (int b = 0; b < 2; b++) {
                    int n = enc.get(b).length();
                    for (int j = 0; j < 16; j++) {
                        for (int k = 0; k < d; k++) {
                            int i = (b * 16 + j) * d + k;
                            if (j < n) assertEquals(r[i], c[i], 0f, "real row kept as encoded");
                            else assertEquals(0, Float.floatToRawIntBits(c[i]), "padding row " + j + " is +0.0");
                        }
                    }
                }
                // the padded states of the encoder are not zero: trimming is what zeroes them
                assertTrue(Math.abs(r[(16 - 1) * d]) > 0f);
            }
            // a prompt longer than the limit is truncated keeping the EOS
            List<Encoding> longOne = WanText.tokenize(tok, List.of("a ".repeat(40)), 16);
            assertEquals(16, longOne.get(0).length());
            assertEquals(tok.eosId(), longOne.get(0).ids()[15]);
            t5.close();
        }
    }
}
