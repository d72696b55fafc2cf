package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class WeightSourceTest {
    @TempDir Path dir;

    private static Tensor vec(float... v) { return Tensor.of(v, v.length); }

    /** Two shards like a diffusers transformer folder, plus its index. */
    private Path shardedCheckpoint(Path folder) throws IOException {
        Files.createDirectories(folder);
        Map<String, Tensor> s1 = new LinkedHashMap<>();
        s1.put("blocks.0.w", vec(1, 2));
        s1.put("blocks.0.b", Tensor.of(DType.BF16, new float[] {3}, 1));
        Map<String, Tensor> s2 = new LinkedHashMap<>();
        s2.put("blocks.1.w", vec(4, 5, 6));
        s2.put("norm.weight", vec(7));
        SafeTensorsWriter.write(folder.resolve("model-00001-of-00002.safetensors"), s1, Map.of("format", "pt", "shard", "1"));
        SafeTensorsWriter.write(folder.resolve("model-00002-of-00002.safetensors"), s2, Map.of("shard", "2", "extra", "x"));
        Path index = folder.resolve("model.safetensors.index.json");
        Files.writeString(index, """
                {
                  "metadata": {"total_size": 28},
                  "weight_map": {
                    "blocks.1.w": "model-00002-of-00002.safetensors",
                    "blocks.0.w": "model-00001-of-00002.safetensors",
                    "blocks.0.b": "model-00001-of-00002.safetensors",
                    "norm.weight": "model-00002-of-00002.safetensors"
                  }
                }
                """);
        return index;
    }

    private static void assertShardedContents(WeightSource ws) {
        assertEquals(List.of("blocks.0.b", "blocks.0.w", "blocks.1.w", "norm.weight"), List.copyOf(ws.names()));
        assertArrayEquals(new float[] {1, 2}, ws.tensor("blocks.0.w").toFloatArray(), 0f);
        assertArrayEquals(new float[] {3}, ws.tensor("blocks.0.b").toFloatArray(), 0f);
        assertArrayEquals(new float[] {4, 5, 6}, ws.tensor("blocks.1.w").toFloatArray(), 0f);
        assertEquals(new TensorInfo("blocks.1.w", DType.F32, Shape.of(3L), ws.info("blocks.1.w").dataOffset(), 12), ws.info("blocks.1.w"));
        assertEquals("BF16", ws.dtypeName("blocks.0.b"));
        assertTrue(ws.contains("norm.weight"));
        assertFalse(ws.contains("norm.bias"));
        assertFalse(ws.contains(null));
        assertEquals("model-00002-of-00002.safetensors", ws.fileOf("norm.weight").getFileName().toString());
        // merged metadata: the first shard wins on "shard"
        assertEquals(Map.of("format", "pt", "shard", "1", "extra", "x"), ws.metadata());
    }

    @Test void singleFile() {
        Path file = dir.resolve("one.safetensors");
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("z", vec(1));
        in.put("a", vec(2, 3));
        SafeTensorsWriter.write(file, in, Map.of("k", "v"));
        try (WeightSource ws = WeightSource.open(file)) {
            assertEquals(file, ws.path());
            assertEquals(List.of("a", "z"), List.copyOf(ws.names()));
            assertArrayEquals(new float[] {2, 3}, ws.tensor("a").toFloatArray(), 0f);
            assertEquals(Map.of("k", "v"), ws.metadata());
            assertThrows(UnsupportedOperationException.class, () -> ws.names().add("x"));
        }
    }

    @Test void shardedIndex() throws IOException {
        Path index = shardedCheckpoint(dir.resolve("transformer"));
        try (WeightSource ws = WeightSource.open(index)) {
            assertEquals(index, ws.path());
            assertShardedContents(ws);
        }
    }

    @Test void directoryWithIndexUsesTheIndexAndIgnoresOtherFiles() throws IOException {
        Path folder = dir.resolve("transformer");
        shardedCheckpoint(folder);
        SafeTensorsWriter.write(folder.resolve("stray.safetensors"), Map.of("stray", vec(0)), Map.of());
        try (WeightSource ws = WeightSource.open(folder)) {
            assertShardedContents(ws);
            assertFalse(ws.contains("stray"));
        }
    }

    @Test void directoryWithoutIndexUsesAllFiles() throws IOException {
        Path folder = dir.resolve("loose");
        Files.createDirectories(folder);
        SafeTensorsWriter.write(folder.resolve("b.safetensors"), Map.of("y", vec(2)), Map.of("from", "b"));
        SafeTensorsWriter.write(folder.resolve("a.safetensors"), Map.of("x", vec(1)), Map.of("from", "a"));
        Files.writeString(folder.resolve("config.json"), "{}");
        try (WeightSource ws = WeightSource.open(folder)) {
            assertEquals(List.of("x", "y"), List.copyOf(ws.names()));
            assertEquals(2f, ws.tensor("y").getFloat(0), 0f);
            assertEquals(Map.of("from", "a"), ws.metadata()); // the file whose name sorts first wins
        }
    }

    @Test void closeUnmapsEveryShard() throws IOException {
        WeightSource ws = WeightSource.open(shardedCheckpoint(dir.resolve("t")));
        Tensor a = ws.tensor("blocks.0.w");
        Tensor b = ws.tensor("norm.weight");
        ws.close();
        ws.close();
        assertThrows(IllegalStateException.class, () -> a.getFloat(0));
        assertThrows(IllegalStateException.class, () -> b.getFloat(0));
    }

    @Test void missingTensorNamesTheCheckpointAndSuggests() throws IOException {
        Path index = shardedCheckpoint(dir.resolve("t"));
        try (WeightSource ws = WeightSource.open(index)) {
            var e = assertThrows(CheckpointException.class, () -> ws.tensor("model.diffusion_model.norm.weight"));
            String m = e.getMessage();
            assertTrue(m.contains(index.toString()) && m.contains("4 tensors in 2 files") && m.contains("Similar names: \"norm.weight\""), m);
            assertThrows(CheckpointException.class, () -> ws.info("nope"));
            assertThrows(CheckpointException.class, () -> ws.fileOf("nope"));
        }
    }

    // ------------------------------------------------------------------ failures

    private static void assertMessage(CheckpointException e, String... fragments) {
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "message must mention '" + f + "': " + e.getMessage());
    }

    @Test void missingPathOrEmptyFolder() throws IOException {
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(dir.resolve("nope"))), "nope", "does not exist");
        Path empty = Files.createDirectories(dir.resolve("empty"));
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(empty)), empty.toString(), "no *.safetensors");
    }

    @Test void folderWithTwoCheckpointsHoldingTheSameNames() throws IOException {
        Path folder = Files.createDirectories(dir.resolve("dup"));
        SafeTensorsWriter.write(folder.resolve("model.safetensors"), Map.of("w", vec(1)), Map.of());
        SafeTensorsWriter.write(folder.resolve("model.fp16.safetensors"), Map.of("w", Tensor.of(DType.F16, new float[] {1}, 1)), Map.of());
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(folder)),
                folder.toString(), "\"w\"", "model.fp16.safetensors", "model.safetensors", "open one file");
    }

    @Test void folderWithTwoIndexes() throws IOException {
        Path folder = dir.resolve("two");
        shardedCheckpoint(folder);
        Files.copy(folder.resolve("model.safetensors.index.json"), folder.resolve("model.fp16.safetensors.index.json"));
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(folder)), "2 index files", "open the index");
    }

    @Test void indexNamingAMissingShard() throws IOException {
        Path index = shardedCheckpoint(dir.resolve("t"));
        Files.delete(dir.resolve("t/model-00002-of-00002.safetensors"));
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)),
                index.toString(), "model-00002-of-00002.safetensors", "does not exist", "download");
    }

    @Test void indexListingATensorItsShardLacks() throws IOException {
        Path index = shardedCheckpoint(dir.resolve("t"));
        Files.writeString(index, Files.readString(index).replace("\"norm.weight\": \"model-00002", "\"norm.weigth\": \"model-00002"));
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)),
                index.toString(), "\"norm.weigth\"", "model-00002-of-00002.safetensors", "does not contain", "\"norm.weight\"");
    }

    @Test void malformedIndexes() throws IOException {
        Path folder = dir.resolve("t");
        Path index = shardedCheckpoint(folder);
        Files.writeString(index, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\",}}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), index.toString(), "not valid JSON", "line 1");
        Files.writeString(index, "{\"metadata\": {}}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "no \"weight_map\"");
        Files.writeString(index, "{\"weight_map\": []}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "\"weight_map\" an array");
        Files.writeString(index, "[]");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "expected a JSON object");
        Files.writeString(index, "{\"weight_map\": {\"blocks.0.w\": 1}}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "\"blocks.0.w\"", "the number 1", "file name of a shard");
        Files.writeString(index, "{\"weight_map\": {\"blocks.0.w\": \"\"}}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "the string \"\"");
        Files.write(index, new byte[] {'{', (byte) 0xC3, '}'});
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "not valid UTF-8");
        Files.writeString(index, "{\"weight_map\": {\"a\": \"x.safetensors\", \"a\": \"y.safetensors\"}}");
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "duplicate key \"a\"");
    }

    @Test void indexPointingOutsideItsFolder() throws IOException {
        Path folder = dir.resolve("t");
        Path index = shardedCheckpoint(folder);
        SafeTensorsWriter.write(dir.resolve("outside.safetensors"), Map.of("a", vec(1)), Map.of());
        for (String shard : List.of("../outside.safetensors", dir.resolve("outside.safetensors").toString(), ".", "sub/../../outside.safetensors")) {
            Files.writeString(index, "{\"weight_map\": {\"a\": " + Json.quote(shard) + "}}");
            assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), "outside the index's folder");
        }
    }

    @Test void indexWhoseShardIsDamaged() throws IOException {
        Path folder = dir.resolve("t");
        Path index = shardedCheckpoint(folder);
        Path shard2 = folder.resolve("model-00002-of-00002.safetensors");
        byte[] b = Files.readAllBytes(shard2);
        Files.write(shard2, java.util.Arrays.copyOf(b, b.length - 2));
        assertMessage(assertThrows(CheckpointException.class, () -> WeightSource.open(index)), shard2.toString(), "outside the data section");
    }

    @Test void shardsInSubfoldersAndDotPathsResolveNextToTheIndex() throws IOException {
        Path folder = dir.resolve("t");
        Files.createDirectories(folder.resolve("sub"));
        SafeTensorsWriter.write(folder.resolve("sub/a.safetensors"), Map.of("a", vec(1), "b", vec(2)), Map.of());
        Path index = folder.resolve("x.safetensors.index.json");
        Files.writeString(index, "{\"weight_map\": {\"a\": \"sub/a.safetensors\", \"b\": \"./sub/a.safetensors\"}}");
        try (WeightSource ws = WeightSource.open(index)) {
            assertEquals(List.of("a", "b"), List.copyOf(ws.names()));
            assertEquals(ws.fileOf("a"), ws.fileOf("b")); // one mapping for both spellings
        }
    }
}
