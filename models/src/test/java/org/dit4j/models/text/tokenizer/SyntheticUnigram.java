package org.dit4j.models.text.tokenizer;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A small hand-made T5-style Unigram vocabulary, written both as a SentencePiece {@code spiece.model} (protobuf)
 * and as a Hugging Face {@code tokenizer.json} in the layout of the T5-v1.1 file that Flux ships (Strip right,
 * Replace " {2,}" → "▁", Metaspace prepend "first", TemplateProcessing "$A &lt;/s&gt;"; no charsmap: identity
 * normalization). Two variants: plain (unknown → &lt;unk&gt;) and byte fallback (256 BYTE pieces).
 * The reference ids in {@code tokenizer/reference.json} were computed on these exact bytes (their SHA-256 is
 * recorded there). {@code main(outDir)} writes the four files.
 */
final class SyntheticUnigram {
    private SyntheticUnigram() {}

    record P(String piece, float score, int type) {}

    static final String[] WORDS = {
        "the", "a", "an", "of", "and", "in", "on", "at", "to", "for", "by", "from", "with", "is", "it",
        "cat", "dog", "photo", "sat", "mat", "red", "blue", "big", "small", "house", "tree", "sun", "set", "sunset",
        "high", "highly", "detail", "detailed", "paint", "painting", "city", "night", "light", "lights", "street",
        "woman", "man", "portrait", "style", "art", "Hello", "World", "The", "A", "I", "lion", "rock", "shot",
        "cinematic", "baby", "raccoon", "wearing", "priest", "robe", "trending", "majestic", "standing",
    };
    static final String[] SUBWORDS = {
        "ing", "ed", "er", "s", "ly", "tion", "al", "es", "en", "re", "in", "on", "at", "an", "th", "he", "ll", "oo",
        "ee", "ph", "ot", "og", "ra", "ca", "ti", "st", "nd", "ou", "ar", "or", "it", "is", "le", "ne", "te", "de",
        "se", "co", "ma", "ro", "lo", "li", "la", "na", "ri", "ve", "ce", "'s", "n't", "...", ")", "24", "20", "00",
        "日本", "é", "ï", "ü", "ñ", "ç", "à", "ö", "å", "è", "ß",
    };
    static final String SINGLES = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()/&%$#@+=_*";

    /** The piece list: &lt;pad&gt; &lt;/s&gt; &lt;unk&gt;, [256 byte pieces], "▁", words, subwords, single characters. */
    static List<P> pieces(boolean byteFallback) {
        List<P> out = new ArrayList<>();
        out.add(new P("<pad>", 0f, SentencePieceModel.CONTROL));
        out.add(new P("</s>", 0f, SentencePieceModel.CONTROL));
        out.add(new P("<unk>", 0f, SentencePieceModel.UNKNOWN));
        if (byteFallback)
            for (int b = 0; b < 256; b++) out.add(new P(String.format("<0x%02X>", b), 0f, SentencePieceModel.BYTE));
        Set<String> seen = new LinkedHashSet<>();
        List<String> order = new ArrayList<>();
        order.add("\u2581");
        for (String w : WORDS) order.add("\u2581" + w);
        order.add("\u2581(");
        order.add("\u2581\"");
        order.add("\u2581-");
        order.add("\u25811");
        order.add("\u25812");
        order.add("\u2581caf");
        order.add("\u2581na");
        for (String s : SUBWORDS) order.add(s);
        SINGLES.codePoints().forEach(cp -> order.add(Character.toString(cp)));
        int k = 0;
        for (String s : order) {
            if (!seen.add(s)) continue;
            float score;
            // Round scores for ▁sun and ▁sunset ("set" is only a word piece, ▁set, so no tie arises here;
            // ties are tested directly on Unigram).
            if (s.equals("\u2581sun")) score = -3f;
            else if (s.equals("\u2581sunset")) score = -7f;
            else if (s.equals("\u2581")) score = -2.0122928619384766f;
            else score = -(2.5f + 0.0625f * k + (s.length() == 1 ? 3.1f : 0f) + ((k * 7919) % 13) * 0.137f);
            out.add(new P(s, score, SentencePieceModel.NORMAL));
            k++;
        }
        return out;
    }

    // ------------------------------------------------------------------ spiece.model

