package org.dit4j.core.io;

import org.dit4j.core.tensor.Tensor;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * {@link WeightSource} over one or more mapped safetensors files.
 * <p>
 * For a sharded index the {@code "weight_map"} is authoritative: its names are this source's names, each must be in
 * the shard the index names, and tensors a shard holds beyond those are ignored (as Hugging Face loaders do).
 * The index's own {@code "metadata"} (e.g. total_size) is not checked.
 */
final class CheckpointFiles implements WeightSource {
    static final String INDEX_SUFFIX = ".safetensors.index.json";
    private static final long MAX_INDEX_BYTES = 100_000_000L;

    private final Path path;
    private final List<SafeTensorsFile> files;
    private final TreeMap<String, SafeTensorsFile> owner;
    private final Set<String> names;
    private final Map<String, String> metadata;
    private boolean closed;

    private CheckpointFiles(Path path, List<SafeTensorsFile> files, TreeMap<String, SafeTensorsFile> owner) {
        this.path = path;
        List<SafeTensorsFile> sorted = new ArrayList<>(files);
        sorted.sort(java.util.Comparator.comparing(SafeTensorsFile::path));
        this.files = List.copyOf(sorted);
        this.owner = owner;
        this.names = Collections.unmodifiableSet(owner.navigableKeySet());
        Map<String, String> meta = new LinkedHashMap<>();
        for (SafeTensorsFile f : this.files) for (Map.Entry<String, String> e : f.metadata().entrySet()) meta.putIfAbsent(e.getKey(), e.getValue());
        this.metadata = Collections.unmodifiableMap(meta);
    }

    static WeightSource open(Path path) {
        Objects.requireNonNull(path, "path");
        if (Files.isDirectory(path)) return openDirectory(path);
        if (!Files.exists(path)) throw new CheckpointException("checkpoint " + path + " does not exist; check the path");
        String n = path.getFileName().toString();
        if (n.endsWith(".json")) return openIndex(path);
        SafeTensorsFile f = SafeTensorsFile.open(path);
        TreeMap<String, SafeTensorsFile> owner = new TreeMap<>();
        for (String name : f.names()) owner.put(name, f);
        return new CheckpointFiles(path, List.of(f), owner);
    }

