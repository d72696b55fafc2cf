package org.dit4j.models.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * CLIP ids compared, exactly, with the reference ids of tokenizer/reference.json (transformers 5.17 /
 * tokenizers 0.23 on the GPU machine) for every prompt of the set, on the real ViT-L/14 vocabulary.
 */
class ClipTokenizerReferenceTest {
    private static Path vocabDir;

    @BeforeAll
    static void findVocabulary() {
        vocabDir = Refs.clipVocabDir();
        if (vocabDir == null)
            System.out.println("[skip] CLIP reference tests: ../shared/data/tokenizers/clip-vit-l-14 not found above "
                    + System.getProperty("user.dir") + " (set DIT4J_CLIP_VOCAB to the folder with vocab.json + merges.txt)");
    }

    private static ClipTokenizer load(ClipTokenizer.Cleaning cleaning) {
        Assumptions.assumeTrue(vocabDir != null, "CLIP vocabulary ../shared/data/tokenizers/clip-vit-l-14 not available");
        return ClipTokenizer.fromVocabAndMerges(vocabDir.resolve("vocab.json"), vocabDir.resolve("merges.txt"), cleaning, "<|endoftext|>");
    }

    @Test
    void referenceWasComputedOnTheseFiles() throws IOException {
        Assumptions.assumeTrue(vocabDir != null, "CLIP vocabulary not available");
        Map<String, Object> files = Refs.obj(Refs.reference(), "clip", "files");
        assertEquals(files.get("vocab.json"), Refs.sha256(vocabDir.resolve("vocab.json")), "vocab.json differs from the one the reference used");
        assertEquals(files.get("merges.txt"), Refs.sha256(vocabDir.resolve("merges.txt")), "merges.txt differs from the one the reference used");
    }

