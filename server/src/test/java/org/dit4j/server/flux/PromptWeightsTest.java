package org.dit4j.server.flux;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.server.engine.TextEncoder;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** ComfyUI's prompt-weight parsing and its effect on the Flux conditioning (expected values worked out from sd1_clip.py). */
class PromptWeightsTest {

    @TempDir static Path tmp;
    static Ops ops;
    static FluxEngine engine;
    static Path dev;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        dev = TinyFluxAccess.writeFiles(tmp.resolve("models"), true, 11);
        engine = new FluxEngine(ops, dev, new HfHub(tmp.resolve("empty-hub"), null, true, null));
    }

    @AfterAll static void tearDown() { ops.close(); }

    static PromptWeights.Segment seg(String t, double w) { return new PromptWeights.Segment(t, w); }

    @Test void parsesComfyUisWeightSyntax() {
        assertEquals(List.of(seg("a ", 1), seg("red", 1.5), seg(" fox", 1)), PromptWeights.parse("a (red:1.5) fox"));
        assertEquals(List.of(seg("a ", 1), seg("red", 1.0 * 1.1 * 1.1), seg(" fox", 1)), PromptWeights.parse("a ((red)) fox"));
        assertEquals(List.of(seg("(literal) text", 1)), PromptWeights.parse("\\(literal\\) text"));
        assertEquals(List.of(seg("a:b", 1.1)), PromptWeights.parse("(a:b)"), "no float after the colon: 1.1 and the colon stays");
        assertEquals(List.of(seg("x", 10.0)), PromptWeights.parse("(x:1_0)"), "Python's float() takes underscores");
        assertEquals(List.of(seg("x", 0.5), seg(" y", 1.1)), PromptWeights.parse("(x: 0.5 )( y)"));
        assertEquals(List.of(seg("(open", 1)), PromptWeights.parse("(open"), "an unclosed group is text");
        assertEquals(List.of(seg("a ) (b", 1)), PromptWeights.parse("a ) (b"), "a stray ')' makes the next '(' text too");
        assertEquals(List.of(seg("a", 2.0)), PromptWeights.parse("((a:2))"), "'2)' is no float for the outer group; the inner weight replaces");
        assertEquals(List.of(), PromptWeights.parse(""));
        assertNull(PromptWeights.pythonFloat("1.5f"));
        assertEquals(Double.NEGATIVE_INFINITY, PromptWeights.pythonFloat("-inf"));
        assertEquals(0.5, PromptWeights.pythonFloat(".5"));
        assertEquals(1e3, PromptWeights.pythonFloat("1e3"));
    }

    @Test void firstClipChunkFollowsComfyUisChunking() {
        int[] small = new int[5], big = new int[80];
        Arrays.fill(small, 7);
        for (int i = 0; i < big.length; i++) big[i] = 100 + i;
        // a large group is split: BOS + 75 tokens + EOS
        int[] c = FluxTextEncoder.firstClipChunk(List.of(big), 1, 2, 3);
        assertEquals(77, c.length);
        assertEquals(1, c[0]);
        assertEquals(100, c[1]);
        assertEquals(174, c[75]);
        assertEquals(2, c[76]);
        // a small group that does not fit starts the next chunk: the first ends after the 72 tokens, then EOS and padding
        int[] g72 = new int[72];
        Arrays.fill(g72, 9);
        c = FluxTextEncoder.firstClipChunk(List.of(g72, small), 1, 2, 3);
        assertEquals(2, c[73]);
        assertEquals(3, c[74]);
        assertEquals(3, c[76]);
        // everything fits
        c = FluxTextEncoder.firstClipChunk(List.of(small, small), 1, 2, 3);
        assertEquals(2, c[11]);
        assertEquals(3, c[12]);
    }

    @Test void weightsScaleT5StatesAroundTheEmptyPromptsAndLeaveThePooledVector() throws Exception {
        try (TextEncoder clip = engine.loadTextEncoder(List.of(dev.resolve("text_encoders/clip_l.safetensors"),
                dev.resolve("text_encoders/t5xxl_tiny.safetensors")), "flux", "default")) {
            FluxTextEmbedding plain = (FluxTextEmbedding) clip.encode("red fox");
            FluxTextEmbedding weighted = (FluxTextEmbedding) clip.encode("(red:2.0) fox");
            FluxTextEmbedding empty = (FluxTextEmbedding) clip.encode("");
            assertEquals(256, weighted.tokens());
            assertEquals(plain.tokens(), weighted.tokens());
            assertArrayEquals(plain.pooled(), weighted.pooled(), 1e-6f, "weights do not change the pooled CLIP vector");
            int w = plain.width();
            for (int k = 0; k < w; k++) {
                float expect = (plain.t5()[k] - empty.t5()[k]) * 2f + empty.t5()[k];
                assertEquals(expect, weighted.t5()[k], 1e-5f, "token 0 ('red', weight 2), feature " + k);
            }
            float[] rest = Arrays.copyOfRange(weighted.t5(), w, weighted.t5().length);
            assertArrayEquals(Arrays.copyOfRange(plain.t5(), w, plain.t5().length), rest, 1e-5f, "tokens of weight 1 unchanged");
            double moved = 0;
            for (int k = 0; k < w; k++) moved = Math.max(moved, Math.abs(weighted.t5()[k] - plain.t5()[k]));
            assertTrue(moved > 1e-3, "the weighted token moved");
        }
    }
}
