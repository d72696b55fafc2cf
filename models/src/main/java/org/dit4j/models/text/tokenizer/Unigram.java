package org.dit4j.models.text.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Unigram language-model segmentation (Viterbi over the lattice of vocabulary pieces), as SentencePiece's
 * {@code EncodeOptimized} and the Unigram model of Hugging Face {@code tokenizers} (which ports it) do it:
 * positions left to right; at each, every piece that is a prefix of the rest, shortest first, relaxes the node
 * where it ends if its path score is strictly higher (first found wins ties); when no one-character piece starts
 * at a position, an unknown node of one character with score {@code minScore - 10} is added. The best path is read
 * back; adjacent unknown pieces are fused into one. Unknown pieces become their UTF-8 bytes ({@code <0xXX>}) when
 * the model uses byte fallback, else the unk id.
 *
 * <p>The two implementations differ in small ways, kept here as {@link Flavor}: SentencePiece sums scores in
 * float, takes the minimum score over NORMAL pieces only, scores USER_DEFINED pieces {@code bytes·maxScore − 0.1},
 * never matches CONTROL/UNKNOWN/BYTE/UNUSED pieces in text; {@code tokenizers} sums in double and matches every
 * vocabulary entry.
 */
final class Unigram {
    enum Flavor { SENTENCEPIECE, HUGGING_FACE }

    private static final double UNK_PENALTY = 10.0;

    private final Flavor flavor;
    private final String[] pieces;
    private final double[] scores;
    private final Map<String, Integer> lattice;   // pieces matched in text
    private final Map<String, Integer> byId;      // every piece (for HF lookups of fused strings and byte pieces)
    private final boolean[] userDefined;
    private final int maxPieceChars;
    private final int unkId;
    private final boolean byteFallback;
    private final int[] byteIds;
    private final double unkScore;
    private final double maxScore;

    /**
     * @param types SentencePiece piece types (NORMAL…BYTE), or null for a tokenizer.json vocabulary (all matched)
     */
    Unigram(Flavor flavor, String[] pieces, double[] scores, int[] types, int unkId, boolean byteFallback, String source) {
        this.flavor = flavor;
        this.pieces = pieces;
        this.scores = scores;
        this.unkId = unkId;
        this.byteFallback = byteFallback;
        if (unkId < 0 || unkId >= pieces.length)
            throw new TokenizerException(source + ": unk id " + unkId + " is not a piece of the " + pieces.length + "-piece vocabulary.");
        lattice = new HashMap<>(pieces.length * 2);
        byId = new HashMap<>(pieces.length * 2);
        userDefined = new boolean[pieces.length];
        double min = Double.POSITIVE_INFINITY, max = Double.NEGATIVE_INFINITY;
        int maxLen = 1;
        for (int i = 0; i < pieces.length; i++) {
            byId.putIfAbsent(pieces[i], i);
            int t = types == null ? SentencePieceModel.NORMAL : types[i];
            boolean matched = flavor == Flavor.HUGGING_FACE
                    || t == SentencePieceModel.NORMAL || t == SentencePieceModel.USER_DEFINED;
            if (matched && !pieces[i].isEmpty()) {
                if (lattice.putIfAbsent(pieces[i], i) == null)
                    maxLen = Math.max(maxLen, pieces[i].codePointCount(0, pieces[i].length()));
            }
            userDefined[i] = t == SentencePieceModel.USER_DEFINED;
            if (flavor == Flavor.HUGGING_FACE || t == SentencePieceModel.NORMAL) {
                min = Math.min(min, scores[i]);
                max = Math.max(max, scores[i]);
            }
        }
        if (min == Double.POSITIVE_INFINITY) { min = 0; max = 0; }
        maxPieceChars = maxLen;
        maxScore = max;
        unkScore = flavor == Flavor.SENTENCEPIECE ? (float) ((float) min - (float) UNK_PENALTY) : min - UNK_PENALTY;
        byteIds = new int[256];
        for (int b = 0; b < 256; b++) {
            Integer id = byId.get(String.format("<0x%02X>", b));
            if (id != null && types != null && types[id] != SentencePieceModel.BYTE) id = null;
            byteIds[b] = id == null ? -1 : id;
        }
        if (byteFallback && flavor == Flavor.SENTENCEPIECE)
            for (int b = 0; b < 256; b++)
                if (byteIds[b] < 0)
                    throw new TokenizerException(source + ": the model uses byte fallback but has no BYTE piece <0x"
                            + String.format("%02X", b) + ">; the file is corrupt.");
    }