    /** HF_FAST against transformers 5's CLIPTokenizer, called as diffusers' Flux pipeline calls it (77, padded, truncated). */
    @Test
    void fastCleaningMatchesTransformersExactly() {
        ClipTokenizer tok = load(ClipTokenizer.Cleaning.HF_FAST);
        Map<String, Object> ref = Refs.obj(Refs.reference(), "clip", "transformers");
        assertEquals(true, ref.get("is_fast"), "the reference class is the tokenizers-backed CLIPTokenizer of transformers 5");
        assertEquals(49407, Json.asInt(ref.get("pad_token_id"), "pad", "ref"));
        List<String> prompts = Refs.prompts();
        List<String> bad = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            String p = prompts.get(i);
            Encoding padded = tok.encode(p);
            int[] full = tok.encode(p, 77, false, false).ids();
            if (!java.util.Arrays.equals(padded.ids(), Refs.promptIds(ref, i, "padded"))
                    || !java.util.Arrays.equals(padded.attentionMask(), Refs.promptIds(ref, i, "mask"))
                    || !java.util.Arrays.equals(full, Refs.promptIds(ref, i, "ids")))
                bad.add("#" + i + " " + Refs.show(p) + "\n   expected " + java.util.Arrays.toString(Refs.promptIds(ref, i, "ids"))
                        + "\n   got      " + java.util.Arrays.toString(full));
        }
        assertTrue(bad.isEmpty(), bad.size() + " of " + prompts.size() + " prompts differ:\n" + String.join("\n", bad));
    }

    /** HF_SLOW against the transformers ≤4 slow path (BasicTokenizer cleaning), as emulated by the reference script. */
    @Test
    void slowCleaningMatchesSlowPathExactly() {
        ClipTokenizer tok = load(ClipTokenizer.Cleaning.HF_SLOW);
        Map<String, Object> ref = Refs.obj(Refs.reference(), "clip", "slow_emulated");
        List<String> prompts = Refs.prompts();
        List<String> bad = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++) {
            int[] got = tok.encode(prompts.get(i), 77, false, false).ids();
            int[] exp = Refs.promptIds(ref, i, "ids");
            if (!java.util.Arrays.equals(got, exp))
                bad.add("#" + i + " " + Refs.show(prompts.get(i)) + "\n   expected " + java.util.Arrays.toString(exp)
                        + "\n   got      " + java.util.Arrays.toString(got));
        }
        assertTrue(bad.isEmpty(), bad.size() + " of " + prompts.size() + " prompts differ:\n" + String.join("\n", bad));
    }

    /** The two cleanings differ exactly on the prompts where the reference's two paths differ. */
    @Test
    void slowAndFastDifferOnlyWhereTheReferencesDiffer() {
        Map<String, Object> fast = Refs.obj(Refs.reference(), "clip", "transformers");
        Map<String, Object> slow = Refs.obj(Refs.reference(), "clip", "slow_emulated");
        List<String> prompts = Refs.prompts();
        List<Integer> differ = new ArrayList<>();
        for (int i = 0; i < prompts.size(); i++)
            if (!java.util.Arrays.equals(Refs.promptIds(fast, i, "ids"), Refs.promptIds(slow, i, "ids"))) differ.add(i);
        // CJK ideograph runs (12, 13, 14), final capital sigma (16), zero-width joiner (19), format/control characters
        // (27, 28), an upper-case special token spelled in the text (37).
        assertEquals(List.of(12, 13, 14, 16, 19, 27, 28, 37), differ);
    }

    /** A tokenizer.json of the layout transformers 5 saves for CLIP (written here from the same vocab/merges) gives the same ids. */
    @Test
    void tokenizerJsonMatchesTransformersExactly(@TempDir Path tmp) throws IOException {
        Assumptions.assumeTrue(vocabDir != null, "CLIP vocabulary not available");
        Path tj = writeClipTokenizerJson(vocabDir, tmp);
        ClipTokenizer tok = ClipTokenizer.fromFolder(tmp);
        assertEquals(ClipTokenizer.Cleaning.HF_FAST, tok.cleaning());
        Map<String, Object> ref = Refs.obj(Refs.reference(), "clip", "transformers");
        List<String> prompts = Refs.prompts();
        for (int i = 0; i < prompts.size(); i++)
            assertArrayEquals(Refs.promptIds(ref, i, "padded"), tok.encode(prompts.get(i)).ids(), "#" + i + " " + Refs.show(prompts.get(i)) + " from " + tj);
    }

    /** vocab.json + merges.txt → tokenizer.json in the layout of transformers 5's CLIPTokenizer.save (model.merges as pairs). */
    static Path writeClipTokenizerJson(Path vocabDir, Path outDir) throws IOException {
        Map<String, Object> vocab = Json.asObject(Json.parse(Files.readString(vocabDir.resolve("vocab.json")), "vocab"), "v", "v");
        String[] lines = Files.readString(vocabDir.resolve("merges.txt")).strip().split("\n");
        StringBuilder sb = new StringBuilder();
        sb.append("{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[")
          .append("{\"id\":49406,\"content\":\"<|startoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},")
          .append("{\"id\":49407,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],")
          .append("\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Lowercase\"}]},")
          .append("\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"<\\\\|startoftext\\\\|>|<\\\\|endoftext\\\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\\\p{L}]+|[\\\\p{N}]|[^\\\\s\\\\p{L}\\\\p{N}]+\"},\"behavior\":\"Removed\",\"invert\":true},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]},")
          .append("\"post_processor\":{\"type\":\"RobertaProcessing\",\"sep\":[\"<|endoftext|>\",49407],\"cls\":[\"<|startoftext|>\",49406],\"trim_offsets\":false,\"add_prefix_space\":false},")
          .append("\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},")
          .append("\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<|endoftext|>\",\"continuing_subword_prefix\":\"\",\"end_of_word_suffix\":\"</w>\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":{");
        boolean first = true;
        for (Map.Entry<String, Object> e : vocab.entrySet()) {
            if (!first) sb.append(',');
            first = false;
            sb.append(SyntheticUnigram.quote(e.getKey())).append(':').append(((Number) e.getValue()).intValue());
        }
        sb.append("},\"merges\":[");
        for (int i = 1; i < lines.length; i++) {
            String[] pr = lines[i].split(" ");
            if (i > 1) sb.append(',');
            sb.append('[').append(SyntheticUnigram.quote(pr[0])).append(',').append(SyntheticUnigram.quote(pr[1])).append(']');
        }
        sb.append("]}}");
        Path p = outDir.resolve("tokenizer.json");
        Files.writeString(p, sb, StandardCharsets.UTF_8);
        return p;
    }
}
