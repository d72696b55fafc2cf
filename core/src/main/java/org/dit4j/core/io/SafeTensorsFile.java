package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.HostBuffer;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One .safetensors file, memory-mapped once (FFM, {@link FileChannel#map(FileChannel.MapMode, long, long, Arena)}
 * into a shared arena); its tensors are zero-copy host views of the mapping, readable from any thread.
 * <p>
 * {@link #open} validates the whole header eagerly (see {@link SafeTensorsHeader} for the rules), so every
 * tensor of an opened file lies inside the file and no two tensors overlap. Tensors whose dtype the format
 * defines but {@link DType} lacks (e.g. F64, U8) are listed by {@link #names()}; {@link #info} and
 * {@link #tensor} fail for them with a message naming the tensor and dtype; {@link #dtypeName} still answers.
 * <p>
 * {@link #close()} unmaps the file: tensors obtained from it must not be used afterwards (reads then fail with
 * {@link IllegalStateException}, they never touch unmapped memory).
 * <pre>
 * try (SafeTensorsFile f = SafeTensorsFile.open(path)) {
 *     Tensor w = f.tensor("double_blocks.0.img_attn.qkv.weight");   // [9216, 3072] BF16, no copy
 * }
 * </pre>
 */
public final class SafeTensorsFile implements AutoCloseable {
    private final Path path;
    private final Arena arena;             // null for in-memory files (tests)
    private final MemorySegment file;
    private final SafeTensorsHeader header;
    private final Map<String, SafeTensorsHeader.Entry> byName;
    private final List<String> names;
    private volatile boolean closed;

    private SafeTensorsFile(Path path, Arena arena, MemorySegment file, SafeTensorsHeader header) {
        this.path = path;
        this.arena = arena;
        this.file = file;
        this.header = header;
        Map<String, SafeTensorsHeader.Entry> m = HashMap.newHashMap(header.entries.size());
        List<String> n = new ArrayList<>(header.entries.size());
        for (SafeTensorsHeader.Entry e : header.entries) {
            m.put(e.name(), e);
            n.add(e.name());
        }
        this.byName = m;
        this.names = Collections.unmodifiableList(n);
    }

    /** Maps {@code file} and validates its header; fails with {@link CheckpointException} for anything malformed. */
    public static SafeTensorsFile open(Path file) {
        Objects.requireNonNull(file, "file");
        if (Files.isDirectory(file))
            throw new CheckpointException(file + " is a directory, not a .safetensors file; open it with WeightSource.open");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new CheckpointException("safetensors file " + file + " is " + size + " bytes long, shorter than the 8-byte"
                        + " header-length prefix of a safetensors file; the file is damaged or truncated — re-download it");
            }
            Arena arena = Arena.ofShared();
            try {
                MemorySegment seg = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
                return new SafeTensorsFile(file, arena, seg, SafeTensorsHeader.parse(seg, file.toString()));
            } catch (Throwable t) {
                arena.close();
                throw t;
            }
        } catch (NoSuchFileException e) {
            throw new CheckpointException("safetensors file " + file + " does not exist; check the path", e);
        } catch (AccessDeniedException e) {
            throw new CheckpointException("safetensors file " + file + " cannot be read (access denied); check its permissions", e);
        } catch (IOException e) {
            throw new CheckpointException("safetensors file " + file + " cannot be read: " + e, e);
        }
    }

    /**
     * A file over bytes already in memory (not mapped; close() releases nothing). Same validation as
     * {@link #open}; {@code name} is used in messages.
     */
    static SafeTensorsFile fromBytes(Path name, MemorySegment bytes) {
        return new SafeTensorsFile(name, null, bytes, SafeTensorsHeader.parse(bytes, name.toString()));
    }

    public Path path() { return path; }

    /** The header's "__metadata__" (string to string), empty when absent. */
    public Map<String, String> metadata() { return header.metadata; }

    /** Tensor names in header order. */
    public List<String> names() { return names; }

    public boolean contains(String name) { return byName.containsKey(name); }

    /** The dtype as spelled in the header (also for dtypes dit4j does not support). */
    public String dtypeName(String name) { return entry(name).dtypeName(); }

    /** Where tensor {@code name} lies; fails if it is missing or of a dtype dit4j does not support. */
    public TensorInfo info(String name) {
        SafeTensorsHeader.Entry e = entry(name);
        return new TensorInfo(e.name(), supportedDType(e), Shape.of(e.shape()), header.dataStart + e.begin(), e.end() - e.begin());
    }

    /** A host tensor viewing the mapped bytes of {@code name} (no copy; valid until {@link #close()}). */
    public Tensor tensor(String name) {
        SafeTensorsHeader.Entry e = entry(name);
        DType dt = supportedDType(e);
        if (closed) throw new IllegalStateException("safetensors file " + path + " is closed; its tensors can no longer be read");
        MemorySegment bytes = file.asSlice(header.dataStart + e.begin(), e.end() - e.begin());
        return Tensor.wrap(Shape.of(e.shape()), dt, HostBuffer.borrow(bytes), 0);
    }

    /** The whole mapped file (header included), e.g. for bulk uploads; valid until {@link #close()}. */
    public MemorySegment segment() { return file; }

    /** Byte length of the file. */
    public long byteSize() { return file.byteSize(); }

    /** Unmaps the file. Idempotent. */
    @Override public void close() {
        if (closed) return;
        synchronized (this) {
            if (closed) return;
            if (arena != null) arena.close();   // throws, leaving the file open, while a native call uses the mapping
            closed = true;
        }
    }

    @Override public String toString() { return "SafeTensorsFile[" + path + ", " + names.size() + " tensors]"; }

    private SafeTensorsHeader.Entry entry(String name) {
        SafeTensorsHeader.Entry e = byName.get(name);
        if (e == null)
            throw new CheckpointException("tensor " + Json.quote(String.valueOf(name)) + " is not in safetensors file " + path
                    + " (" + names.size() + " tensors)." + Names.suggestion(String.valueOf(name), names)
                    + " Check that the file holds the model you meant and that the name's prefix matches its layout.");
        return e;
    }

    private DType supportedDType(SafeTensorsHeader.Entry e) {
        if (e.dtype() != null) return e.dtype();
        StringBuilder known = new StringBuilder();
        for (DType d : DType.values()) known.append(known.isEmpty() ? "" : ", ").append(d.safetensorsName());
        throw new CheckpointException("tensor " + Json.quote(e.name()) + " in safetensors file " + path + " has dtype "
                + e.dtypeName() + ", which dit4j does not support (supported: " + known
                + "); convert the checkpoint to one of these dtypes, or skip this tensor");
    }
}
