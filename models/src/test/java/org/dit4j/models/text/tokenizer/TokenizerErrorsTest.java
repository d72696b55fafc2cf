package org.dit4j.models.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Missing and corrupt files give errors that name the file, what was expected and what was found. */
class TokenizerErrorsTest {

    private static void assertMessage(Throwable t, String... parts) {
        for (String p : parts)
            assertTrue(t.getMessage().contains(p), "message should contain \"" + p + "\": " + t.getMessage());
    }

    @Test
    void missingFolderContents(@TempDir Path tmp) {
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromFolder(tmp)),
                tmp.toString(), "vocab.json + merges.txt", "tokenizer.json");
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromFolder(tmp)),
                tmp.toString(), "tokenizer.json or spiece.model");
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromSentencePiece(tmp.resolve("spiece.model"))),
                "missing", "spiece.model", "does not exist");
        assertMessage(assertThrows(TokenizerException.class,
                () -> ClipTokenizer.fromVocabAndMerges(tmp.resolve("vocab.json"), tmp.resolve("merges.txt"))), "missing", "vocab.json");
    }

    @Test
    void corruptClipFiles(@TempDir Path tmp) throws IOException {
        TokenizerBehaviourTest.tinyClip(tmp);
        String vocab = Files.readString(tmp.resolve("vocab.json"));
        Files.writeString(tmp.resolve("vocab.json"), vocab.substring(0, vocab.length() / 2));
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromFolder(tmp)),
                "vocab.json", "invalid JSON", "character");

        TokenizerBehaviourTest.tinyClip(tmp);
        Files.writeString(tmp.resolve("merges.txt"), "#version: 0.2\nl o\nthree parts here\n");
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromFolder(tmp)),
                "merges.txt line 3", "two symbols", "three parts here");

        TokenizerBehaviourTest.tinyClip(tmp);
        Files.writeString(tmp.resolve("vocab.json"), "{\"a\": 0, \"b\": 1}");
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromFolder(tmp)),
                "no token \"<|startoftext|>\"", "not a CLIP vocabulary");

        Files.writeString(tmp.resolve("vocab.json"), "{\"a\": \"zero\"}");
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromFolder(tmp)),
                "the id of token \"a\" must be a number", "\"zero\"");

        Path tj = Files.createDirectories(tmp.resolve("json")).resolve("tokenizer.json");
        Files.writeString(tj, "{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}");
        assertMessage(assertThrows(TokenizerException.class, () -> ClipTokenizer.fromTokenizerJson(tj, null)),
                "model.type is \"Unigram\"", "needs \"BPE\"");
    }

    @Test
    void corruptSentencePieceModel(@TempDir Path tmp) throws IOException {
        SyntheticUnigram.write(tmp);
        Path sp = tmp.resolve("t5-synthetic/spiece.model");
        byte[] good = Files.readAllBytes(sp);
        Files.write(sp, Arrays.copyOf(good, good.length - 7));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromSentencePiece(sp)),
                "spiece.model", "not a valid SentencePiece model", "runs past the end");

        Files.write(sp, "{\"this is\": \"json\"}".getBytes());
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromSentencePiece(sp)),
                "not a valid SentencePiece model");

        // The same model marked BPE (trainer_spec.model_type = 2), as Llama's tokenizer.model is: refused.
        byte[] bpe = good.clone();
        int at = indexOf(bpe, new byte[] {0x18, 0x01}); // TrainerSpec field 3 (model_type) = 1, the first in the spec
        bpe[at + 1] = 2;
        Files.write(sp, bpe);
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromSentencePiece(sp)),
                "model type is BPE", "UNIGRAM");
    }

    private static int indexOf(byte[] b, byte[] pat) {
        // search after the pieces: the trainer spec starts with tag 0x12 after the last piece
        for (int i = b.length - pat.length; i >= 0; i--) {
            if (b[i] == pat[0] && b[i + 1] == pat[1] && i >= 2 && b[i - 2] == 0x12) return i;
        }
        throw new IllegalStateException("pattern not found");
    }

    @Test
    void unsupportedOrCorruptTokenizerJson(@TempDir Path tmp) throws IOException {
        SyntheticUnigram.write(tmp);
        Path tj = tmp.resolve("t5-synthetic/tokenizer.json");
        String good = Files.readString(tj);

        Files.writeString(tj, good.replace("{\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true}", "{\"type\": \"BertNormalizer\"}"));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "normalizer.normalizers[0] has type \"BertNormalizer\"", "does not implement", "supported:");

        Files.writeString(tj, good.replace("\"type\": \"Metaspace\", \"replacement\"", "\"type\": \"ByteLevel\", \"replacement\""));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "pre_tokenizer has type \"ByteLevel\"");

        Files.writeString(tj, good.replace("\"type\": \"Unigram\"", "\"type\": \"WordPiece\""));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "model.type is \"WordPiece\"", "\"Unigram\"");

        Files.writeString(tj, good.replace("\"unk_id\": 2", "\"unk_id\": 99999"));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "unk id 99999", "not a piece");

        Files.writeString(tj, good.substring(0, good.length() - 3));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "tokenizer.json: invalid JSON", "end of input");

        Files.writeString(tj, good.replace("{\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true}",
                "{\"type\": \"Precompiled\", \"precompiled_charsmap\": \"AAAAAAAA\"}"));
        assertMessage(assertThrows(TokenizerException.class, () -> T5Tokenizer.fromTokenizerJson(tj)),
                "precompiled_charsmap is corrupt");
    }
}
