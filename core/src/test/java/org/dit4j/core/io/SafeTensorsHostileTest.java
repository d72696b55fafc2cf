package org.dit4j.core.io;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** One malformed file per case; each must fail with a CheckpointException whose message names the file and the problem. */
class SafeTensorsHostileTest {
    @TempDir Path dir;
    private int counter;

    private static final String A4 = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}";

    /** Writes {@code bytes} to a file, opens it, and checks the failure message contains the file and every fragment. */
    private CheckpointException rejected(byte[] bytes, String... fragments) {
        Path file = dir.resolve("hostile" + (counter++) + ".safetensors");
        try {
            Files.write(file, bytes);
        } catch (java.io.IOException e) {
            throw new AssertionError(e);
        }
        CheckpointException e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(file).close());
        String m = e.getMessage();
        assertTrue(m.contains(file.toString()), "message must name the file: " + m);
        for (String f : fragments) assertTrue(m.contains(f), "message must mention '" + f + "': " + m);
        return e;
    }

    private CheckpointException rejected(String json, int dataBytes, String... fragments) {
        return rejected(StBytes.file(json, dataBytes), fragments);
    }

    // ------------------------------------------------------------------ length prefix

    @Test void fileShorterThan8Bytes() {
        rejected(new byte[0], "0 bytes long", "8-byte");
        rejected(new byte[7], "7 bytes long", "8-byte");
    }

    @Test void headerLengthBeyondFileSize() {
        byte[] h = "{}".getBytes(StandardCharsets.UTF_8);
        rejected(StBytes.raw(100, h, new byte[0]), "header of 100 bytes", "only 2 bytes follow");
    }

    @Test void absurdHeaderLength() {
        rejected(StBytes.raw(1L << 40, "{}".getBytes(), new byte[0]), "1099511627776 bytes", "limit");
        rejected(StBytes.raw(100_000_001L, "{}".getBytes(), new byte[0]), "100000001 bytes", "limit");
        rejected(StBytes.raw(-1L, "{}".getBytes(), new byte[0]), "18446744073709551615 bytes", "limit");
    }

    @Test void otherCheckpointFormatsAreNamed() {
        byte[] zip = {'P', 'K', 3, 4, 20, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0};
        rejected(zip, "zip archive", "PyTorch", "not safetensors");
        byte[] pickle = {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20, 0x6a, (byte) 0xa8, 0x50, 0x19};
        rejected(pickle, "Python pickle");
        byte[] gguf = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        rejected(gguf, "GGUF");
    }

    @Test void emptyHeader() {
        rejected(StBytes.raw(0, new byte[0], new byte[4]), "empty JSON header");
    }

    // ------------------------------------------------------------------ header text

    @Test void headerNotUtf8() {
        byte[] h = "{\"a\u00ff\":{}}".getBytes(StandardCharsets.ISO_8859_1);
        rejected(StBytes.raw(h.length, h, new byte[0]), "not valid UTF-8", "0xff", "header byte 3");
        byte[] overlong = {'{', '"', (byte) 0xC0, (byte) 0xAF, '"', ':', '1', '}'};   // overlong encoding of '/'
        rejected(StBytes.raw(overlong.length, overlong, new byte[0]), "not valid UTF-8");
    }

    @Test void headerNotJson() {
        rejected("{\"a\":", 0, "not valid JSON", "end of input");
        rejected("{\"a\":{\"dtype\":\"F32\",}}", 0, "not valid JSON", "line 1");
        rejected("{} trailing", 0, "not valid JSON", "after the end");
        rejected("{\"a\":01}", 0, "not valid JSON", "leading zeros");
        rejected("{\"a\":\"x\ny\"}", 0, "not valid JSON", "control character");
    }

    @Test void headerNotAnObject() {
        rejected("[1,2]   ", 0, "does not start with '{'");
        rejected("\"str\"", 0, "does not start with '{'");
        rejected(" {}", 0, "does not start with '{'", "U+0020");
    }

    @Test void headerNestedTooDeep() {
        rejected("{\"a\":{\"x\":" + "[".repeat(100) + "]".repeat(100) + "}}", 0, "nested deeper");
    }

    @Test void hugeArraysInsideTheHeader() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[" + "1,".repeat(100_000) + "1],\"data_offsets\":[0,4]}}", 4,
                "not valid JSON", "more elements than the limit of 100000");
    }

    @Test void duplicateKeys() {
        rejected("{" + A4 + "," + A4 + "}", 4, "duplicate key \"a\"");
        rejected("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate key \"dtype\"");
    }

    // ------------------------------------------------------------------ entries

    @Test void entryNotAnObject() {
        rejected("{\"a\":3}", 0, "tensor \"a\"", "the number 3", "expected an object");
        rejected("{\"a\":[0,4]}", 4, "tensor \"a\"", "an array", "expected an object");
    }

    @Test void entriesMissingFields() {
        rejected("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "tensor \"a\"", "no \"dtype\"");
        rejected("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, "tensor \"a\"", "no \"shape\"");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "tensor \"a\"", "no \"data_offsets\"");
    }

    @Test void entriesWithWrongTypes() {
        rejected("{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "\"dtype\" the number 32", "expected a string");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4, "\"shape\" the string \"1\"", "list");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}}", 4, "\"data_offsets\" an object");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4]}}", 4, "\"data_offsets\" with 1 elements", "2 non-negative");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8, "\"data_offsets\" with 3 elements");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",4]}}", 4, "element 0 = the string \"0\"");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,4]}}", 4, "\"shape\" element 0 = null");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[true],\"data_offsets\":[0,4]}}", 4, "element 0 = the boolean true");
    }

    @Test void unknownDtype() {
        rejected("{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16, "tensor \"a\"", "dtype \"F128\"", "does not define");
        rejected("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype \"f32\"");
    }

    @Test void negativeOrNonIntegerDims() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "\"shape\" element 0 = the number -1", "non-negative integers");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.0],\"data_offsets\":[0,4]}}", 4, "\"shape\" element 0 = the number 1.0");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1e0],\"data_offsets\":[0,8]}}", 8, "\"shape\" element 1 = the number 1.0");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}}", 4, "\"data_offsets\" element 0 = the number -4");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4, "\"data_offsets\" element 1 = the number 4.5");
    }

    @Test void dimsBeyondLong() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,4]}}", 4,
                "element 0 = the number 18446744073709551616", "below 2^63");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,9223372036854775808]}}", 4, "below 2^63");
    }

    @Test void dimsWhoseProductOverflows() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, "tensor \"a\"", "overflows 63 bits");
        // element count fits but the byte size does not
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,4]}}", 4, "overflows 63 bits");
        // a zero dimension makes the product 0 however large the rest: that is a valid empty tensor, and the
        // mismatch with its 4-byte range is what gets reported
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[0,9223372036854775807],\"data_offsets\":[0,4]}}", 4, "needs 0 bytes", "span 4 bytes");
    }

    // ------------------------------------------------------------------ offsets

    @Test void beginAfterEnd() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "tensor \"a\"", "[4, 0]", "begin is after its end");
    }

    @Test void offsetsOutsideTheDataSection() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 4, "tensor \"a\"", "[4, 8]", "outside the data section", "4 bytes");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[9223372036854775803,9223372036854775807]}}", 4, "outside the data section");
    }

    @Test void offsetsNotMatchingShapeAndDtype() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 20, "tensor \"a\"", "(F32 [2, 3]) needs 24 bytes", "span 20 bytes");
        rejected("{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "needs 4 bytes", "span 8 bytes");
    }

    @Test void overlappingTensors() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "\"b\"", "overlaps tensor \"a\"");
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                8, "overlaps");
        // an empty tensor placed inside another one (the reference implementation rejects this as well)
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]}}",
                8, "\"e\"", "overlaps tensor \"a\"");
    }

    @Test void holesInTheDataSection() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                12, "bytes [4, 8)", "belong to no tensor", "\"b\"");
        rejected("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "bytes [0, 4)");
    }

    @Test void trailingBytesAfterTheLastTensor() {
        rejected("{" + A4 + "}", 8, "data section of 8 bytes", "cover only the first 4 bytes");
        rejected("{}", 3, "data section of 3 bytes", "cover only the first 0 bytes");
    }

    @Test void truncatedFiles() {
        byte[] good = StBytes.file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16);
        rejected(Arrays.copyOf(good, good.length - 1), "outside the data section", "15 bytes");
        rejected(Arrays.copyOf(good, 20), "only 12 bytes follow");
        rejected(Arrays.copyOf(good, 5), "5 bytes long");
    }

    @Test void badMetadata() {
        rejected("{\"__metadata__\":[\"x\"]," + A4 + "}", 4, "\"__metadata__\" entry", "an array", "object of string values");
        rejected("{\"__metadata__\":{\"step\":1000}," + A4 + "}", 4, "\"__metadata__\" key \"step\"", "the number 1000", "must be strings");
    }

    @Test void notAFile() {
        var e = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(dir));
        assertTrue(e.getMessage().contains("is a directory") && e.getMessage().contains("WeightSource"), e.getMessage());
        Path missing = dir.resolve("missing.safetensors");
        var m = assertThrows(CheckpointException.class, () -> SafeTensorsFile.open(missing));
        assertTrue(m.getMessage().contains(missing.toString()) && m.getMessage().contains("does not exist"), m.getMessage());
    }

    @Test void hugeNumberLiteralIsRejectedQuickly() {
        rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[" + "9".repeat(5000) + "],\"data_offsets\":[0,4]}}", 4, "number literal", "limit");
    }
}
