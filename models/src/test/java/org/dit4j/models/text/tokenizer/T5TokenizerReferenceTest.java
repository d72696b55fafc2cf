package org.dit4j.models.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * T5 ids compared, exactly, with tokenizer/reference.json: {@code tokenizers} 0.23 on each model's tokenizer.json and
 * {@code sentencepiece} 0.2 on its spiece.model, for every prompt of the set. Models: the hand-made synthetic vocabulary
 * (identity normalization) with and without byte fallback, written by {@link SyntheticUnigram}, and two small models
 * trained with SentencePiece's "nmt_nfkc" normalization (T5's precompiled charsmap), with and without byte fallback.
 */
class T5TokenizerReferenceTest {
    static Stream<Arguments> models() {
        return Stream.of(Arguments.of("t5-synthetic"), Arguments.of("t5-synthetic-bytes"),
                Arguments.of("trained-nfkc"), Arguments.of("trained-nfkc-bytes"));
    }

    /** Writes the model's spiece.model and tokenizer.json to {@code dir} and checks they are the bytes the reference used. */
    static Path materialize(String name, Path dir) throws IOException {
        Path d = dir.resolve(name);
        if (name.startsWith("t5-synthetic")) {
            SyntheticUnigram.write(dir);
        } else {
            Refs.extract("tokenizer/" + name + "/spiece.model.gz", d, "spiece.model");
            Refs.extract("tokenizer/" + name + "/tokenizer.json.gz", d, "tokenizer.json");
        }
        Map<String, Object> files = Refs.obj(Refs.reference(), "t5", name, "files");
        assertEquals(files.get("spiece.model"), Refs.sha256(d.resolve("spiece.model")), name + "/spiece.model is not the file the reference used");
        assertEquals(files.get("tokenizer.json"), Refs.sha256(d.resolve("tokenizer.json")), name + "/tokenizer.json is not the file the reference used");
        return d;
    }

    private static void assertAllPrompts(T5Tokenizer tok, Map<String, Object> ref, String what) {
        List<String> prompts = Refs.prompts();
        List<String> bad = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            int[] got = tok.encode(prompts.get(i), 512, false, false).ids();
            int[] exp = Refs.promptIds(ref, i, "ids");
            if (!Arrays.equals(got, exp))
                bad.add("#" + i + " " + Refs.show(prompts.get(i)) + "\n   expected " + Arrays.toString(exp)
                        + "\n   got      " + Arrays.toString(got) + "\n   pieces   " + tok.tokenize(prompts.get(i)));
        }
        assertTrue(bad.isEmpty(), what + ": " + bad.size() + " of " + prompts.size() + " prompts differ:\n" + String.join("\n", bad));
    }

    @ParameterizedTest(name = "{0} tokenizer.json = tokenizers")
    @MethodSource("models")
    void tokenizerJsonMatchesHuggingFaceTokenizers(String name, @TempDir Path tmp) throws IOException {
        Path d = materialize(name, tmp);
        T5Tokenizer tok = T5Tokenizer.fromTokenizerJson(d.resolve("tokenizer.json"));
        assertAllPrompts(tok, Refs.obj(Refs.reference(), "t5", name, "tokenizers"), name + "/tokenizer.json");
    }

    @ParameterizedTest(name = "{0} spiece.model = sentencepiece")
    @MethodSource("models")
    void spieceModelMatchesSentencePiece(String name, @TempDir Path tmp) throws IOException {
        Path d = materialize(name, tmp);
        T5Tokenizer tok = T5Tokenizer.fromSentencePiece(d.resolve("spiece.model"));
        Map<String, Object> ref = Refs.obj(Refs.reference(), "t5", name, "sentencepiece");
        assertEquals(Json.asInt(ref.get("eos_id"), "eos", "ref"), tok.eosId());
        assertEquals(Json.asInt(ref.get("pad_id"), "pad", "ref"), tok.padId());
        assertEquals(Json.asInt(ref.get("unk_id"), "unk", "ref"), tok.unkId());
        assertAllPrompts(tok, ref, name + "/spiece.model");
    }

    /** Padding and truncation to 512 (Flux dev) and 256 (schnell) against tokenizers' enable_truncation/enable_padding. */
    @ParameterizedTest(name = "{0} padded 512/256")
    @MethodSource("models")
    void paddingAndTruncationMatchHuggingFace(String name, @TempDir Path tmp) throws IOException {
        Path d = materialize(name, tmp);
        T5Tokenizer tok = T5Tokenizer.fromTokenizerJson(d.resolve("tokenizer.json"));
        List<String> prompts = Refs.prompts();
        for (int n : new int[] {T5Tokenizer.FLUX_DEV_MAX_LENGTH, T5Tokenizer.FLUX_SCHNELL_MAX_LENGTH}) {
            Map<String, Object> padded = Refs.obj(Refs.reference(), "t5", name, "tokenizers", "padded_" + n);
            assertEquals(5, padded.size());
            for (Map.Entry<String, Object> e : padded.entrySet()) {
                int i = Integer.parseInt(e.getKey());
                Encoding enc = tok.encode(prompts.get(i), n, true, true);
                Map<?, ?> r = (Map<?, ?>) e.getValue();
                assertArrayEquals(Refs.ints(r.get("ids")), enc.ids(), name + " #" + i + " ids, max " + n);
                assertArrayEquals(Refs.ints(r.get("mask")), enc.attentionMask(), name + " #" + i + " mask, max " + n);
            }
        }
    }

    /** The tokenizer.json that transformers 5's own T5Converter made from trained-nfkc/spiece.model (Metaspace "always"). */
    @Test
    void transformersConvertedTokenizerJsonMatches(@TempDir Path tmp) throws IOException {
        Path f = Refs.extract("tokenizer/trained-nfkc/converted-tokenizer.json.gz", tmp, "tokenizer.json");
        Map<String, Object> ref = Refs.obj(Refs.reference(), "t5", "trained-nfkc", "transformers_converted");
        assertEquals(ref.get("file_sha256"), Refs.sha256(f));
        assertAllPrompts(T5Tokenizer.fromFolder(tmp), ref, "converted tokenizer.json");
    }

    /** The two readers of the same model agree except on special-token text and literal "<0xNN>" text, as the references do. */
    @ParameterizedTest(name = "{0} json vs spm")
    @MethodSource("models")
    void fileKindsDifferOnlyWhereReferencesDiffer(String name) {
        Map<String, Object> hf = Refs.obj(Refs.reference(), "t5", name, "tokenizers");
        Map<String, Object> sp = Refs.obj(Refs.reference(), "t5", name, "sentencepiece");
        List<Integer> differ = new ArrayList<>();
        for (int i = 0; i < Refs.prompts().size(); i++)
            if (!Arrays.equals(Refs.promptIds(hf, i, "ids"), Refs.promptIds(sp, i, "ids"))) differ.add(i);
        // #38 spells </s>, <pad>, <unk>, <extra_id_0> (added tokens for tokenizers, plain text for sentencepiece);
        // #39 spells "<0x41>", a byte piece that tokenizers matches in text when the model has byte pieces.
        assertEquals(name.endsWith("bytes") ? List.of(38, 39) : List.of(38), differ);
    }
}
