package org.dit4j.server.files;

import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Reads ComfyUI's {@code extra_model_paths.yaml} (as {@code utils/extra_config.py} does): each top-level section
 * may give {@code base_path} (relative to the YAML file's directory, {@code ~} and {@code $VARS} expanded) and
 * {@code is_default}; every other key is a folder name whose value lists directories, one per line, relative to
 * {@code base_path} (or to the YAML's directory without one).
 */
public final class ExtraModelPaths {

    private ExtraModelPaths() {}

    /** One directory to add: folder name, path, whether it goes first. */
    public record Entry(String folder, Path dir, boolean isDefault) {}

    public static List<Entry> read(Path yamlFile) throws IOException {
        Object root;
        try (Reader r = Files.newBufferedReader(yamlFile)) {
            root = new Yaml(new SafeConstructor(new LoaderOptions())).load(r);
        } catch (RuntimeException e) {
            throw new IOException(yamlFile + ": not valid YAML (" + e.getMessage() + ")", e);
        }
        List<Entry> out = new ArrayList<>();
        if (root == null) return out;
        if (!(root instanceof Map<?, ?> sections))
            throw new IOException(yamlFile + ": expected a mapping of sections (e.g. 'comfyui:'), found " + root.getClass().getSimpleName());
        Path yamlDir = yamlFile.toAbsolutePath().getParent();
        for (var section : sections.entrySet()) {
            if (section.getValue() == null) continue;
            if (!(section.getValue() instanceof Map<?, ?> conf0))
                throw new IOException(yamlFile + ": section '" + section.getKey() + "' must be a mapping of folder names to paths");
            Map<Object, Object> conf = new LinkedHashMap<>(conf0);
            Path base = null;
            Object bp = conf.remove("base_path");
            if (bp != null) {
                base = Path.of(expand(bp.toString()));
                if (!base.isAbsolute()) base = yamlDir.resolve(base);
            }
            boolean isDefault = Boolean.TRUE.equals(conf.remove("is_default"));
            for (var e : conf.entrySet()) {
                if (e.getValue() == null) continue;
                for (String line : e.getValue().toString().split("\n")) {
                    String y = line.strip();
                    if (y.isEmpty()) continue;
                    Path p = Path.of(expand(y));
                    if (base != null) p = base.resolve(p);
                    else if (!p.isAbsolute()) p = yamlDir.resolve(p);
                    out.add(new Entry(String.valueOf(e.getKey()), p.normalize(), isDefault));
                }
            }
        }
        return out;
    }

    /** Applies a YAML file to the folders. */
    public static void apply(Path yamlFile, ModelFolders folders) throws IOException {
        for (Entry e : read(yamlFile)) folders.addPath(e.folder(), e.dir(), e.isDefault());
    }

    static String expand(String s) {
        String r = s;
        if (r.equals("~") || r.startsWith("~/")) r = System.getProperty("user.home") + r.substring(1);
        var m = java.util.regex.Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)}|\\$([A-Za-z_][A-Za-z0-9_]*)").matcher(r);
        StringBuilder sb = new StringBuilder();
        while (m.find()) {
            String name = m.group(1) != null ? m.group(1) : m.group(2);
            String v = System.getenv(name);
            m.appendReplacement(sb, java.util.regex.Matcher.quoteReplacement(v != null ? v : m.group()));
        }
        m.appendTail(sb);
        return sb.toString();
    }
}
