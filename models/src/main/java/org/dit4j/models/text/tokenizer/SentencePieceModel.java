package org.dit4j.models.text.tokenizer;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The parts of a SentencePiece {@code ModelProto} ({@code spiece.model}, {@code tokenizer.model}) that encoding
 * needs, read with a hand-written protobuf reader. Fields (sentencepiece_model.proto):
 * <pre>
 * ModelProto      1: repeated SentencePiece pieces   2: TrainerSpec   3: NormalizerSpec
 * SentencePiece   1: string piece   2: float score   3: Type (1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE)
 * TrainerSpec     3: model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR)   24: treat_whitespace_as_suffix
 *                 35: byte_fallback   40: unk_id   41: bos_id   42: eos_id   43: pad_id
 * NormalizerSpec  1: name   2: bytes precompiled_charsmap   3: add_dummy_prefix (default true)
 *                 4: remove_extra_whitespaces (default true)   5: escape_whitespaces (default true)
 * </pre>
 * Everything else is skipped.
 */
public record SentencePieceModel(List<Piece> pieces, int modelType, boolean byteFallback, boolean treatWhitespaceAsSuffix,
                                 int unkId, int bosId, int eosId, int padId, String normalizerName, byte[] precompiledCharsmap,
                                 boolean addDummyPrefix, boolean removeExtraWhitespaces, boolean escapeWhitespaces) {

    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
    public static final int UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4;

    public record Piece(String piece, float score, int type) {}

    public static SentencePieceModel read(Path file) {
        return parse(Text.readBytes(file, "SentencePiece model"), file.toString());
    }

    /** Parses the serialized ModelProto in {@code bytes}; {@code source} names it in errors. */
    public static SentencePieceModel parse(byte[] bytes, String source) {
        try {
            return parseOrThrow(bytes, source);
        } catch (ProtoException e) {
            throw new TokenizerException(source + ": not a valid SentencePiece model (" + e.getMessage()
                    + "). The file is corrupt or of another kind; download spiece.model again.", e);
        }
    }

    private static SentencePieceModel parseOrThrow(byte[] bytes, String source) {
        List<Piece> pieces = new ArrayList<>();
        int modelType = UNIGRAM;
        boolean byteFallback = false, suffix = false;
        int unkId = 0, bosId = 1, eosId = 2, padId = -1;
        String normName = "";
        byte[] charsmap = new byte[0];
        boolean dummy = true, removeWs = true, escapeWs = true;

        Reader r = new Reader(bytes, 0, bytes.length);
        while (r.more()) {
            int tag = r.varint32();
            int field = tag >>> 3, wt = tag & 7;
            if (field == 1 && wt == 2) {
                Reader p = r.sub();
                String piece = null;
                float score = 0;
                int type = NORMAL;
                while (p.more()) {
                    int t = p.varint32();
                    int f = t >>> 3, w = t & 7;
                    if (f == 1 && w == 2) piece = p.string();
                    else if (f == 2 && w == 5) score = Float.intBitsToFloat(p.fixed32());
                    else if (f == 3 && w == 0) type = (int) p.varint();
                    else p.skip(w);
                }
                if (piece == null) throw new ProtoException("piece #" + pieces.size() + " has no text");
                pieces.add(new Piece(piece, score, type));
            } else if (field == 2 && wt == 2) {
                Reader t = r.sub();
                while (t.more()) {
                    int tg = t.varint32();
                    int f = tg >>> 3, w = tg & 7;
                    if (w == 0 && (f == 3 || f == 24 || f == 35 || f == 40 || f == 41 || f == 42 || f == 43)) {
                        int v = (int) t.varint();
                        switch (f) {
                            case 3 -> modelType = v;
                            case 24 -> suffix = v != 0;
                            case 35 -> byteFallback = v != 0;
                            case 40 -> unkId = v;
                            case 41 -> bosId = v;
                            case 42 -> eosId = v;
                            default -> padId = v;
                        }
                    } else t.skip(w);
                }
            } else if (field == 3 && wt == 2) {
                Reader n = r.sub();
                while (n.more()) {
                    int tg = n.varint32();
                    int f = tg >>> 3, w = tg & 7;
                    if (f == 1 && w == 2) normName = n.string();
                    else if (f == 2 && w == 2) charsmap = n.bytes();
                    else if (f == 3 && w == 0) dummy = n.varint() != 0;
                    else if (f == 4 && w == 0) removeWs = n.varint() != 0;
                    else if (f == 5 && w == 0) escapeWs = n.varint() != 0;
                    else n.skip(w);
                }
            } else {
                r.skip(wt);
            }
        }
        if (pieces.isEmpty()) throw new ProtoException("it holds no pieces");
        return new SentencePieceModel(List.copyOf(pieces), modelType, byteFallback, suffix, unkId, bosId, eosId, padId,
                normName, charsmap, dummy, removeWs, escapeWs);
    }

    static final class ProtoException extends RuntimeException {
        ProtoException(String m) { super(m); }
    }

    /** A bounded protobuf wire-format reader. */
    static final class Reader {
        private final byte[] b;
        private int pos;
        private final int end;

        Reader(byte[] b, int pos, int end) {
            this.b = b;
            this.pos = pos;
            this.end = end;
        }

        boolean more() { return pos < end; }

        long varint() {
            long v = 0;
            for (int shift = 0; shift < 64; shift += 7) {
                if (pos >= end) throw new ProtoException("truncated varint at byte " + pos);
                int x = b[pos++] & 0xFF;
                v |= (long) (x & 0x7F) << shift;
                if ((x & 0x80) == 0) return v;
            }
            throw new ProtoException("varint longer than 10 bytes at byte " + pos);
        }

        int varint32() { return (int) varint(); }

        int fixed32() {
            need(4);
            int v = (b[pos] & 0xFF) | (b[pos + 1] & 0xFF) << 8 | (b[pos + 2] & 0xFF) << 16 | (b[pos + 3] & 0xFF) << 24;
            pos += 4;
            return v;
        }

        private int length() {
            long len = varint();
            if (len < 0 || len > end - pos) throw new ProtoException("length " + len + " at byte " + pos + " runs past the end (" + end + ")");
            return (int) len;
        }

        Reader sub() {
            int len = length();
            Reader r = new Reader(b, pos, pos + len);
            pos += len;
            return r;
        }

        byte[] bytes() {
            int len = length();
            byte[] out = java.util.Arrays.copyOfRange(b, pos, pos + len);
            pos += len;
            return out;
        }

        String string() { return new String(bytes(), StandardCharsets.UTF_8); }

        void skip(int wireType) {
            switch (wireType) {
                case 0 -> varint();
                case 1 -> { need(8); pos += 8; }
                case 2 -> {
                    int len = length(); // read first: `pos += length()` would use the old pos
                    pos += len;
                }
                case 5 -> { need(4); pos += 4; }
                default -> throw new ProtoException("unsupported wire type " + wireType + " at byte " + pos);
            }
        }

        private void need(int n) {
            if (end - pos < n) throw new ProtoException("truncated field at byte " + pos);
        }
    }
}
