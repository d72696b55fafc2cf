package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Mutates valid files (bit flips, byte overwrites in the header and the length prefix, truncations, insertions,
 * deletions, JSON-aware edits of numbers, dtypes and structure) and checks that every mutant either opens with all
 * tensors readable inside the file and not overlapping, or fails with a CheckpointException. Anything else
 * (another exception, an error, a read outside the tensor's bytes) fails the test. Fixed seed: reproducible.
 */
class SafeTensorsFuzzTest {
    private static final long SEED = 0x5AFE_7E45L;
    private static final int IN_MEMORY = 8000;
    private static final int ON_DISK = 400;

    @TempDir Path dir;

    private record Outcome(int accepted, int rejected) {}

    /** Phrases of the validator's messages; the fuzzer must reach each of these checks at least once. */
    private static final List<String> CHECKS = List.of("shorter than the 8-byte", "more than the limit", "bytes follow the 8-byte prefix",
            "not valid UTF-8", "does not start with '{'", "not valid JSON", "duplicate key", "expected an object", "has no \"",
            "expected a string", "expected a list", "does not define", "overflows 63 bits", "begin is after its end",
            "outside the data section", "needs ", "overlaps tensor", "belong to no tensor", "cover only the first",
            "\"__metadata__\"");
    private final java.util.Set<String> reached = new java.util.TreeSet<>();

    @Test
    @Timeout(60)
    void mutatedFilesOpenCleanlyOrFailWithCheckpointException() throws IOException {
        List<byte[]> seeds = seeds();
        for (byte[] s : seeds) assertEquals(1, run(s, "seed", null).accepted(), "seeds must be valid");
        Random rnd = new Random(SEED);
        long t0 = System.nanoTime();
        int accepted = 0, rejected = 0;
        long tMem = 0;
        for (int i = 0; i < IN_MEMORY + ON_DISK; i++) {
            if (i == IN_MEMORY) tMem = System.nanoTime() - t0;
            byte[] base = seeds.get(rnd.nextInt(seeds.size()));
            List<String> log = new ArrayList<>();
            byte[] m = base;
            int rounds = 1 + (rnd.nextInt(4) == 0 ? rnd.nextInt(3) : 0);
            for (int r = 0; r < rounds; r++) m = mutate(m, rnd, log);
            Outcome o = run(m, "iteration " + i + " " + log, i >= IN_MEMORY ? dir.resolve("fuzz.safetensors") : null);
            accepted += o.accepted();
            rejected += o.rejected();
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertEquals(IN_MEMORY + ON_DISK, accepted + rejected);
        // both outcomes must be common, or the mutations are not exercising the validator
        assertTrue(accepted > 300, "only " + accepted + " mutants were accepted");
        assertTrue(rejected > 3000, "only " + rejected + " mutants were rejected");
        List<String> missed = CHECKS.stream().filter(c -> !reached.contains(c)).toList();
        assertTrue(missed.isEmpty(), "the mutants never reached these checks: " + missed);
        System.out.printf("safetensors fuzz: %d mutants (%d in memory in %.2f s, %d via mapped temp files), %d accepted, %d rejected, %.2f s%n",
                accepted + rejected, IN_MEMORY, tMem / 1e9, ON_DISK, accepted, rejected, seconds);
    }

    // ------------------------------------------------------------------ checking one mutant

    private Outcome run(byte[] bytes, String what, Path file) {
        try {
            SafeTensorsFile f;
            if (file == null) {
                f = SafeTensorsFile.fromBytes(Path.of("mutant.safetensors"), MemorySegment.ofArray(bytes));
            } else {
                Files.write(file, bytes);
                f = SafeTensorsFile.open(file);
            }
            try (f) {
                checkReadable(f, bytes, what);
            }
            return new Outcome(1, 0);
        } catch (CheckpointException e) {
            String m = e.getMessage();
            if (m == null || m.isBlank() || !m.contains(file == null ? "mutant.safetensors" : file.toString()))
                fail(what + ": CheckpointException without the file name: " + m + "\n" + dump(bytes));
            for (String c : CHECKS) if (m.contains(c)) reached.add(c);
            return new Outcome(0, 1);
        } catch (Throwable t) {
            throw new AssertionError(what + ": unexpected " + t + "\n" + dump(bytes), t);
        }
    }

    /** Every tensor of an accepted file lies inside the file, after the header, without overlap, and reads back the file's bytes. */
    private static void checkReadable(SafeTensorsFile f, byte[] bytes, String what) {
        long dataStart = 8 + StBytes.declaredLength(bytes);
        List<long[]> ranges = new ArrayList<>();
        boolean allSupported = true;
        long covered = 0;
        MemorySegment whole = MemorySegment.ofArray(bytes);
        for (String name : f.names()) {
            String dt = f.dtypeName(name);
            assertNotNull(dt, what);
            if (DType.fromSafetensorsName(dt) == null) {
                allSupported = false;
                assertThrows(CheckpointException.class, () -> f.tensor(name), what);
                continue;
            }
            TensorInfo info = f.info(name);
            assertTrue(info.dataOffset() >= dataStart && info.byteSize() >= 0
                    && info.dataOffset() + info.byteSize() <= bytes.length, what + ": " + info + " outside the file");
            assertEquals(info.shape().numel() * info.dtype().byteSize(), info.byteSize(), what);
            Tensor t = f.tensor(name);
            assertEquals(info.byteSize(), t.byteSize(), what);
            for (long i = 0; i < t.numel(); i++) t.getFloat(i);
            assertEquals(-1, t.segment().mismatch(whole.asSlice(info.dataOffset(), info.byteSize())), what + ": bytes of " + name);
            if (info.byteSize() > 0) ranges.add(new long[] {info.dataOffset(), info.dataOffset() + info.byteSize()});
            covered += info.byteSize();
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        for (int i = 1; i < ranges.size(); i++)
            assertTrue(ranges.get(i)[0] >= ranges.get(i - 1)[1], what + ": overlapping tensors");
        if (allSupported) assertEquals(bytes.length - dataStart, covered, what + ": data section not exactly covered");
    }

    // ------------------------------------------------------------------ seeds

    private static List<byte[]> seeds() {
        Random rnd = new Random(SEED + 1);
        List<byte[]> out = new ArrayList<>();

        Map<String, Tensor> mixed = new LinkedHashMap<>();
        mixed.put("blocks.0.attn.qkv.weight", SafeTensorsRoundTripTest.randomTensor(DType.F32, rnd, 2, 3));
        mixed.put("blocks.0.attn.qkv.bias", SafeTensorsRoundTripTest.randomTensor(DType.BF16, rnd, 4));
        mixed.put("scale", SafeTensorsRoundTripTest.randomTensor(DType.F16, rnd));
        mixed.put("w8", SafeTensorsRoundTripTest.randomTensor(DType.F8_E4M3, rnd, 5));
        mixed.put("w8b", SafeTensorsRoundTripTest.randomTensor(DType.F8_E5M2, rnd, 3, 1));
        mixed.put("ids", SafeTensorsRoundTripTest.randomTensor(DType.I32, rnd, 2));
        mixed.put("step", SafeTensorsRoundTripTest.randomTensor(DType.I64, rnd, 1));
        mixed.put("mask", SafeTensorsRoundTripTest.randomTensor(DType.BOOL, rnd, 3));
        out.add(StBytes.written(mixed, Map.of("format", "pt", "modelspec.title", "fuzz seed")));

        Map<String, Tensor> edge = new LinkedHashMap<>();
        edge.put("empty", Tensor.zeros(DType.BF16, 0));
        edge.put("scalar", SafeTensorsRoundTripTest.randomTensor(DType.F32, rnd));
        edge.put("empty2", Tensor.zeros(DType.I64, 3, 0, 2));
        edge.put("tail", SafeTensorsRoundTripTest.randomTensor(DType.F16, rnd, 2, 2));
        out.add(StBytes.written(edge, Map.of()));

        Map<String, Tensor> many = new LinkedHashMap<>();
        for (int i = 0; i < 20; i++)
            many.put("model.diffusion_model.double_blocks." + i + ".img_mod.lin.weight",
                    SafeTensorsRoundTripTest.randomTensor(DType.values()[i % DType.values().length], rnd, 1 + i % 3, 2));
        out.add(StBytes.written(many, Map.of("k", "v")));

        out.add(StBytes.written(Map.of(), Map.of("only", "metadata")));
        out.add(StBytes.written(Map.of("big", SafeTensorsRoundTripTest.randomTensor(DType.F32, rnd, 16, 16)), Map.of()));

        // hand-written: shuffled header order, a dtype dit4j does not support, escapes in names
        String json = "{\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]},"
                + "\"a\\u00e9\\n\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"c\":{\"dtype\":\"BF16\",\"shape\":[2,1],\"data_offsets\":[11,15]}}   ";
        out.add(StBytes.file(json, 15));
        return out;
    }

    // ------------------------------------------------------------------ mutations

    private static final byte[] INTERESTING = "{}[]\":,-0123456789. \\eEnulltruefalse".getBytes(StandardCharsets.US_ASCII);
    private static final Pattern NUMBER = Pattern.compile("-?\\d+(\\.\\d+)?([eE][-+]?\\d+)?");
    private static final Pattern STRING = Pattern.compile("\"(?:[^\"\\\\]|\\\\.)*\"");
    private static final Pattern OFFSETS = Pattern.compile("\\[\\d+,\\d+\\]");
    private static final Pattern ENTRY_VALUE = Pattern.compile(":\\{\"dtype\"[^}]*\\}");
    private static final Pattern ENTRY = Pattern.compile("\"[^\"]*\":\\{\"dtype\"[^}]*\\}");
    private static final String[] NUMBERS = {"0", "1", "2", "-1", "1.5", "1e2", "4294967296", "9223372036854775807",
            "9223372036854775808", "18446744073709551616", "00", "-0", "4611686018427387904"};
    private static final String[] VALUES = {"null", "true", "{}", "[]", "\"x\"", "[0]", "[0,0]", "[1,2,3]", "0", "\"F32\"", "{\"a\":1}"};
    private static final String[] DTYPES = {"F32", "BF16", "F16", "F8_E4M3", "F8_E5M2", "I32", "I64", "BOOL", "F64", "U8", "I8",
            "F8_E8M0", "F4", "X", "", "f32"};

    private static byte[] mutate(byte[] in, Random rnd, List<String> log) {
        int kind = rnd.nextInt(12);
        long n = in.length >= 8 ? StBytes.declaredLength(in) : -1;
        boolean headerInside = n >= 0 && n <= in.length - 8;
        int headerEnd = headerInside ? (int) (8 + n) : in.length;
        switch (kind) {
            case 0 -> { // bit flip, mostly in prefix + header
                byte[] b = in.clone();
                if (b.length == 0) return b;
                int at = rnd.nextInt(5) > 0 ? rnd.nextInt(Math.max(1, headerEnd)) : rnd.nextInt(b.length);
                at = Math.min(at, b.length - 1);
                b[at] ^= (byte) (1 << rnd.nextInt(8));
                log.add("flip@" + at);
                return b;
            }
            case 1 -> { // byte overwrite in the header
                byte[] b = in.clone();
                if (headerEnd <= 8) return b;
                int at = 8 + rnd.nextInt(headerEnd - 8);
                b[at] = rnd.nextBoolean() ? INTERESTING[rnd.nextInt(INTERESTING.length)] : (byte) rnd.nextInt(256);
                log.add("set@" + at + "=" + (b[at] & 0xFF));
                return b;
            }
            case 2 -> { // length prefix
                if (in.length < 8) return in;
                byte[] b = in.clone();
                long v = switch (rnd.nextInt(6)) {
                    case 0 -> rnd.nextLong();
                    case 1 -> n + rnd.nextInt(33) - 16;
                    case 2 -> n ^ (1L << rnd.nextInt(64));
                    case 3 -> in.length - 8 - rnd.nextInt(3);
                    case 4 -> new long[] {0, 1, 2, Long.MAX_VALUE, -1, 100_000_000, 100_000_001, Integer.MAX_VALUE}[rnd.nextInt(8)];
                    default -> rnd.nextInt(Math.max(1, in.length));
                };
                ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, v);
                log.add("prefix=" + v);
                return b;
            }
            case 3 -> { // truncation
                int len = rnd.nextInt(in.length + 1);
                log.add("truncate=" + len);
                return Arrays.copyOf(in, len);
            }
            case 4 -> { // insertion, prefix fixed up half of the time
                int at = rnd.nextInt(in.length + 1);
                byte[] ins = new byte[1 + rnd.nextInt(16)];
                for (int i = 0; i < ins.length; i++) ins[i] = rnd.nextBoolean() ? INTERESTING[rnd.nextInt(INTERESTING.length)] : (byte) rnd.nextInt(256);
                byte[] b = new byte[in.length + ins.length];
                System.arraycopy(in, 0, b, 0, at);
                System.arraycopy(ins, 0, b, at, ins.length);
                System.arraycopy(in, at, b, at + ins.length, in.length - at);
                boolean fix = headerInside && at >= 8 && at <= headerEnd && rnd.nextBoolean();
                if (fix) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, n + ins.length);
                log.add("insert@" + at + "x" + ins.length + (fix ? "+fix" : ""));
                return b;
            }
            case 5 -> { // deletion, prefix fixed up half of the time
                if (in.length == 0) return in;
                int at = rnd.nextInt(in.length);
                int len = Math.min(1 + rnd.nextInt(16), in.length - at);
                byte[] b = new byte[in.length - len];
                System.arraycopy(in, 0, b, 0, at);
                System.arraycopy(in, at + len, b, at, in.length - at - len);
                boolean fix = headerInside && at >= 8 && at + len <= headerEnd && rnd.nextBoolean();
                if (fix) ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, n - len);
                log.add("delete@" + at + "x" + len + (fix ? "+fix" : ""));
                return b;
            }
            case 6 -> { // data section grows or shrinks at the end
                int delta = rnd.nextInt(17) - 8;
                log.add("resize" + delta);
                return Arrays.copyOf(in, Math.max(0, in.length + delta));
            }
            default -> { // JSON-aware edits of the header text; the prefix always matches the new header
                if (!headerInside || n == 0) return mutate(in, rnd, log);
                String h = new String(in, 8, (int) n, StandardCharsets.ISO_8859_1);
                String data = new String(in, headerEnd, in.length - headerEnd, StandardCharsets.ISO_8859_1);
                String h2 = switch (kind) {
                    case 7 -> replaceMatch(h, NUMBER, rnd, m -> numberVariant(m, rnd), log, "number");
                    case 8 -> replaceMatch(h, STRING, rnd, m -> isDtypeLiteral(m)
                            ? "\"" + DTYPES[rnd.nextInt(DTYPES.length)] + "\"" : mangleString(m, rnd), log, "string");
                    case 9 -> replaceMatch(h, new Pattern[] {OFFSETS, NUMBER, ENTRY_VALUE}[rnd.nextInt(3)], rnd,
                            m -> (m.startsWith(":") ? ":" : "") + VALUES[rnd.nextInt(VALUES.length)], log, "value");
                    case 10 -> swapOffsets(h, rnd, log);
                    default -> duplicateOrDropEntry(h, rnd, log);
                };
                byte[] hb = h2.getBytes(StandardCharsets.ISO_8859_1);
                if (rnd.nextInt(4) == 0) data = data + "\0".repeat(rnd.nextInt(9)); // sometimes also change the data length
                byte[] db = data.getBytes(StandardCharsets.ISO_8859_1);
                return StBytes.raw(hb.length, hb, db);
            }
        }
    }

    private static boolean isDtypeLiteral(String quoted) {
        String s = quoted.substring(1, quoted.length() - 1);
        for (String d : DTYPES) if (d.equals(s) && !d.isEmpty()) return true;
        return false;
    }

    private static String numberVariant(String m, Random rnd) {
        if (rnd.nextBoolean()) return NUMBERS[rnd.nextInt(NUMBERS.length)];
        try {
            long v = Long.parseLong(m);
            long[] deltas = {1, -1, 2, -2, 4, -4, 8, v, -v, 1L << 32};
            return Long.toString(v + deltas[rnd.nextInt(deltas.length)]);
        } catch (NumberFormatException e) {
            return "1";
        }
    }

    private static String mangleString(String m, Random rnd) {
        return switch (rnd.nextInt(4)) {
            case 0 -> m.substring(0, m.length() - 1);                         // lose the closing quote
            case 1 -> "\"__metadata__\"";
            case 2 -> m.replace("shape", "shap").replace("data_offsets", "offsets").replace("dtype", "type");
            default -> "\"" + m.substring(1, m.length() - 1) + "\\\"";       // escaped quote at the end
        };
    }

    private interface Variant { String of(String match); }

    private static String replaceMatch(String h, Pattern p, Random rnd, Variant v, List<String> log, String what) {
        List<int[]> spans = new ArrayList<>();
        Matcher m = p.matcher(h);
        while (m.find()) spans.add(new int[] {m.start(), m.end()});
        if (spans.isEmpty()) { log.add(what + ":none"); return h; }
        int[] s = spans.get(rnd.nextInt(spans.size()));
        String rep = v.of(h.substring(s[0], s[1]));
        log.add(what + "@" + s[0] + "=" + rep);
        return h.substring(0, s[0]) + rep + h.substring(s[1]);
    }

    private static String swapOffsets(String h, Random rnd, List<String> log) {
        List<int[]> spans = new ArrayList<>();
        Matcher m = OFFSETS.matcher(h);
        while (m.find()) spans.add(new int[] {m.start(), m.end()});
        if (spans.size() < 2) { log.add("swap:none"); return h; }
        int i = rnd.nextInt(spans.size()), j = rnd.nextInt(spans.size());
        if (i == j) return h;
        int[] a = spans.get(Math.min(i, j)), b = spans.get(Math.max(i, j));
        log.add("swap@" + a[0] + "," + b[0]);
        return h.substring(0, a[0]) + h.substring(b[0], b[1]) + h.substring(a[1], b[0]) + h.substring(a[0], a[1]) + h.substring(b[1]);
    }

    private static String duplicateOrDropEntry(String h, Random rnd, List<String> log) {
        List<int[]> spans = new ArrayList<>();
        Matcher m = ENTRY.matcher(h);
        while (m.find()) spans.add(new int[] {m.start(), m.end()});
        if (spans.isEmpty()) { log.add("entry:none"); return h; }
        int[] s = spans.get(rnd.nextInt(spans.size()));
        String entry = h.substring(s[0], s[1]);
        if (rnd.nextBoolean()) {
            log.add("dup@" + s[0]);
            return h.substring(0, s[1]) + "," + entry + h.substring(s[1]);
        }
        log.add("drop@" + s[0]);
        int end = s[1] < h.length() && h.charAt(s[1]) == ',' ? s[1] + 1 : s[1];
        return h.substring(0, s[0]) + h.substring(end);
    }

    private static String dump(byte[] b) {
        int n = Math.min(b.length, 400);
        return "file of " + b.length + " bytes, first " + n + ": " + HexFormat.of().formatHex(b, 0, n)
                + "\n as text: " + new String(b, 0, n, StandardCharsets.ISO_8859_1).replaceAll("[^\\x20-\\x7e]", ".");
    }
}
