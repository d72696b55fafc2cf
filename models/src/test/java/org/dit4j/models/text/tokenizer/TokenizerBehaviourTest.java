package org.dit4j.models.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Truncation, padding, masks and loading rules, on small vocabularies made here (no shared files needed). */
class TokenizerBehaviourTest {

    /**
     * A tiny CLIP-style vocabulary: the 256 byte symbols with and without {@code </w>} (ids 0..511, in byte order),
     * merges "l o" (512 = "lo"), "lo w</w>" (513 = "low</w>"), "e r</w>" (514 = "er</w>"), then the two specials.
     */
    static Path tinyClip(Path dir) throws IOException {
        StringBuilder v = new StringBuilder("{");
        int id = 0;
        for (int b = 0; b < 256; b++) v.append(SyntheticUnigram.quote(String.valueOf(ClipTokenizer.ByteLevel.symbol(b)))).append(':').append(id++).append(',');
        for (int b = 0; b < 256; b++) v.append(SyntheticUnigram.quote(ClipTokenizer.ByteLevel.symbol(b) + "</w>")).append(':').append(id++).append(',');
        v.append("\"lo\":512,\"low</w>\":513,\"er</w>\":514,\"<|startoftext|>\":515,\"<|endoftext|>\":516}");
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("vocab.json"), v.toString());
        Files.writeString(dir.resolve("merges.txt"), "#version: 0.2\nl o\nlo w</w>\ne r</w>\n");
        return dir;
    }

    private static int sym(char c, boolean end) { return c + (end ? 256 : 0); }

    @Test
    void clipBpeMergesByRankAndMarksWordEnds(@TempDir Path tmp) throws IOException {
        ClipTokenizer tok = ClipTokenizer.fromFolder(tinyClip(tmp));
        // "low" → l o w</w> → lo w</w> → low</w>; "lower" → lo w e r</w>; "Low!" lower-cased, "!" its own word.
        assertEquals(List.of("low</w>", "lo", "w", "er</w>", "low</w>", "!</w>"), tok.tokenize("low lower  Low!"));
        assertArrayEquals(new int[] {513, 512, 'w', 514, 513, sym('!', true)}, tok.encodeIds("low lower  Low!"));
        assertEquals(515, tok.bosId());
        assertEquals(516, tok.eosId());
        assertEquals(516, tok.padId(), "no special_tokens_map.json: pad is <|endoftext|>");
    }

    @Test
    void clipTruncatesKeepingEosAndPadsWithMaskZero(@TempDir Path tmp) throws IOException {
        ClipTokenizer tok = ClipTokenizer.fromFolder(tinyClip(tmp));
        Encoding shortOne = tok.encode("low", 6, true, true);
        assertArrayEquals(new int[] {515, 513, 516, 516, 516, 516}, shortOne.ids());
        assertArrayEquals(new int[] {1, 1, 1, 0, 0, 0}, shortOne.attentionMask());
        assertEquals(3, shortOne.length());

        String longText = "low ".repeat(100);
        Encoding cut = tok.encode(longText, 77, true, true);
        assertEquals(77, cut.ids().length);
        assertEquals(515, cut.ids()[0]);
        assertEquals(516, cut.ids()[76], "the EOS survives truncation");
        assertTrue(Arrays.stream(cut.ids(), 1, 76).allMatch(i -> i == 513));
        assertTrue(Arrays.stream(cut.attentionMask()).allMatch(m -> m == 1));

        assertEquals(102, tok.encode(longText, 77, true, false).ids().length, "no truncation: all 100 words + BOS/EOS, no padding needed");
        assertEquals(3, tok.encode("low", 77, false, true).ids().length, "no padding");
        assertArrayEquals(new int[] {515, 516}, tok.encode("", 77, false, true).ids(), "empty prompt: BOS EOS");
        assertThrows(IllegalArgumentException.class, () -> tok.encode("low", 1, true, true));
    }

    @Test
    void clipSpecialTokensInTextAndPadFromConfig(@TempDir Path tmp) throws IOException {
        tinyClip(tmp);
        Files.writeString(tmp.resolve("special_tokens_map.json"), "{\"pad_token\": {\"content\": \"!\", \"lstrip\": false}}");
        ClipTokenizer tok = ClipTokenizer.fromFolder(tmp);
        assertEquals('!', tok.padId(), "pad token \"!\" as the SD2-style configs name it (id 33 here, byte order)");
        assertArrayEquals(new int[] {515, 513, 516, 513}, tok.encodeIds("<|startoftext|>low<|endoftext|>low"));
        assertArrayEquals(new int[] {515, 516, '!', '!'}, tok.encode("", 4, true, true).ids());
        assertEquals(516, tok.withPadToken("<|endoftext|>").padId());
    }

    @Test
    void cleaningModesDifferOnCjkAndFinalSigma() {
        assertEquals("a 東 京 b", ClipTokenizer.cleanSlow("A東京B"));
        assertEquals("a東京b", ClipTokenizer.cleanFast("A東京B"));
        assertEquals("οδος", ClipTokenizer.cleanSlow("ΟΔΟΣ"), "Python str.lower: final sigma");
        assertEquals("οδοσ", ClipTokenizer.cleanFast("ΟΔΟΣ"), "per-character lower-case");
        assertEquals("zerowidth", ClipTokenizer.cleanSlow("zero\u200bwidth"), "format characters are dropped by the slow path");
        assertEquals(List.of("<|", "startoftext", "|>"), ClipTokenizer.gpt2Split("<|startoftext|>"));
        assertEquals(List.of("don", "'t"), ClipTokenizer.words("don't"));
    }

    @Test
    void t5TruncationKeepsEosAndPadsWithZero(@TempDir Path tmp) throws IOException {
        SyntheticUnigram.write(tmp);
        for (T5Tokenizer tok : new T5Tokenizer[] {T5Tokenizer.fromFolder(tmp.resolve("t5-synthetic")),
                T5Tokenizer.fromSentencePiece(tmp.resolve("t5-synthetic/spiece.model"))}) {
            assertEquals(1, tok.eosId());
            assertEquals(0, tok.padId());
            Encoding e = tok.encode("the cat", 8, true, true);
            int[] content = tok.encodeIds("the cat");
            assertEquals(2, content.length, "▁the ▁cat");
            assertArrayEquals(new int[] {content[0], content[1], 1, 0, 0, 0, 0, 0}, e.ids());
            assertArrayEquals(new int[] {1, 1, 1, 0, 0, 0, 0, 0}, e.attentionMask());

            String longText = "the cat ".repeat(400);
            Encoding dev = tok.encode(longText);
            assertEquals(T5Tokenizer.FLUX_DEV_MAX_LENGTH, dev.ids().length);
            assertEquals(1, dev.ids()[511], "EOS last after truncation");
            assertEquals(512, dev.length());
            Encoding schnell = tok.encode(longText, T5Tokenizer.FLUX_SCHNELL_MAX_LENGTH, true, true);
            assertArrayEquals(Arrays.copyOf(dev.ids(), 255), Arrays.copyOf(schnell.ids(), 255));
            assertEquals(1, schnell.ids()[255]);
            assertEquals(801, tok.encode(longText, 512, false, false).ids().length);
            assertArrayEquals(new int[] {1}, tok.encode("", 512, false, true).ids(), "empty prompt: just EOS");
            assertEquals(7, tok.withPadId(7).encode("", 3, true, true).ids()[2]);
        }
    }

    @Test
    void t5UnknownRunsAreFusedOrFallBackToBytes(@TempDir Path tmp) throws IOException {
        SyntheticUnigram.write(tmp);
        T5Tokenizer plain = T5Tokenizer.fromSentencePiece(tmp.resolve("t5-synthetic/spiece.model"));
        T5Tokenizer bytes = T5Tokenizer.fromSentencePiece(tmp.resolve("t5-synthetic-bytes/spiece.model"));
        // "▁" then one fused unknown piece for the two emoji.
        assertEquals(List.of("\u2581", "\uD83D\uDC31\uD83D\uDE80"), plain.tokenize("\uD83D\uDC31\uD83D\uDE80"));
        assertArrayEquals(new int[] {3, 2}, plain.encodeIds("\uD83D\uDC31\uD83D\uDE80"));
        // byte fallback: 8 UTF-8 bytes → <0xF0> <0x9F> <0x90> <0xB1> <0xF0> <0x9F> <0x9A> <0x80>, byte b has id 3 + b.
        int[] ids = bytes.encodeIds("\uD83D\uDC31\uD83D\uDE80");
        assertArrayEquals(new int[] {259, 3 + 0xF0, 3 + 0x9F, 3 + 0x90, 3 + 0xB1, 3 + 0xF0, 3 + 0x9F, 3 + 0x9A, 3 + 0x80}, ids);
    }

    /**
     * Exact score ties: ▁sun (-3) + set (-4) = ▁sunset (-7). Both implementations relax a node only on a strictly
     * higher score, positions left to right, so the piece found first (from the earlier start) wins. (By construction
     * of the algorithm; the reference vocabularies have no such tie.)
     */
    @Test
    void tiesKeepThePathFoundFirst() {
        String[] pieces = {"<unk>", "\u2581sun", "set", "\u2581sunset", "\u2581", "s", "u", "n", "e", "t"};
        double[] scores = {0, -3, -4, -7, -9, -9, -9, -9, -9, -9};
        for (Unigram.Flavor f : Unigram.Flavor.values()) {
            Unigram u = new Unigram(f, pieces, scores, null, 0, false, "tie test");
            List<Integer> ids = new java.util.ArrayList<>();
            u.encode("\u2581sunset", ids, null);
            assertEquals(List.of(3), ids, f.toString());
            ids.clear();
            u.encode("\u2581sunsetset", ids, null); // ▁sunset+set and ▁sun+set+set both score -11
            assertEquals(List.of(3, 2), ids, f.toString());
        }
    }
}
