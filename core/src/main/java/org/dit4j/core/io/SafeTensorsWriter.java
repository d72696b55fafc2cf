package org.dit4j.core.io;

import org.dit4j.core.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Map;
import java.util.Objects;

/**
 * Writes host tensors as a .safetensors file: tensors in the map's iteration order, packed back to back; the
 * JSON header padded with spaces to a multiple of 8 bytes (so the data section starts 8-byte aligned), exactly
 * as the reference writer does. {@code "__metadata__"} comes first and is omitted when empty.
 * <p>
 * The file is written to a temporary sibling and moved into place, so readers never see a half-written file
 * and a file may be rewritten from tensors mapped from it.
 */
public final class SafeTensorsWriter {
    private static final long CHUNK = 64L << 20;
    private static final SecureRandom RANDOM = new SecureRandom();

    private SafeTensorsWriter() {}

    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        Objects.requireNonNull(file, "file");
        Objects.requireNonNull(tensors, "tensors");
        byte[] header = header(tensors, metadata == null ? Map.of() : metadata);
        Path dir = file.toAbsolutePath().getParent();
        Path tmp = null;
        try {
            // not Files.createTempFile: that makes the file owner-only (0600); this keeps the usual permissions
            tmp = dir.resolve("." + file.getFileName() + "." + Long.toUnsignedString(RANDOM.nextLong(), 36) + ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.CREATE_NEW)) {
                ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
                writeFully(ch, prefix);
                writeFully(ch, ByteBuffer.wrap(header));
                for (Tensor t : tensors.values()) {
                    MemorySegment seg = t.segment();
                    for (long off = 0; off < seg.byteSize(); off += CHUNK)
                        writeFully(ch, seg.asSlice(off, Math.min(CHUNK, seg.byteSize() - off)).asByteBuffer());
                }
                ch.force(false);
            }
            try {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
            tmp = null;
        } catch (IOException e) {
            throw new CheckpointException("cannot write safetensors file " + file + ": " + e
                    + "; check that the folder exists, is writable and has enough free space", e);
        } finally {
            if (tmp != null) {
                try { Files.deleteIfExists(tmp); } catch (IOException ignored) { /* best effort cleanup */ }
            }
        }
    }

    /** The padded JSON header for {@code tensors}; checks the arguments. */
    static byte[] header(Map<String, Tensor> tensors, Map<String, String> metadata) {
        StringBuilder b = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            b.append(Json.quote(SafeTensorsHeader.METADATA_KEY)).append(":{");
            boolean first = true;
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                if (e.getKey() == null || e.getValue() == null)
                    throw new IllegalArgumentException("safetensors metadata keys and values must not be null: " + e);
                b.append(first ? "" : ",").append(Json.quote(e.getKey())).append(':').append(Json.quote(e.getValue()));
                first = false;
            }
            b.append('}');
        }
        long offset = 0;
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            if (name == null || t == null) throw new IllegalArgumentException("null tensor name or tensor in " + tensors.keySet());
            if (name.equals(SafeTensorsHeader.METADATA_KEY))
                throw new IllegalArgumentException("\"__metadata__\" is reserved by the safetensors format and cannot name a tensor");
            if (!t.device().isCpu())
                throw new IllegalArgumentException("tensor " + Json.quote(name) + " lives on " + t.device()
                        + "; copy it to the host (ops.toHost) before writing it");
            long end = offset + t.byteSize();
            if (b.length() > 1) b.append(',');
            b.append(Json.quote(name)).append(":{\"dtype\":\"").append(t.dtype().safetensorsName())
                    .append("\",\"shape\":").append(Arrays.toString(t.shape().dims()).replace(" ", ""))
                    .append(",\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
        }
        b.append('}');
        byte[] json = b.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        byte[] out = Arrays.copyOf(json, padded);
        Arrays.fill(out, json.length, padded, (byte) ' ');
        return out;
    }

    private static void writeFully(FileChannel ch, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) ch.write(buf);
    }
}
