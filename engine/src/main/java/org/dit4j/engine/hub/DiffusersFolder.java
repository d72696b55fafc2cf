package org.dit4j.engine.hub;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.Json;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** What every diffusers pipeline folder has in common: component folders holding a weight file or a sharded index. */
public final class DiffusersFolder {
    /** File stems diffusers uses for component weights (transformers' text encoders use "model"). */
    public static final List<String> WEIGHT_STEMS = List.of("diffusion_pytorch_model", "model");

    private DiffusersFolder() {}

    /** The weight files {@code component} lacks in {@code dir} (empty when complete), as paths relative to dir. */
    public static List<String> missingWeights(Path dir, String component) {
        Path c = dir.resolve(component);
        for (String stem : WEIGHT_STEMS) {
            Path idx = c.resolve(stem + ".safetensors.index.json");
            if (Files.isRegularFile(idx)) {
                List<String> missing = new ArrayList<>();
                for (String shard : shardsOf(idx)) if (!Files.isRegularFile(c.resolve(shard))) missing.add(component + "/" + shard);
                return missing;
            }
            if (Files.isRegularFile(c.resolve(stem + ".safetensors"))) return List.of();
        }
        return List.of(component + "/" + (component.startsWith("text") ? "model" : "diffusion_pytorch_model") + "*.safetensors");
    }

    /** The shard file names of a sharded index's "weight_map". */
    public static Set<String> shardsOf(Path index) {
        Object wm = readJson(index).get("weight_map");
        if (!(wm instanceof Map<?, ?> m)) throw new CheckpointException("index " + index + " has no \"weight_map\" object");
        Set<String> shards = new LinkedHashSet<>();
        for (Object v : m.values()) if (v instanceof String s) shards.add(s);
        return shards;
    }

    /** A JSON object file (model_index.json, an index, a config); errors name the file. */
    public static Map<?, ?> readJson(Path file) {
        try {
            Object o = Json.parse(Files.readString(file, StandardCharsets.UTF_8));
            if (o instanceof Map<?, ?> m) return m;
            throw new CheckpointException(file + " is not a JSON object");
        } catch (IOException e) {
            throw new CheckpointException("cannot read " + file + ": " + e.getMessage(), e);
        } catch (Json.SyntaxException e) {
            throw new CheckpointException(file + " is not valid JSON: " + e.getMessage(), e);
        }
    }
}
