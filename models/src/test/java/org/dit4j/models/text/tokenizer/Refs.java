package org.dit4j.models.text.tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.zip.GZIPInputStream;

/** Test helpers: the reference JSON, resources, the shared CLIP vocabulary. */
final class Refs {
    private Refs() {}

    private static Map<String, Object> reference;

    /** {@code tokenizer/reference.json}: ids computed by scripts/reference/tokenizer_reference.py on the GPU machine. */
    static synchronized Map<String, Object> reference() {
        if (reference == null) {
            String text = new String(resource("tokenizer/reference.json"), StandardCharsets.UTF_8);
            reference = Json.asObject(Json.parse(text, "reference.json"), "root", "reference.json");
        }
        return reference;
    }

    static List<String> prompts() {
        return Json.asArray(reference().get("prompts"), "prompts", "reference.json").stream().map(o -> (String) o).toList();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> obj(Object o, String... path) {
        Object cur = o;
        for (String p : path) cur = ((Map<String, Object>) cur).get(p);
        return (Map<String, Object>) cur;
    }

    static int[] ints(Object list) {
        List<?> l = (List<?>) list;
        int[] a = new int[l.size()];
        for (int i = 0; i < a.length; i++) a[i] = ((Number) l.get(i)).intValue();
        return a;
    }

    /** The ids of prompt {@code i} in a variant object holding {"prompts": [{"ids": [...]}, ...]}. */
    static int[] promptIds(Map<String, Object> variant, int i, String key) {
        List<?> ps = (List<?>) variant.get("prompts");
        return ints(((Map<?, ?>) ps.get(i)).get(key));
    }

    static byte[] resource(String name) {
        try (InputStream in = Refs.class.getClassLoader().getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("test resource " + name + " is missing");
            byte[] b = in.readAllBytes();
            return name.endsWith(".gz") ? new GZIPInputStream(new java.io.ByteArrayInputStream(b)).readAllBytes() : b;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Writes a (possibly gzipped) resource, uncompressed, to {@code dir/fileName}. */
    static Path extract(String resource, Path dir, String fileName) throws IOException {
        Files.createDirectories(dir);
        Path p = dir.resolve(fileName);
        Files.write(p, resource(resource));
        return p;
    }

    static String sha256(Path p) throws IOException {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The real CLIP ViT-L/14 vocabulary, kept outside the repository in {@code ../shared/data/tokenizers/clip-vit-l-14}
     * relative to the repository root (found by walking up from the working directory), or null.
     */
    static Path clipVocabDir() {
        String env = System.getenv("DIT4J_CLIP_VOCAB");
        if (env != null && Files.isRegularFile(Path.of(env, "vocab.json"))) return Path.of(env);
        for (Path p = Path.of(System.getProperty("user.dir")).toAbsolutePath(); p != null && p.getParent() != null; p = p.getParent()) {
            Path c = p.getParent().resolve("shared/data/tokenizers/clip-vit-l-14");
            if (Files.isRegularFile(c.resolve("vocab.json")) && Files.isRegularFile(c.resolve("merges.txt"))) return c;
        }
        return null;
    }

    static String show(String prompt) {
        String s = prompt.length() > 60 ? prompt.substring(0, 60) + "…" : prompt;
        StringBuilder sb = new StringBuilder();
        s.codePoints().forEach(cp -> {
            if (cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x200B || cp == 0x200D || cp == 0xAD) sb.append(String.format("\\u%04x", cp));
            else sb.appendCodePoint(cp);
        });
        return "\"" + sb + "\"";
    }
}