    static byte[] spieceModel(boolean byteFallback) {
        List<P> pieces = pieces(byteFallback);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (P p : pieces) {
            ByteArrayOutputStream sp = new ByteArrayOutputStream();
            bytesField(sp, 1, p.piece.getBytes(StandardCharsets.UTF_8));
            tag(sp, 2, 5);
            int bits = Float.floatToIntBits(p.score);
            for (int i = 0; i < 4; i++) sp.write((bits >>> (8 * i)) & 0xFF);
            if (p.type != SentencePieceModel.NORMAL) varintField(sp, 3, p.type);
            bytesField(out, 1, sp.toByteArray());
        }
        ByteArrayOutputStream trainer = new ByteArrayOutputStream();
        varintField(trainer, 3, SentencePieceModel.UNIGRAM);
        varintField(trainer, 4, pieces.size());
        if (byteFallback) varintField(trainer, 35, 1);
        varintField(trainer, 40, 2);
        varintField(trainer, 41, -1);
        varintField(trainer, 42, 1);
        varintField(trainer, 43, 0);
        bytesField(out, 2, trainer.toByteArray());
        ByteArrayOutputStream norm = new ByteArrayOutputStream();
        bytesField(norm, 1, "identity".getBytes(StandardCharsets.UTF_8));
        varintField(norm, 3, 1);
        varintField(norm, 4, 1);
        varintField(norm, 5, 1);
        bytesField(out, 3, norm.toByteArray());
        return out.toByteArray();
    }

    private static void tag(ByteArrayOutputStream o, int field, int wireType) { varint(o, ((long) field << 3) | wireType); }

    private static void varintField(ByteArrayOutputStream o, int field, int v) {
        tag(o, field, 0);
        varint(o, v); // negative int32 → 10-byte two's complement varint, as protobuf does
    }

    private static void bytesField(ByteArrayOutputStream o, int field, byte[] b) {
        tag(o, field, 2);
        varint(o, b.length);
        o.writeBytes(b);
    }

    private static void varint(ByteArrayOutputStream o, long v) {
        while ((v & ~0x7FL) != 0) {
            o.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        o.write((int) v);
    }

    // ------------------------------------------------------------------ tokenizer.json

    static String tokenizerJson(boolean byteFallback) {
        List<P> pieces = pieces(byteFallback);
        int n = pieces.size();
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n");
        String[][] added = {{"0", "<pad>"}, {"1", "</s>"}, {"2", "<unk>"}, {String.valueOf(n), "<extra_id_1>"}, {String.valueOf(n + 1), "<extra_id_0>"}};
        for (int i = 0; i < added.length; i++) {
            sb.append("    {\"id\": ").append(added[i][0]).append(", \"content\": ").append(quote(added[i][1]))
              .append(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}")
              .append(i + 1 < added.length ? ",\n" : "\n");
        }
        sb.append("  ],\n");
        sb.append("  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [\n");
        sb.append("    {\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true},\n");
        sb.append("    {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" {2,}\"}, \"content\": \"\u2581\"}]},\n");
        sb.append("  \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"add_prefix_space\": true, \"prepend_scheme\": \"first\"},\n");
        sb.append("  \"post_processor\": {\"type\": \"TemplateProcessing\",\n");
        sb.append("    \"single\": [{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}],\n");
        sb.append("    \"pair\": [{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}},"
                + " {\"Sequence\": {\"id\": \"B\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}],\n");
        sb.append("    \"special_tokens\": {\"</s>\": {\"id\": \"</s>\", \"ids\": [1], \"tokens\": [\"</s>\"]}}},\n");
        sb.append("  \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"add_prefix_space\": true, \"prepend_scheme\": \"always\"},\n");
        sb.append("  \"model\": {\"type\": \"Unigram\", \"unk_id\": 2, \"vocab\": [\n");
        for (int i = 0; i < n; i++) {
            P p = pieces.get(i);
            sb.append("    [").append(quote(p.piece)).append(", ").append((double) p.score).append("],\n");
        }
        sb.append("    [\"<extra_id_1>\", 0.0],\n    [\"<extra_id_0>\", 0.0]\n");
        sb.append("  ], \"byte_fallback\": ").append(byteFallback).append("}\n}\n");
        return sb.toString();
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    /** Writes {t5-synthetic, t5-synthetic-bytes}/{spiece.model, tokenizer.json} under {@code dir}. */
    static void write(Path dir) throws IOException {
        for (boolean bf : new boolean[] {false, true}) {
            Path d = dir.resolve(bf ? "t5-synthetic-bytes" : "t5-synthetic");
            Files.createDirectories(d);
            Files.write(d.resolve("spiece.model"), spieceModel(bf));
            Files.writeString(d.resolve("tokenizer.json"), tokenizerJson(bf), StandardCharsets.UTF_8);
        }
    }

    public static void main(String[] args) throws IOException {
        write(Path.of(args[0]));
    }
}
