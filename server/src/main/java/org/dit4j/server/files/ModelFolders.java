package org.dit4j.server.files;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.FileVisitOption;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * ComfyUI's {@code folder_paths}: named model folders (each a list of directories), scanned recursively for the
 * combo lists of the loader nodes and for /models/{folder}. Legacy names ({@code unet}, {@code clip}) map to the
 * current ones. {@code extra_model_paths.yaml} adds directories ({@link ExtraModelPaths}).
 * <p>Listings are cached for a short time (as ComfyUI's cache_helper does per /object_info call) so that a burst
 * of validations does not rescan the disk.
 */
public final class ModelFolders {

    /** ComfyUI's supported_pt_extensions. */
    public static final Set<String> MODEL_EXTENSIONS = Set.of(".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft");

    private static final Map<String, String> LEGACY = Map.of("unet", "diffusion_models", "clip", "text_encoders");
    private static final long CACHE_MILLIS = 2000;

    private record Folder(List<Path> dirs, Set<String> extensions) {}

    private record Listing(long at, List<String> files) {}

    private final Map<String, Folder> folders = new LinkedHashMap<>();
    private final Map<String, Listing> cache = new ConcurrentHashMap<>();

    /** The standard layout under {@code modelsDir}, as ComfyUI's folder_paths sets it up, plus {@code tokenizers}. */
    public static ModelFolders standard(Path modelsDir) {
        ModelFolders f = new ModelFolders();
        Path m = modelsDir.toAbsolutePath().normalize();
        f.define("checkpoints", MODEL_EXTENSIONS, m.resolve("checkpoints"));
        f.define("configs", Set.of(".yaml"), m.resolve("configs"));
        f.define("loras", MODEL_EXTENSIONS, m.resolve("loras"));
        f.define("vae", MODEL_EXTENSIONS, m.resolve("vae"));
        f.define("text_encoders", MODEL_EXTENSIONS, m.resolve("text_encoders"), m.resolve("clip"));
        f.define("diffusion_models", MODEL_EXTENSIONS, m.resolve("unet"), m.resolve("diffusion_models"));
        f.define("clip_vision", MODEL_EXTENSIONS, m.resolve("clip_vision"));
        f.define("style_models", MODEL_EXTENSIONS, m.resolve("style_models"));
        f.define("embeddings", MODEL_EXTENSIONS, m.resolve("embeddings"));
        f.define("diffusers", Set.of(), m.resolve("diffusers"));
        f.define("vae_approx", MODEL_EXTENSIONS, m.resolve("vae_approx"));
        f.define("controlnet", MODEL_EXTENSIONS, m.resolve("controlnet"), m.resolve("t2i_adapter"));
        f.define("gligen", MODEL_EXTENSIONS, m.resolve("gligen"));
        f.define("upscale_models", MODEL_EXTENSIONS, m.resolve("upscale_models"));
        f.define("hypernetworks", MODEL_EXTENSIONS, m.resolve("hypernetworks"));
        f.define("photomaker", MODEL_EXTENSIONS, m.resolve("photomaker"));
        f.define("classifiers", Set.of(), m.resolve("classifiers"));
        f.define("tokenizers", Set.of(), m.resolve("tokenizers"));
        return f;
    }

    /** Defines (or redefines) a folder name. */
    public synchronized void define(String name, Set<String> extensions, Path... dirs) {
        folders.put(name, new Folder(new ArrayList<>(List.of(dirs)), Set.copyOf(extensions)));
        cache.clear();
    }

    /** {@code add_model_folder_path}: adds a directory to a folder (front when {@code isDefault}); unknown names are created. */
    public synchronized void addPath(String name, Path dir, boolean isDefault) {
        String n = canonical(name);
        Folder f = folders.computeIfAbsent(n, k -> new Folder(new ArrayList<>(), Set.of()));
        Path d = dir.toAbsolutePath().normalize();
        f.dirs.remove(d);
        if (isDefault) f.dirs.addFirst(d); else f.dirs.add(d);
        cache.clear();
    }

    /** Legacy folder names map to the current ones ({@code unet} → {@code diffusion_models}, {@code clip} → {@code text_encoders}). */
    public static String canonical(String name) { return LEGACY.getOrDefault(name, name); }

    /** Folder names, as /models lists them. */
    public synchronized List<String> names() { return List.copyOf(folders.keySet()); }

    public synchronized boolean has(String name) { return folders.containsKey(canonical(name)); }

    public synchronized List<Path> dirs(String name) {
        Folder f = folders.get(canonical(name));
        return f == null ? List.of() : List.copyOf(f.dirs);
    }

    /**
     * {@code get_filename_list}: files under the folder's directories (recursive, following links, skipping
     * {@code .git}), relative with '/' separators, filtered by extension, de-duplicated and sorted.
     */
    public List<String> list(String name) {
        String n = canonical(name);
        Listing l = cache.get(n);
        long now = System.currentTimeMillis();
        if (l != null && now - l.at < CACHE_MILLIS) return l.files;
        Folder f;
        synchronized (this) {
            f = folders.get(n);
        }
        if (f == null) return List.of();
        TreeSet<String> out = new TreeSet<>();
        for (Path dir : f.dirs) {
            if (!Files.isDirectory(dir)) continue;
            try (Stream<Path> s = Files.walk(dir, 64, FileVisitOption.FOLLOW_LINKS)) {
                s.filter(p -> !p.equals(dir))
                        .filter(p -> !dir.relativize(p).toString().contains(".git"))
                        .filter(Files::isRegularFile)
                        .filter(p -> f.extensions.isEmpty() || f.extensions.contains(extension(p.getFileName().toString())))
                        .forEach(p -> out.add(dir.relativize(p).toString().replace('\\', '/')));
            } catch (IOException | UncheckedIOException e) {
                // an unreadable directory contributes nothing, as os.walk skips it
            }
        }
        List<String> files = List.copyOf(out);
        cache.put(n, new Listing(now, files));
        return files;
    }

    /** {@code get_full_path}: the first directory of the folder that holds {@code relative}; empty if none or outside. */
    public Optional<Path> fullPath(String name, String relative) {
        if (relative == null || relative.isEmpty()) return Optional.empty();
        for (Path dir : dirs(name)) {
            Optional<Path> p = SafePaths.inside(dir, relative);
            if (p.isPresent() && Files.isRegularFile(p.get())) return p;
        }
        return Optional.empty();
    }

    /** Like {@link #fullPath} but throws with the folder's directories listed (get_full_path_or_raise). */
    public Path fullPathOrThrow(String name, String relative) {
        return fullPath(name, relative).orElseThrow(() -> new IllegalArgumentException(
                "Model in folder '" + canonical(name) + "' with filename '" + relative + "' not found; looked in " + dirs(name)
                        + ". Put the file there or list its directory in extra_model_paths.yaml."));
    }

    static String extension(String file) {
        int dot = file.lastIndexOf('.');
        return dot < 0 ? "" : file.substring(dot).toLowerCase(Locale.ROOT);
    }

    /** Creates the standard directories that do not exist yet (so users see where files go). */
    public void createMissing(List<String> names) {
        for (String n : names)
            for (Path d : dirs(n)) {
                try {
                    Files.createDirectories(d);
                } catch (IOException e) {
                    // read-only locations are allowed; listing just finds nothing there
                }
            }
    }

    public static EnumSet<FileVisitOption> followLinks() { return EnumSet.of(FileVisitOption.FOLLOW_LINKS); }
}