    int size() { return pieces.length; }
    String piece(int id) { return pieces[id]; }
    Integer id(String piece) { return byId.get(piece); }
    int unkId() { return unkId; }

    /** Segments {@code text} and appends the ids to {@code out}; the pieces (before byte fallback) go to {@code pieceOut} if not null. */
    void encode(String text, List<Integer> out, List<String> pieceOut) {
        if (text.isEmpty()) return;
        int n = text.length();
        // Lattice nodes are indexed by UTF-16 position; only code point boundaries are used.
        double[] best = new double[n + 1];
        int[] startOf = new int[n + 1];
        int[] idOf = new int[n + 1];
        java.util.Arrays.fill(startOf, -1);
        startOf[0] = 0;
        boolean sp = flavor == Flavor.SENTENCEPIECE;
        for (int start = 0; start < n; ) {
            int cp0 = text.codePointAt(start);
            int first = start + Character.charCount(cp0);
            double here = best[start];
            boolean single = false;
            int end = start;
            for (int len = 1; len <= maxPieceChars && end < n; len++) {
                end += Character.charCount(text.codePointAt(end));
                Integer id = lattice.get(text.substring(start, end));
                if (id == null) continue;
                double score;
                if (sp) {
                    float s = userDefined[id]
                            ? (float) ((double) (text.substring(start, end).getBytes(StandardCharsets.UTF_8).length * (float) maxScore) - 0.1)
                            : (float) scores[id];
                    score = (float) ((float) here + s);
                } else {
                    score = here + scores[id];
                }
                if (startOf[end] < 0 || score > best[end]) {
                    best[end] = score;
                    startOf[end] = start;
                    idOf[end] = id;
                }
                if (end == first) single = true;
            }
            if (!single) {
                double score = sp ? (float) ((float) here + (float) unkScore) : here + unkScore;
                if (startOf[first] < 0 || score > best[first]) {
                    best[first] = score;
                    startOf[first] = start;
                    idOf[first] = unkId;
                }
            }
            start = first;
        }
        // Read the best path back, fusing runs of unknown pieces.
        List<int[]> path = new ArrayList<>(); // {start, end, id}
        for (int end = n; end > 0; ) {
            int s = startOf[end];
            int id = idOf[end];
            if (id == unkId && !path.isEmpty() && path.get(path.size() - 1)[2] == unkId) path.get(path.size() - 1)[0] = s;
            else path.add(new int[] {s, end, id});
            end = s;
        }
        for (int k = path.size() - 1; k >= 0; k--) {
            int[] p = path.get(k);
            String surface = text.substring(p[0], p[1]);
            if (pieceOut != null) pieceOut.add(surface);
            int id = p[2];
            if (id == unkId && !sp) {
                Integer known = byId.get(surface);
                if (known != null) { out.add(known); continue; }
            }
            if (id == unkId && byteFallback && allBytesKnown(surface)) {
                for (byte b : surface.getBytes(StandardCharsets.UTF_8)) out.add(byteIds[b & 0xFF]);
            } else {
                out.add(id);
            }
        }
    }

    private boolean allBytesKnown(String s) {
        for (byte b : s.getBytes(StandardCharsets.UTF_8)) if (byteIds[b & 0xFF] < 0) return false;
        return true;
    }
}
