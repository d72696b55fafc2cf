package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.*;

class SafeTensorsRoundTripTest {
    @TempDir Path dir;

    /** A host tensor of {@code dtype} filled with random bit patterns (0/1 for BOOL). */
    static Tensor randomTensor(DType dtype, Random rnd, long... dims) {
        Tensor t = Tensor.zeros(dtype, dims);
        MemorySegment s = t.segment();
        for (long i = 0; i < s.byteSize(); i++) {
            byte b = (byte) rnd.nextInt(256);
            s.set(ValueLayout.JAVA_BYTE, i, dtype == DType.BOOL ? (byte) (b & 1) : b);
        }
        return t;
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void everyDTypeRoundTripsBitExactly(DType dtype) {
        Random rnd = new Random(dtype.ordinal());
        Tensor a = randomTensor(dtype, rnd, 3, 5);
        Tensor b = randomTensor(dtype, rnd, 7);
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("a.weight", a);
        in.put("b.bias", b);
        Path file = dir.resolve(dtype + ".safetensors");
        SafeTensorsWriter.write(file, in, Map.of());
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(List.of("a.weight", "b.bias"), f.names());
            for (Map.Entry<String, Tensor> e : in.entrySet()) {
                Tensor got = f.tensor(e.getKey());
                assertEquals(dtype, got.dtype());
                assertEquals(e.getValue().shape(), got.shape());
                assertEquals(-1, got.segment().mismatch(e.getValue().segment()), "bytes of " + e.getKey());
                for (int i = 0; i < got.numel(); i++)
                    assertEquals(Float.floatToIntBits(e.getValue().getFloat(i)), Float.floatToIntBits(got.getFloat(i)));
                TensorInfo info = f.info(e.getKey());
                assertEquals(dtype, info.dtype());
                assertEquals(e.getValue().byteSize(), info.byteSize());
            }
        }
    }

