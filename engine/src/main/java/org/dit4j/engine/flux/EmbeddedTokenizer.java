package org.dit4j.engine.flux;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;

/**
 * A SentencePiece model stored inside a text-encoder checkpoint as a U8 tensor named {@code spiece_model} (with or
 * without a prefix), as ComfyUI's umT5/T5 files may carry it. U8 is not a tensor dtype dit4j computes with, so the
 * bytes are read straight from the safetensors header's offsets.
 */
public final class EmbeddedTokenizer {
    private EmbeddedTokenizer() {}

    private static final long MAX_HEADER = 100_000_000L;

    /** True when {@code file} is a safetensors file with a {@code spiece_model} tensor. */
    public static boolean hasSpieceModel(Path file) {
        if (file == null || !Files.isRegularFile(file) || !file.getFileName().toString().endsWith(".safetensors")) return false;
        try {
            return find(header(file)) != null;
        } catch (RuntimeException e) {
            return false;
        }
    }

    /** The serialized SentencePiece ModelProto stored in {@code file}. */
    public static byte[] spieceModel(Path file) {
        Map<?, ?> h = header(file);
        String name = find(h);
        if (name == null) throw new CheckpointException(file + " holds no 'spiece_model' tensor (no embedded tokenizer)");
        Map<?, ?> e = (Map<?, ?>) h.get(name);
        List<?> off = (List<?>) e.get("data_offsets");
        long begin = ((Number) off.get(0)).longValue(), end = ((Number) off.get(1)).longValue();
        if (end - begin > Integer.MAX_VALUE - 16 || end < begin)
            throw new CheckpointException(file + ": tensor '" + name + "' has impossible data offsets " + off);
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long base = 8 + headerLength(ch, file);
            ByteBuffer buf = ByteBuffer.allocate((int) (end - begin));
            ch.read(buf, base + begin);
            if (buf.hasRemaining()) throw new CheckpointException(file + " ends inside tensor '" + name + "' (the file is truncated)");
            return buf.array();
        } catch (IOException ex) {
            throw new CheckpointException("cannot read the embedded tokenizer of " + file + ": " + ex.getMessage(), ex);
        }
    }

    private static String find(Map<?, ?> header) {
        for (Object k : header.keySet()) {
            if (k instanceof String s && (s.equals("spiece_model") || s.endsWith(".spiece_model"))
                    && header.get(s) instanceof Map<?, ?> e && "U8".equals(e.get("dtype"))) return s;
        }
        return null;
    }

    private static Map<?, ?> header(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long n = headerLength(ch, file);
            ByteBuffer buf = ByteBuffer.allocate((int) n);
            ch.read(buf, 8);
            Object o = Json.parse(new String(buf.array(), 0, buf.position(), StandardCharsets.UTF_8));
            if (!(o instanceof Map<?, ?> m)) throw new CheckpointException(file + ": the safetensors header is not a JSON object");
            return m;
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + file + ": " + e.getMessage(), e);
        }
    }

    private static long headerLength(FileChannel ch, Path file) throws IOException {
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        ch.read(len, 0);
        long n = len.getLong(0);
        if (n <= 0 || n > MAX_HEADER || n > ch.size() - 8) throw new CheckpointException(file + " is not a safetensors file");
        return n;
    }
}
