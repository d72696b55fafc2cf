package org.dit4j.core.io;

import org.dit4j.core.tensor.DType;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.math.BigInteger;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parsed and fully validated header of one safetensors file.
 * <p>
 * Layout: 8 bytes little-endian u64 N, N bytes of UTF-8 JSON, then the data section. The JSON is an object whose
 * keys are tensor names mapping to {@code {"dtype": "...", "shape": [...], "data_offsets": [begin, end]}} (offsets
 * relative to the data section), plus an optional {@code "__metadata__"} object of string to string.
 * <p>
 * Validation follows the reference (Rust) implementation and is strict:
 * <ul>
 *   <li>N at most {@value #MAX_HEADER_BYTES} bytes and within the file; the header valid UTF-8, starting with
 *       '{', strict JSON (no duplicate keys), trailing whitespace (the writers' space padding) allowed. The header is
 *       read tensor entry by tensor entry, never as one JSON tree, and objects/arrays inside it may nest at most 8
 *       deep and hold at most {@value #MAX_JSON_ELEMENTS} elements, so memory stays a small multiple of N;</li>
 *   <li>each tensor entry has a string dtype known to the format, a shape of non-negative integers whose
 *       element count and byte size fit in 63 bits, and data_offsets [begin, end] with begin ≤ end and
 *       end − begin = numel × dtype size; unknown extra fields in an entry are ignored;</li>
 *   <li>the tensors, sorted by offset, tile the data section exactly: no overlap, no hole, nothing after the
 *       last tensor (the reference implementation rejects such files too, so files we accept load everywhere).</li>
 * </ul>
 * Dtypes the format knows but {@link DType} lacks (F64, I8, U8, I16, U16, U32, U64, F8_E8M0, C64, F4, F6_*)
 * do not stop a file from opening: their byte ranges are validated like any other, and asking for such a
 * tensor fails with a message naming it and its dtype.
 */
final class SafeTensorsHeader {
    /** Largest accepted header, as in the reference implementation. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    /** Most members or elements of any object or array inside the header (the top-level object is unlimited). */
    static final int MAX_JSON_ELEMENTS = 100_000;

    private static final ValueLayout.OfLong U64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Bits per element of every dtype the safetensors format defines. */
    private static final Map<String, FormatDtype> FORMAT_DTYPES = formatDtypes();

    private static final String DAMAGED = "; the file is damaged, truncated or was not written by a safetensors writer"
            + " — re-download or re-export it";

    /** A dtype of the safetensors format; {@code dtype} is null when dit4j does not support it. */
    record FormatDtype(String name, int bits, DType dtype) {}

    /** One tensor entry; offsets are relative to the data section. */
    record Entry(String name, FormatDtype type, long[] shape, long begin, long end) {
        String dtypeName() { return type.name(); }

        /** The dit4j dtype, or null when dit4j does not support this tensor's dtype. */
        DType dtype() { return type.dtype(); }
    }

    final long headerBytes;
    final long dataStart;
    final long dataBytes;
    final List<Entry> entries;
    final Map<String, String> metadata;

    private SafeTensorsHeader(long headerBytes, List<Entry> entries, Map<String, String> metadata, long fileSize) {
        this.headerBytes = headerBytes;
        this.dataStart = 8 + headerBytes;
        this.dataBytes = fileSize - dataStart;
        this.entries = entries;
        this.metadata = metadata;
    }

    /** Parses and validates the header of {@code file} (the whole file's bytes); {@code where} names it in errors. */
    static SafeTensorsHeader parse(MemorySegment file, String where) {
        long size = file.byteSize();
        if (size < 8)
            throw fail(where, "is " + size + " bytes long, shorter than the 8-byte header-length prefix of a safetensors file" + DAMAGED);
        long n = file.get(U64_LE, 0);
        if (n < 0 || n > MAX_HEADER_BYTES)
            throw fail(where, "declares a JSON header of " + Long.toUnsignedString(n) + " bytes, more than the limit of "
                    + MAX_HEADER_BYTES + " bytes (100 MB); " + otherFormat(file).orElse("it is not a safetensors file or its first 8 bytes are damaged"));
        if (n > size - 8)
            throw fail(where, "declares a JSON header of " + n + " bytes but only " + (size - 8) + " bytes follow the 8-byte prefix"
                    + " (file size " + size + ")" + otherFormat(file).map(h -> "; " + h).orElse(DAMAGED));
        if (n == 0) throw fail(where, "has an empty JSON header (length 0); expected a JSON object" + DAMAGED);
        byte[] bytes = file.asSlice(8, n).toArray(ValueLayout.JAVA_BYTE);
        int bad = firstInvalidUtf8(bytes);
        if (bad >= 0)
            throw fail(where, "has a JSON header that is not valid UTF-8 (bad byte 0x" + String.format("%02x", bytes[bad] & 0xFF)
                    + " at header byte " + bad + ")" + DAMAGED);
        String text = new String(bytes, StandardCharsets.UTF_8);
        bytes = null; // large headers: let the bytes go before the entries are built
        if (text.charAt(0) != '{')
            throw fail(where, "has a header that does not start with '{' (first character " + String.format("U+%04X", (int) text.charAt(0))
                    + "); expected a JSON object" + DAMAGED);
        long dataBytes = size - 8 - n;
        Map<String, String> metadata = Map.of();
        List<Entry> entries = new ArrayList<>();
        try {
            // members one by one: a header with millions of tensors is never held as one JSON tree
            Json.MemberReader r = Json.members(text, 8, MAX_JSON_ELEMENTS);
            while (r.hasNext()) {
                String name = r.nextName();
                Object value = r.nextValue();
                if (name.equals(METADATA_KEY)) metadata = parseMetadata(value, where);
                else entries.add(parseEntry(name, value, dataBytes, where));
            }
        } catch (Json.SyntaxException e) {
            throw fail(where, "has a header that is not valid JSON: " + e.getMessage() + DAMAGED);
        }
        checkTiling(entries, dataBytes, where);
        ((ArrayList<Entry>) entries).trimToSize();
        return new SafeTensorsHeader(n, Collections.unmodifiableList(entries), metadata, size);
    }

    /** Bits per element of a dtype the safetensors format defines, or -1. */
    static int formatBits(String dtypeName) {
        FormatDtype t = FORMAT_DTYPES.get(dtypeName);
        return t == null ? -1 : t.bits();
    }

    // ------------------------------------------------------------------ pieces

    /** A hint when the file's first bytes show a well-known non-safetensors checkpoint format. */
    private static java.util.Optional<String> otherFormat(MemorySegment file) {
        byte[] head = file.asSlice(0, Math.min(8, file.byteSize())).toArray(ValueLayout.JAVA_BYTE);
        String hint = null;
        if (head.length >= 4 && head[0] == 'P' && head[1] == 'K' && head[2] == 3 && head[3] == 4)
            hint = "it is a zip archive, which is how PyTorch saves .pt/.pth/.bin checkpoints (pickles)";
        else if ((head[0] & 0xFF) == 0x80 && head[1] >= 2 && head[1] <= 5)
            hint = "it is a Python pickle (a legacy PyTorch checkpoint)";
        else if (head.length >= 4 && head[0] == 'G' && head[1] == 'G' && head[2] == 'U' && head[3] == 'F')
            hint = "it is a GGUF file";
        return java.util.Optional.ofNullable(hint).map(h -> h + ", not safetensors; dit4j reads only .safetensors — use a safetensors"
                + " release of the model (diffusers or ComfyUI repackagings) or convert it with PyTorch + safetensors");
    }

    /**
     * Index of the first byte that breaks strict UTF-8 (overlong forms, surrogates, code points above U+10FFFF,
     * truncated sequences), or -1 when all of {@code b} is valid.
     */
    static int firstInvalidUtf8(byte[] b) {
        int i = 0, n = b.length;
        while (i < n) {
            int c = b[i] & 0xFF;
            if (c < 0x80) { i++; continue; }
            int len, lo = 0x80, hi = 0xBF;              // allowed range of the first continuation byte
            if (c >= 0xC2 && c <= 0xDF) len = 2;
            else if (c >= 0xE0 && c <= 0xEF) { len = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
            else if (c >= 0xF0 && c <= 0xF4) { len = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
            else return i;
            if (i + len > n) return i;
            int c1 = b[i + 1] & 0xFF;
            if (c1 < lo || c1 > hi) return i + 1;
            for (int k = 2; k < len; k++) {
                int ck = b[i + k] & 0xFF;
                if (ck < 0x80 || ck > 0xBF) return i + k;
            }
            i += len;
        }
        return -1;
    }

    private static Map<String, String> parseMetadata(Object v, String where) {
        if (v == null) return Map.of();
        if (!(v instanceof Map<?, ?> m))
            throw fail(where, "has a \"__metadata__\" entry that is " + describe(v) + "; expected an object of string values" + DAMAGED);
        Map<String, String> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getValue() instanceof String s))
                throw fail(where, "has \"__metadata__\" key " + Json.quote((String) e.getKey()) + " with value " + describe(e.getValue())
                        + "; metadata values must be strings" + DAMAGED);
            out.put((String) e.getKey(), s);
        }
        return Collections.unmodifiableMap(out);
    }

    private static Entry parseEntry(String name, Object v, long dataBytes, String where) {
        if (!(v instanceof Map<?, ?> m))
            throw fail(where, tensorRef(name) + " is " + describe(v) + "; expected an object with \"dtype\", \"shape\" and \"data_offsets\"" + DAMAGED);
        Object dt = m.get("dtype");
        if (!(dt instanceof String dtypeName))
            throw fail(where, tensorRef(name) + (m.containsKey("dtype") ? " has \"dtype\" " + describe(dt) + "; expected a string" : " has no \"dtype\"") + DAMAGED);
        FormatDtype type = FORMAT_DTYPES.get(dtypeName);
        if (type == null)
            throw fail(where, tensorRef(name) + " has dtype " + Json.quote(dtypeName) + ", which the safetensors format does not define"
                    + " (known: " + String.join(", ", FORMAT_DTYPES.keySet()) + ")" + DAMAGED);
        int bits = type.bits();
        long[] shape = nonNegativeLongs(m, "shape", -1, name, where);
        long[] offsets = nonNegativeLongs(m, "data_offsets", 2, name, where);
        long begin = offsets[0], end = offsets[1];
        if (begin > end)
            throw fail(where, tensorRef(name) + " has data_offsets [" + begin + ", " + end + "] whose begin is after its end" + DAMAGED);
        if (end > dataBytes)
            throw fail(where, tensorRef(name) + " has data_offsets [" + begin + ", " + end + "] reaching outside the data section, which has "
                    + dataBytes + " bytes" + DAMAGED);
        long numel = 1;
        long bytes;
        try {
            for (long d : shape) numel = Math.multiplyExact(numel, d);
            long totalBits = Math.multiplyExact(numel, (long) bits);
            if (totalBits % 8 != 0)
                throw fail(where, tensorRef(name) + " (" + dtypeName + " " + Arrays.toString(shape) + ") does not fill whole bytes" + DAMAGED);
            bytes = totalBits / 8;
        } catch (ArithmeticException e) {
            throw fail(where, tensorRef(name) + " has shape " + Arrays.toString(shape) + " whose element count or byte size overflows 63 bits" + DAMAGED);
        }
        if (end - begin != bytes)
            throw fail(where, tensorRef(name) + " (" + dtypeName + " " + Arrays.toString(shape) + ") needs " + bytes + " bytes, but its data_offsets ["
                    + begin + ", " + end + "] span " + (end - begin) + " bytes" + DAMAGED);
        return new Entry(name, type, shape, begin, end);
    }

    private static long[] nonNegativeLongs(Map<?, ?> m, String field, int exactLength, String name, String where) {
        String expected = exactLength < 0 ? "a list of non-negative integers" : "a list of 2 non-negative integers";
        Object v = m.get(field);
        if (!(v instanceof List<?> list))
            throw fail(where, tensorRef(name) + (m.containsKey(field) ? " has \"" + field + "\" " + describe(v) + "; expected " + expected
                    : " has no \"" + field + "\"") + DAMAGED);
        if (exactLength >= 0 && list.size() != exactLength)
            throw fail(where, tensorRef(name) + " has \"" + field + "\" with " + list.size() + " elements; expected " + expected + DAMAGED);
        long[] out = new long[list.size()];
        for (int i = 0; i < out.length; i++) {
            Object x = list.get(i);
            if (!(x instanceof Long l) || l < 0)
                throw fail(where, tensorRef(name) + " has \"" + field + "\" element " + i + " = " + describe(x) + "; expected " + expected
                        + (x instanceof BigInteger ? " below 2^63" : "") + DAMAGED);
            out[i] = l;
        }
        return out;
    }

    /** Sorted by (begin, end), tensors must follow each other without gap or overlap and end at the data end. */
    private static void checkTiling(List<Entry> entries, long dataBytes, String where) {
        Entry[] sorted = entries.toArray(new Entry[0]);
        Arrays.sort(sorted, Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long next = 0;
        Entry prev = null;
        for (Entry e : sorted) {
            if (e.begin < next)
                throw fail(where, "tensor " + Json.quote(e.name) + " at data_offsets [" + e.begin + ", " + e.end + "] overlaps tensor "
                        + Json.quote(prev.name) + " at [" + prev.begin + ", " + prev.end + "]; tensors must not share bytes" + DAMAGED);
            if (e.begin > next)
                throw fail(where, "bytes [" + next + ", " + e.begin + ") of the data section belong to no tensor (a hole before tensor "
                        + Json.quote(e.name) + "); tensors must cover the data section contiguously" + DAMAGED);
            next = e.end;
            prev = e;
        }
        if (next != dataBytes)
            throw fail(where, "has a data section of " + dataBytes + " bytes but its tensors cover only the first " + next
                    + " bytes; the file has trailing bytes or a tensor is missing from the header" + DAMAGED);
    }

    private static String tensorRef(String name) { return "tensor " + Json.quote(name); }

    static String describe(Object v) {
        if (v == null) return "null";
        if (v instanceof String s) return "the string " + Json.quote(s.length() <= 40 ? s : s.substring(0, 37) + "...");
        if (v instanceof Boolean b) return "the boolean " + b;
        if (v instanceof Number x) {
            String s = x.toString();
            return "the number " + (s.length() <= 40 ? s : s.substring(0, 37) + "...");
        }
        if (v instanceof List<?> l) return "an array of " + l.size() + " elements";
        return "an object";
    }

    private static CheckpointException fail(String where, String msg) {
        String sep = msg.startsWith("tensor ") || msg.startsWith("bytes ") ? ": " : " ";
        return new CheckpointException("safetensors file " + where + sep + msg);
    }

    private static Map<String, FormatDtype> formatDtypes() {
        Map<String, FormatDtype> m = new LinkedHashMap<>();
        String[] names = {"BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "I16", "U16", "F16", "BF16",
                "I32", "U32", "F32", "C64", "F64", "I64", "U64"};
        int[] bits = {8, 4, 6, 6, 8, 8, 8, 8, 8, 16, 16, 16, 16, 32, 32, 32, 64, 64, 64, 64};
        for (int i = 0; i < names.length; i++) m.put(names[i], new FormatDtype(names[i], bits[i], DType.fromSafetensorsName(names[i])));
        for (DType d : DType.values()) {
            FormatDtype f = m.get(d.safetensorsName());
            if (f == null || f.bits() != d.byteSize() * 8 || f.dtype() != d)
                throw new AssertionError("DType " + d + " disagrees with the safetensors dtype table");
        }
        return Collections.unmodifiableMap(m);
    }
}