    @Test void scalarAndEmptyTensorsRoundTrip() {
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("scalar", Tensor.of(new float[] {3.5f}));                 // 0-d: shape []
        in.put("empty", Tensor.zeros(DType.BF16, 0));
        in.put("empty3d", Tensor.zeros(DType.I64, 2, 0, 3));
        in.put("after", Tensor.of(DType.F16, new float[] {1, -2, 0.5f}, 3));
        Path file = dir.resolve("edge.safetensors");
        SafeTensorsWriter.write(file, in, null);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            Tensor s = f.tensor("scalar");
            assertEquals(Shape.of(new long[0]), s.shape());
            assertEquals(0, s.rank());
            assertEquals(3.5f, s.getFloat(0), 0f);
            assertEquals(Shape.of(0L), f.tensor("empty").shape());
            assertEquals(0, f.info("empty").byteSize());
            assertEquals(Shape.of(2L, 0L, 3L), f.tensor("empty3d").shape());
            assertEquals(0, f.tensor("empty3d").numel());
            assertArrayEquals(new float[] {1, -2, 0.5f}, f.tensor("after").toFloatArray(), 0f);
            // empty tensors take no bytes: "after" starts right after the scalar
            assertEquals(f.info("scalar").dataOffset() + 4, f.info("after").dataOffset());
            assertTrue(f.metadata().isEmpty());
        }
    }

    @Test void metadataRoundTripsAndHeaderKeepsInsertionOrder() throws Exception {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "pt");
        meta.put("note", "quotes \" backslash \\ newline \n tab \t unicode äß漢 😀 ctrl \u0001");
        Map<String, Tensor> in = new LinkedHashMap<>();
        for (String n : new String[] {"z", "a", "m.0", "b"}) in.put(n, Tensor.of(new float[] {n.charAt(0)}, 1));
        Path file = dir.resolve("meta.safetensors");
        SafeTensorsWriter.write(file, in, meta);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(meta, f.metadata());
            assertEquals(List.of("z", "a", "m.0", "b"), f.names());
            for (String n : in.keySet()) assertEquals(n.charAt(0), f.tensor(n).getFloat(0), 0f);
        }
        String header = new String(Files.readAllBytes(file), 8, 40, StandardCharsets.UTF_8);
        assertTrue(header.startsWith("{\"__metadata__\":{\"format\":\"pt\""), header);
    }

    @Test void emptyMetadataIsOmittedAndHeaderIsPaddedWithSpacesTo8Bytes() throws Exception {
        for (int nameLen = 1; nameLen <= 9; nameLen++) {
            Path file = dir.resolve("pad" + nameLen + ".safetensors");
            SafeTensorsWriter.write(file, Map.of("x".repeat(nameLen), Tensor.of(new float[] {1, 2}, 2)), Map.of());
            byte[] bytes = Files.readAllBytes(file);
            long n = StBytes.declaredLength(bytes);
            assertEquals(0, n % 8, "header length " + n);
            assertEquals(8 + n + 8, bytes.length);
            String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
            assertFalse(header.contains("__metadata__"));
            String trimmed = header.stripTrailing();
            assertTrue(trimmed.endsWith("}"));
            assertTrue(header.substring(trimmed.length()).chars().allMatch(c -> c == ' '));
            assertTrue(header.length() - trimmed.length() < 8);
        }
    }

    /** Byte layout for a one-tensor file, built by hand from the format description. */
    @Test void writerOutputMatchesTheFormatByteForByte() throws Exception {
        Path file = dir.resolve("golden.safetensors");
        SafeTensorsWriter.write(file, Map.of("attn.0", Tensor.of(new float[] {0, 1, 2, 3, 4, 5}, 1, 2, 3)), Map.of());
        String json = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
        int padded = (json.length() + 7) / 8 * 8;
        ByteBuffer expected = ByteBuffer.allocate(8 + padded + 24).order(ByteOrder.LITTLE_ENDIAN);
        expected.putLong(padded).put(json.getBytes(StandardCharsets.US_ASCII));
        for (int i = json.length(); i < padded; i++) expected.put((byte) ' ');
        for (int i = 0; i < 6; i++) expected.putFloat(i);
        assertArrayEquals(expected.array(), Files.readAllBytes(file));
    }

    @Test void tensorsAreZeroCopyViewsAtTheDeclaredOffsets() throws Exception {
        Path file = dir.resolve("view.safetensors");
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("a", Tensor.of(DType.BF16, new float[] {1, 2, 3}, 3));
        in.put("b", Tensor.of(new float[] {4, 5}, 2));
        SafeTensorsWriter.write(file, in, Map.of());
        byte[] raw = Files.readAllBytes(file);
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            TensorInfo b = f.info("b");
            assertEquals(8 + StBytes.declaredLength(raw) + 6, b.dataOffset());
            assertEquals(8, b.byteSize());
            assertEquals(5f, ByteBuffer.wrap(raw).order(ByteOrder.LITTLE_ENDIAN).getFloat((int) b.dataOffset() + 4), 0f);
            Tensor t = f.tensor("b");
            assertEquals(f.segment().address() + b.dataOffset(), t.address(), "tensor must point into the mapping");
            assertEquals(raw.length, f.byteSize());
        }
    }

    /** A sparse 4.5 GiB file: offsets past 2^31 and 2^32 must work (no int arithmetic, no ByteBuffer views). */
    @Test void filesBeyond4GiBAreAddressedWithLongOffsets() throws Exception {
        long big = (9L << 29) / 4;                          // 4.5 GiB of F32
        long bigEnd = 8 + big * 4;
        String json = "{\"head\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"big\":{\"dtype\":\"F32\",\"shape\":[" + big + "],\"data_offsets\":[8," + bigEnd + "]},"
                + "\"tail\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[" + bigEnd + "," + (bigEnd + 4) + "]}}";
        byte[] header = json.getBytes(StandardCharsets.US_ASCII);
        long dataStart = 8 + header.length;
        Path file = dir.resolve("sparse.safetensors");
        try (var ch = java.nio.channels.FileChannel.open(file, java.nio.file.StandardOpenOption.CREATE_NEW, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.wrap(StBytes.raw(header.length, header, new byte[0])));
            ch.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, 7.25f), dataStart + bigEnd - 4); // big[last]
            ch.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, -3.5f), dataStart + bigEnd);     // tail
        }
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            assertEquals(dataStart + bigEnd, f.info("tail").dataOffset());
            assertTrue(f.info("tail").dataOffset() > (1L << 32));
            assertEquals(-3.5f, f.tensor("tail").getFloat(0), 0f);
            Tensor b = f.tensor("big");
            assertEquals(big * 4, b.byteSize());
            assertEquals(7.25f, b.getFloat(big - 1), 0f);
            assertEquals(0f, b.getFloat(big / 2), 0f);
        }
    }

    @Test void closeUnmapsAndLaterReadsFailCleanly() {
        Path file = dir.resolve("close.safetensors");
        SafeTensorsWriter.write(file, Map.of("w", Tensor.of(new float[] {1, 2, 3, 4}, 4)), Map.of());
        SafeTensorsFile f = SafeTensorsFile.open(file);
        Tensor t = f.tensor("w");
        assertEquals(4f, t.getFloat(3), 0f);
        f.close();
        f.close(); // idempotent
        assertThrows(IllegalStateException.class, () -> t.getFloat(0));
        assertThrows(IllegalStateException.class, () -> f.tensor("w"));
        assertEquals(Shape.of(4L), f.info("w").shape()); // header data stays available
    }

    @Test void tensorsCanBeReadFromManyThreads() throws Exception {
        Path file = dir.resolve("mt.safetensors");
        float[] data = new float[4096];
        for (int i = 0; i < data.length; i++) data[i] = i * 0.25f;
        SafeTensorsWriter.write(file, Map.of("w", Tensor.of(data, 64, 64)), Map.of());
        double expected = 0;
        for (float v : data) expected += v;
        try (SafeTensorsFile f = SafeTensorsFile.open(file); ExecutorService ex = Executors.newFixedThreadPool(4)) {
            List<Future<Double>> sums = new ArrayList<>();
            for (int k = 0; k < 8; k++) sums.add(ex.submit(() -> {
                double s = 0;
                for (float v : f.tensor("w").toFloatArray()) s += v;
                return s;
            }));
            for (Future<Double> s : sums) assertEquals(expected, s.get(), 0.0);
        }
    }

    @Test void aFileCanBeRewrittenFromItsOwnMappedTensors() {
        Path file = dir.resolve("self.safetensors");
        SafeTensorsWriter.write(file, Map.of("w", Tensor.of(new float[] {1, 2, 3}, 3)), Map.of());
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            Map<String, Tensor> out = new LinkedHashMap<>();
            out.put("w", f.tensor("w"));
            out.put("w2", f.tensor("w"));
            SafeTensorsWriter.write(file, out, Map.of("v", "2"));
            assertArrayEquals(new float[] {1, 2, 3}, f.tensor("w").toFloatArray(), 0f); // old mapping intact
        }
        try (SafeTensorsFile g = SafeTensorsFile.open(file)) {
            assertEquals(List.of("w", "w2"), g.names());
            assertArrayEquals(new float[] {1, 2, 3}, g.tensor("w2").toFloatArray(), 0f);
            assertEquals(Map.of("v", "2"), g.metadata());
        }
    }

    @Test void writerRejectsReservedNameAndLeavesNoFileBehind() throws Exception {
        Path file = dir.resolve("bad.safetensors");
        var e = assertThrows(IllegalArgumentException.class,
                () -> SafeTensorsWriter.write(file, Map.of("__metadata__", Tensor.of(new float[] {1}, 1)), Map.of()));
        assertTrue(e.getMessage().contains("reserved"), e.getMessage());
        try (var s = Files.list(dir)) { assertEquals(0, s.count()); }
        var io = assertThrows(CheckpointException.class,
                () -> SafeTensorsWriter.write(dir.resolve("no/such/dir/x.safetensors"), Map.of("a", Tensor.of(new float[] {1}, 1)), Map.of()));
        assertTrue(io.getMessage().contains("x.safetensors"), io.getMessage());
    }

    @Test void missingNameSuggestsCloseNames() {
        Path file = dir.resolve("names.safetensors");
        Map<String, Tensor> in = new LinkedHashMap<>();
        in.put("double_blocks.0.img_attn.qkv.weight", Tensor.of(new float[] {1}, 1));
        in.put("double_blocks.0.txt_attn.qkv.weight", Tensor.of(new float[] {1}, 1));
        in.put("final_layer.linear.bias", Tensor.of(new float[] {1}, 1));
        SafeTensorsWriter.write(file, in, Map.of());
        try (SafeTensorsFile f = SafeTensorsFile.open(file)) {
            var e = assertThrows(CheckpointException.class, () -> f.tensor("model.diffusion_model.double_blocks.0.img_attn.qkv.weight"));
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
            assertTrue(e.getMessage().contains("Similar names: \"double_blocks.0.img_attn.qkv.weight\""), e.getMessage());
            var e2 = assertThrows(CheckpointException.class, () -> f.info("final_layer.linear.weight"));
            assertTrue(e2.getMessage().contains("\"final_layer.linear.bias\""), e2.getMessage());
            assertFalse(f.contains("final_layer.linear.weight"));
        }
    }

    /** Dtypes the format defines but DType lacks: the file opens, the tensor is listed, asking for it fails clearly. */
    @ParameterizedTest
    @ValueSource(strings = {"F64", "I8", "U8", "I16", "U16", "U32", "U64", "F8_E8M0", "C64"})
    void unsupportedFormatDtypesFailOnAccessNamingTensorAndDtype(String dtype) {
        int bytes = SafeTensorsHeader.formatBits(dtype) / 8 * 2;
        String json = "{\"ok\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                + "\"odd\":{\"dtype\":\"" + dtype + "\",\"shape\":[2],\"data_offsets\":[4," + (4 + bytes) + "]}}";
        try (SafeTensorsFile f = SafeTensorsFile.fromBytes(Path.of("odd.safetensors"), MemorySegment.ofArray(StBytes.file(json, 4 + bytes)))) {
            assertEquals(List.of("ok", "odd"), f.names());
            assertEquals(dtype, f.dtypeName("odd"));
            f.tensor("ok").getFloat(0);
            for (var call : List.<Runnable>of(() -> f.info("odd"), () -> f.tensor("odd"))) {
                var e = assertThrows(CheckpointException.class, call::run);
                assertTrue(e.getMessage().contains("\"odd\"") && e.getMessage().contains("dtype " + dtype)
                        && e.getMessage().contains("odd.safetensors") && e.getMessage().contains("not support"), e.getMessage());
            }
        }
    }

    @Test void subByteFormatDtypesAreSizedInBits() {
        // F4: 4 bits per element, 6 elements = 3 bytes
        String json = "{\"q\":{\"dtype\":\"F4\",\"shape\":[2,3],\"data_offsets\":[0,3]}}";
        try (SafeTensorsFile f = SafeTensorsFile.fromBytes(Path.of("f4"), MemorySegment.ofArray(StBytes.file(json, 3)))) {
            assertEquals("F4", f.dtypeName("q"));
        }
        String odd = "{\"q\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}";
        var e = assertThrows(CheckpointException.class,
                () -> SafeTensorsFile.fromBytes(Path.of("f4"), MemorySegment.ofArray(StBytes.file(odd, 2))));
        assertTrue(e.getMessage().contains("whole bytes"), e.getMessage());
    }

    @Test void leniencesTheFormatAllows() {
        // trailing whitespace padding, null metadata, unknown extra entry fields, no tensors at all
        String json = "{\"__metadata__\":null,\"a\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":[1,{}]}}\n\t  ";
        try (SafeTensorsFile f = SafeTensorsFile.fromBytes(Path.of("lenient"), MemorySegment.ofArray(StBytes.file(json, 4)))) {
            assertEquals(List.of("a"), f.names());
            assertTrue(f.metadata().isEmpty());
            assertEquals((float) 0x03020100, f.tensor("a").getFloat(0), 0f);
        }
        try (SafeTensorsFile f = SafeTensorsFile.fromBytes(Path.of("empty"), MemorySegment.ofArray(StBytes.file("{}      ", 0)))) {
            assertTrue(f.names().isEmpty());
        }
        // tensors may appear in any order in the header; only their byte ranges must tile the data
        String shuffled = "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
        try (SafeTensorsFile f = SafeTensorsFile.fromBytes(Path.of("shuffled"), MemorySegment.ofArray(StBytes.file(shuffled, 6)))) {
            assertEquals(List.of("b", "a"), f.names());
            assertEquals(8 + StBytes.declaredLength(StBytes.file(shuffled, 6)), f.info("a").dataOffset());
        }
    }
}
