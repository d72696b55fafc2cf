package org.dit4j.models.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.GZIPInputStream;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.tokenizer.ClipTokenizer;
import org.dit4j.models.text.tokenizer.Encoding;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flux's prompt → (txt, y) plumbing on tiny random encoders built here: a T5 with the vocabulary of a trained
 * SentencePiece test model, a CLIP with a byte-level vocabulary (EOS the highest id, as CLIP's 49407). The encoders'
 * numerics are tested against transformers elsewhere; here the lengths, padding, truncation, batching and the pooled
 * position are checked against direct encoder calls on independently built ids.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class TextConditioningTest {
    private static final int D = 32;
    private static CpuBackend ops;
    private static Path dir;
    private static T5Tokenizer t5Tok;
    private static ClipTokenizer clipTok;
    private static WeightSource t5File, clipFile;
    private static T5Encoder t5;
    private static ClipTextModel clip;

    @BeforeAll static void build(@TempDir Path tmp) throws IOException {
        ops = new CpuBackend(2);
        dir = tmp;
        t5Tok = T5Tokenizer.fromSentencePiece(gunzip("tokenizer/trained-nfkc/spiece.model.gz"), "trained-nfkc/spiece.model");
        clipTok = ClipTokenizer.fromFolder(tinyClipVocabulary(tmp.resolve("clip-tokenizer")));
        t5File = WeightSource.open(randomT5(tmp.resolve("t5.safetensors"), t5Tok.vocabSize()));
        clipFile = WeightSource.open(randomClip(tmp.resolve("clip.safetensors"), clipTok.vocabSize()));
        t5 = T5Encoder.load(ops, t5File, DType.F32);
        clip = ClipTextModel.load(ops, clipFile, "text_model.", ClipTextConfig.detect(clipFile, "text_model.", 4), null, DType.F32);
    }

    @AfterAll static void close() {
        t5.close();
        clip.close();
        t5File.close();
        clipFile.close();
        ops.close();
    }

    @Test void devPadsT5To512AndPoolsClipAtTheEos() {
        TextConditioning tc = TextConditioning.dev(t5Tok, t5, clipTok, clip);
        String prompt = "a cat in the hat";
        try (Scope s = Scope.open()) {
            TextConditioning.Result r = tc.encode(prompt);
            assertArrayEquals(new long[] {1, 512, D}, r.txt().shape().dims());
            assertArrayEquals(new long[] {1, D}, r.y().shape().dims());

            Encoding t5Ids = t5Tok.encode(prompt, 512, true, true);
            assertEquals(1, t5Ids.ids()[t5Ids.length() - 1], "EOS after the prompt");
            assertEquals(0, t5Ids.ids()[511], "padding with id 0");
            assertArrayEquals(t5.encode(new int[][] {t5Ids.ids()}, null).toFloatArray(), r.txt().toFloatArray(),
                    "txt = T5 last hidden state of the 512 padded ids, no mask");

            int[] clipIds = clipTok.encode(prompt).ids();
            assertEquals(77, clipIds.length);
            int eos = Arrays.stream(clipIds).boxed().toList().indexOf(clipTok.eosId());
            assertEquals(1 + clipTok.encodeIds(prompt).length, eos, "BOS + the prompt's tokens, then the EOS");
            Tensor hidden = clip.encode(new int[][] {clipIds}, null).hidden();
            float[] atEos = Arrays.copyOfRange(hidden.toFloatArray(), eos * D, (eos + 1) * D);
            assertArrayEquals(atEos, r.y().toFloatArray(), "y = CLIP final-LN hidden state at the first EOS");
            float[] atLast = Arrays.copyOfRange(hidden.toFloatArray(), 76 * D, 77 * D);
            assertTrue(TextTestData.relL2(atLast, atEos) > 1e-3, "the last (padding) EOS differs, so the position matters");
        }
    }

    @Test void schnellPadsT5To256AndTruncatesLongPrompts() {
        TextConditioning tc = TextConditioning.schnell(t5Tok, t5, clipTok, clip);
        String longPrompt = "a very long description of a mountain village at dawn, ".repeat(40);
        try (Scope s = Scope.open()) {
            TextConditioning.Result r = tc.encode(longPrompt);
            assertArrayEquals(new long[] {1, 256, D}, r.txt().shape().dims());
            Encoding e = tc.t5Encodings(List.of(longPrompt)).get(0);
            assertEquals(256, e.ids().length);
            assertEquals(1, e.ids()[255], "the EOS survives truncation");
        }
    }

    @Test void batchRowsEqualSinglePrompts() {
        TextConditioning tc = TextConditioning.schnell(t5Tok, t5, clipTok, clip);
        try (Scope s = Scope.open()) {
            TextConditioning.Result both = tc.encode(List.of("a cat", "a dog in the rain"));
            TextConditioning.Result second = tc.encode("a dog in the rain");
            assertArrayEquals(new long[] {2, 256, D}, both.txt().shape().dims());
            assertArrayEquals(new long[] {2, D}, both.y().shape().dims());
            float[] txt = both.txt().toFloatArray(), y = both.y().toFloatArray();
            double eTxt = TextTestData.relL2(Arrays.copyOfRange(txt, 256 * D, 512 * D), second.txt().toFloatArray());
            double eY = TextTestData.relL2(Arrays.copyOfRange(y, D, 2 * D), second.y().toFloatArray());
            assertTrue(eTxt <= 1e-6 && eY <= 1e-6, "batch row 1 vs the prompt alone: txt " + eTxt + ", y " + eY);
        }
    }

    @Test void comfyStyleT5GrowsWithThePromptAndNeverTruncates() {
        TextConditioning tc = new TextConditioning(t5Tok, t5, clipTok, clip, 256, true);
        String longPrompt = "a very long description of a mountain village at dawn, ".repeat(40);
        int tokens = t5Tok.encode(longPrompt, 256, false, false).ids().length;
        assertTrue(tokens > 256, "the prompt must be longer than 256 tokens, has " + tokens);
        List<Encoding> e = tc.t5Encodings(List.of("a cat", longPrompt));
        assertEquals(tokens, e.get(0).ids().length, "the batch is padded to its longest prompt");
        assertEquals(tokens, e.get(1).ids().length);
        assertEquals(256, tc.t5Encodings(List.of("a cat")).get(0).ids().length, "short prompts are padded to the minimum");
        try (Scope s = Scope.open()) {
            assertArrayEquals(new long[] {1, tokens, D}, tc.encode(longPrompt).txt().shape().dims());
        }
    }

    @Test void refusesTokenizersThatDoNotFitTheModels() throws IOException {
        ClipTokenizer bigger = ClipTokenizer.fromFolder(tinyClipVocabulary(dir.resolve("clip-bigger"), "x y"));
        var ex = assertThrows(IllegalArgumentException.class, () -> TextConditioning.dev(t5Tok, t5, bigger, clip));
        assertTrue(ex.getMessage().contains("do not belong together"), ex.getMessage());
    }

    // ------------------------------------------------------------------------------------------------ fixtures

    private static byte[] gunzip(String resource) {
        try (InputStream in = TextConditioningTest.class.getClassLoader().getResourceAsStream(resource)) {
            if (in == null) throw new IllegalStateException("test resource " + resource + " is missing");
            return new GZIPInputStream(new ByteArrayInputStream(in.readAllBytes())).readAllBytes();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * A CLIP byte-level vocabulary: the 256 byte symbols with and without {@code </w>}, merge results, then BOS and
     * EOS last (EOS the highest id, as in CLIP).
     */
    private static Path tinyClipVocabulary(Path d, String... extraMerges) throws IOException {
        StringBuilder v = new StringBuilder("{");
        int id = 0;
        for (int b = 0; b < 256; b++) v.append(quote(byteSymbol(b))).append(':').append(id++).append(',');
        for (int b = 0; b < 256; b++) v.append(quote(byteSymbol(b) + "</w>")).append(':').append(id++).append(',');
        StringBuilder merges = new StringBuilder("#version: 0.2\nc a\nca t</w>\n");
        v.append("\"ca\":").append(id++).append(",\"cat</w>\":").append(id++).append(',');
        for (String m : extraMerges) {
            merges.append(m).append('\n');
            v.append(quote(m.replace(" ", ""))).append(':').append(id++).append(',');
        }
        v.append("\"<|startoftext|>\":").append(id++).append(",\"<|endoftext|>\":").append(id).append('}');
        Files.createDirectories(d);
        Files.writeString(d.resolve("vocab.json"), v.toString());
        Files.writeString(d.resolve("merges.txt"), merges.toString());
        return d;
    }

    /** GPT-2's byte → printable character map used by CLIP's byte-level BPE. */
    private static String byteSymbol(int b) {
        boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        if (printable) return String.valueOf((char) b);
        int n = 0;
        for (int c = 0; c < b; c++) {
            boolean p = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
            if (!p) n++;
        }
        return String.valueOf((char) (256 + n));
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    private static Path randomT5(Path file, int vocab) {
        Random r = new Random(11);
        Map<String, Tensor> t = new LinkedHashMap<>();
        int inner = 32, ff = 48;
        t.put("shared.weight", gaussian(r, 1.0, vocab, D));
        for (int i = 0; i < 2; i++) {
            String a = "encoder.block." + i + ".layer.0.", f = "encoder.block." + i + ".layer.1.";
            for (String p : new String[] {"q", "k", "v"}) t.put(a + "SelfAttention." + p + ".weight", gaussian(r, 1 / Math.sqrt(D), inner, D));
            t.put(a + "SelfAttention.o.weight", gaussian(r, 1 / Math.sqrt(inner), D, inner));
            if (i == 0) t.put(a + "SelfAttention.relative_attention_bias.weight", gaussian(r, 1.0, 32, 4));
            t.put(a + "layer_norm.weight", around1(r, D));
            t.put(f + "DenseReluDense.wi_0.weight", gaussian(r, 1 / Math.sqrt(D), ff, D));
            t.put(f + "DenseReluDense.wi_1.weight", gaussian(r, 1 / Math.sqrt(D), ff, D));
            t.put(f + "DenseReluDense.wo.weight", gaussian(r, 1 / Math.sqrt(ff), D, ff));
            t.put(f + "layer_norm.weight", around1(r, D));
        }
        t.put("encoder.final_layer_norm.weight", around1(r, D));
        SafeTensorsWriter.write(file, t, Map.of());
        return file;
    }

    private static Path randomClip(Path file, int vocab) {
        Random r = new Random(12);
        Map<String, Tensor> t = new LinkedHashMap<>();
        String p = "text_model.";
        int m = 37;
        t.put(p + "embeddings.token_embedding.weight", gaussian(r, 0.5, vocab, D));
        t.put(p + "embeddings.position_embedding.weight", gaussian(r, 0.5, 77, D));
        for (int i = 0; i < 2; i++) {
            String l = p + "encoder.layers." + i + ".";
            for (String n : new String[] {"layer_norm1", "layer_norm2"}) {
                t.put(l + n + ".weight", around1(r, D));
                t.put(l + n + ".bias", gaussian(r, 0.1, D));
            }
            for (String n : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                t.put(l + "self_attn." + n + ".weight", gaussian(r, 1 / Math.sqrt(D), D, D));
                t.put(l + "self_attn." + n + ".bias", gaussian(r, 0.1, D));
            }
            t.put(l + "mlp.fc1.weight", gaussian(r, 1 / Math.sqrt(D), m, D));
            t.put(l + "mlp.fc1.bias", gaussian(r, 0.1, m));
            t.put(l + "mlp.fc2.weight", gaussian(r, 1 / Math.sqrt(m), D, m));
            t.put(l + "mlp.fc2.bias", gaussian(r, 0.1, D));
        }
        t.put(p + "final_layer_norm.weight", around1(r, D));
        t.put(p + "final_layer_norm.bias", gaussian(r, 0.1, D));
        SafeTensorsWriter.write(file, t, Map.of());
        return file;
    }

    private static Tensor gaussian(Random r, double std, long... dims) {
        int n = 1;
        for (long d : dims) n *= (int) d;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * std);
        return Tensor.of(v, dims);
    }

    private static Tensor around1(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (1 + 0.1 * r.nextGaussian());
        return Tensor.of(v, n);
    }
}