    private static WeightSource openDirectory(Path dir) {
        List<Path> indexes = new ArrayList<>();
        List<Path> shards = new ArrayList<>();
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : s.sorted().toList()) {
                String n = p.getFileName().toString();
                if (!Files.isRegularFile(p)) continue;
                if (n.endsWith(INDEX_SUFFIX)) indexes.add(p);
                else if (n.endsWith(".safetensors")) shards.add(p);
            }
        } catch (IOException e) {
            throw new CheckpointException("cannot list checkpoint folder " + dir + ": " + e, e);
        }
        if (indexes.size() == 1) return openIndex(indexes.getFirst());
        if (indexes.size() > 1)
            throw new CheckpointException("checkpoint folder " + dir + " has " + indexes.size() + " index files "
                    + fileNames(indexes) + "; open the index you want directly");
        if (shards.isEmpty())
            throw new CheckpointException("checkpoint folder " + dir + " has no *.safetensors files and no *" + INDEX_SUFFIX
                    + "; point to the folder that holds the weights (for diffusers models e.g. transformer/ or vae/)");
        List<SafeTensorsFile> files = new ArrayList<>();
        try {
            TreeMap<String, SafeTensorsFile> owner = new TreeMap<>();
            for (Path p : shards) {
                SafeTensorsFile f = SafeTensorsFile.open(p);
                files.add(f);
                for (String name : f.names()) {
                    SafeTensorsFile prev = owner.putIfAbsent(name, f);
                    if (prev != null)
                        throw new CheckpointException("checkpoint folder " + dir + ": tensor " + Json.quote(name) + " is in both "
                                + prev.path().getFileName() + " and " + p.getFileName() + "; the folder holds more than one"
                                + " checkpoint (e.g. two precisions) — open one file or an index instead");
                }
            }
            return new CheckpointFiles(dir, files, owner);
        } catch (RuntimeException e) {
            files.forEach(SafeTensorsFile::close);
            throw e;
        }
    }

    private static WeightSource openIndex(Path index) {
        Map<?, ?> weightMap = readWeightMap(index);
        Path dir = index.toAbsolutePath().getParent().normalize();
        Map<Path, SafeTensorsFile> shards = new LinkedHashMap<>();
        try {
            TreeMap<String, SafeTensorsFile> owner = new TreeMap<>();
            for (Map.Entry<?, ?> e : weightMap.entrySet()) {
                String name = (String) e.getKey();
                if (!(e.getValue() instanceof String shardName) || shardName.isEmpty())
                    throw new CheckpointException("index " + index + ": \"weight_map\" entry " + Json.quote(name) + " is "
                            + SafeTensorsHeader.describe(e.getValue()) + "; expected the file name of a shard");
                Path shard = resolveShard(index, dir, name, shardName);
                SafeTensorsFile f = shards.get(shard);
                if (f == null) {
                    if (!Files.exists(shard))
                        throw new CheckpointException("index " + index + " puts tensor " + Json.quote(name) + " in shard "
                                + shardName + ", but " + shard + " does not exist; download the missing shard");
                    f = SafeTensorsFile.open(shard);
                    shards.put(shard, f);
                }
                if (!f.contains(name))
                    throw new CheckpointException("index " + index + " puts tensor " + Json.quote(name) + " in shard " + shardName
                            + ", but that shard does not contain it." + Names.suggestion(name, f.names())
                            + " The index and the shards come from different versions; re-download them together");
                owner.put(name, f);
            }
            return new CheckpointFiles(index, new ArrayList<>(shards.values()), owner);
        } catch (RuntimeException e) {
            shards.values().forEach(SafeTensorsFile::close);
            throw e;
        }
    }

    private static Map<?, ?> readWeightMap(Path index) {
        byte[] bytes;
        try {
            long size = Files.size(index);
            if (size > MAX_INDEX_BYTES)
                throw new CheckpointException("index " + index + " is " + size + " bytes, more than the limit of " + MAX_INDEX_BYTES
                        + " bytes for a safetensors index; it is not an index file");
            bytes = Files.readAllBytes(index);
        } catch (NoSuchFileException e) {
            throw new CheckpointException("index " + index + " does not exist; check the path", e);
        } catch (IOException e) {
            throw new CheckpointException("cannot read index " + index + ": " + e, e);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new CheckpointException("index " + index + " is not valid UTF-8 text; it is damaged or not a safetensors index", e);
        }
        Object root;
        try {
            root = Json.parse(text);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException("index " + index + " is not valid JSON: " + e.getMessage()
                    + "; it is damaged — re-download it", e);
        }
        if (!(root instanceof Map<?, ?> top))
            throw new CheckpointException("index " + index + " is " + SafeTensorsHeader.describe(root)
                    + "; expected a JSON object with a \"weight_map\"");
        Object wm = top.get("weight_map");
        if (!(wm instanceof Map<?, ?> weightMap))
            throw new CheckpointException("index " + index + (top.containsKey("weight_map")
                    ? " has \"weight_map\" " + SafeTensorsHeader.describe(wm) + "; expected an object"
                    : " has no \"weight_map\" object; it is not a safetensors index (expected {\"weight_map\": {tensor: shard file}})"));
        return weightMap;
    }

    private static Path resolveShard(Path index, Path dir, String tensor, String shardName) {
        Path shard;
        try {
            shard = dir.resolve(shardName).normalize();
        } catch (RuntimeException e) {
            throw new CheckpointException("index " + index + " names shard " + Json.quote(shardName) + " for tensor "
                    + Json.quote(tensor) + ", which is not a valid file name", e);
        }
        if (!shard.startsWith(dir) || shard.equals(dir))
            throw new CheckpointException("index " + index + " names shard " + Json.quote(shardName) + " for tensor "
                    + Json.quote(tensor) + ", which lies outside the index's folder " + dir + "; shards must be next to the index");
        return shard;
    }

    private static String fileNames(List<Path> paths) {
        List<String> n = new ArrayList<>();
        for (Path p : paths) n.add(p.getFileName().toString());
        return n.toString();
    }

    // ------------------------------------------------------------------ WeightSource

    @Override public Path path() { return path; }

    @Override public Set<String> names() { return names; }

    @Override public boolean contains(String name) { return name != null && owner.containsKey(name); }

    @Override public TensorInfo info(String name) { return file(name).info(name); }

    @Override public String dtypeName(String name) { return file(name).dtypeName(name); }

    @Override public Tensor tensor(String name) { return file(name).tensor(name); }

    @Override public Path fileOf(String name) { return file(name).path(); }

    @Override public Map<String, String> metadata() { return metadata; }

    @Override public synchronized void close() {
        if (closed) return;
        closed = true;
        for (SafeTensorsFile f : files) f.close();
    }

    @Override public String toString() { return "WeightSource[" + path + ", " + files.size() + " files, " + owner.size() + " tensors]"; }

    private SafeTensorsFile file(String name) {
        SafeTensorsFile f = name == null ? null : owner.get(name);
        if (f == null)
            throw new CheckpointException("tensor " + Json.quote(String.valueOf(name)) + " is not in checkpoint " + path
                    + " (" + owner.size() + " tensors in " + files.size() + (files.size() == 1 ? " file" : " files") + ")."
                    + Names.suggestion(String.valueOf(name), owner.keySet())
                    + " Check that the checkpoint holds the model you meant and that the name's prefix matches its layout.");
        return f;
    }
}
