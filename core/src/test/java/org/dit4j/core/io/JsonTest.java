package org.dit4j.core.io;

import org.junit.jupiter.api.Test;

import java.math.BigInteger;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class JsonTest {

    @Test void parsesAllValueKindsToTheDocumentedJavaTypes() {
        Object v = Json.parse(" {\"s\":\"a\\u00e9\\n\\\"\\/\",\"i\":-12,\"big\":123456789012345678901,\"max\":9223372036854775807,"
                + "\"d\":1.5e2,\"z\":0,\"neg0\":-0.0,\"t\":true,\"f\":false,\"n\":null,\"a\":[1,[],{}],\"o\":{}} \r\n");
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of("s", "i", "big", "max", "d", "z", "neg0", "t", "f", "n", "a", "o"), List.copyOf(m.keySet()));
        assertEquals("aé\n\"/", m.get("s"));
        assertEquals(-12L, m.get("i"));
        assertEquals(new BigInteger("123456789012345678901"), m.get("big"));
        assertEquals(Long.MAX_VALUE, m.get("max"));
        assertEquals(150.0, m.get("d"));
        assertEquals(0L, m.get("z"));
        assertEquals(-0.0, m.get("neg0"));
        assertEquals(Boolean.TRUE, m.get("t"));
        assertEquals(Boolean.FALSE, m.get("f"));
        assertTrue(m.containsKey("n"));
        assertNull(m.get("n"));
        assertEquals(List.of(1L, List.of(), Map.of()), m.get("a"));
        assertThrows(UnsupportedOperationException.class, () -> m.clear());
    }

    @Test void surrogatePairsInEscapesAndLiterals() {
        assertEquals("😀", Json.parse("\"\\ud83d\\ude00\""));
        assertEquals("😀", Json.parse("\"😀\""));
    }

    @Test void rejectsWhatRfc8259Forbids() {
        for (String bad : List.of("", " ", "{", "[1,]", "{\"a\":1,}", "01", "-", "1.", ".5", "1e", "+1", "\"abc", "\"\\x\"",
                "\"\\u12g4\"", "\"a\tb\"", "tru", "nul", "{a:1}", "{'a':1}", "[1 2]", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
                "1 2", "[1]]", "// c\n1", "NaN", "Infinity", "{\"a\":1,\"a\":2}", "\"\\u00", "\u00a01")) {
            assertThrows(Json.SyntaxException.class, () -> Json.parse(bad), "should reject: " + bad);
        }
    }

    @Test void errorsTellWhereAndWhat() {
        var e = assertThrows(Json.SyntaxException.class, () -> Json.parse("{\n  \"a\": [1,\n  2,,]\n}"));
        assertTrue(e.getMessage().contains("line 3, column 5"), e.getMessage());
        assertEquals(17, e.offset());
        var d = assertThrows(Json.SyntaxException.class, () -> Json.parse("{\"k\":1,\n\"k\":2}"));
        assertTrue(d.getMessage().contains("duplicate key \"k\"") && d.getMessage().contains("line 2, column 1"), d.getMessage());
    }

    @Test void depthAndNumberLengthAreLimited() {
        String deep = "[".repeat(65) + "]".repeat(65);
        var e = assertThrows(Json.SyntaxException.class, () -> Json.parse(deep));
        assertTrue(e.getMessage().contains("deeper than the limit of 64"), e.getMessage());
        assertEquals(64, depth(Json.parse("[".repeat(64) + "]".repeat(64))));
        assertThrows(Json.SyntaxException.class, () -> Json.parse("[[[]]]", 2));
        // a 100k-deep document must fail cleanly, not overflow the stack
        assertThrows(Json.SyntaxException.class, () -> Json.parse("[".repeat(100_000)));
        assertThrows(Json.SyntaxException.class, () -> Json.parse("1".repeat(Json.MAX_NUMBER_CHARS + 1)));
        assertEquals(Double.POSITIVE_INFINITY, Json.parse("1e999999999"));
    }

    @Test void quoteRoundTrips() {
        for (String s : List.of("", "plain", "q\"b\\s/", "\u0000\u001f\u007f", "tab\tnl\ncr\rbs\bff\f", "äß漢😀", "lone \ud800 high", "lone \udc00 low")) {
            String q = Json.quote(s);
            assertTrue(q.chars().noneMatch(c -> c < 0x20), q);
            assertEquals(s, Json.parse(q), q);
        }
        assertEquals("\"\\u0001\"", Json.quote("\u0001"));
    }

    private static int depth(Object o) {
        if (o instanceof List<?> l) return 1 + l.stream().mapToInt(JsonTest::depth).max().orElse(0);
        return 0;
    }

    @Test void memberReaderStreamsTheTopLevelObject() {
        Json.MemberReader r = Json.members(" { \"a\" : [1, {\"x\": null}], \"b\":\"s\" , \"c\":{}} \n", 8, 10);
        assertTrue(r.hasNext());
        assertEquals("a", r.nextName());
        assertEquals(Arrays.asList(1L, java.util.Collections.singletonMap("x", null)), r.nextValue());
        assertTrue(r.hasNext());
        assertEquals("b", r.nextName());
        assertEquals("s", r.nextValue());
        assertTrue(r.hasNext());
        assertEquals("c", r.nextName());
        assertEquals(Map.of(), r.nextValue());
        assertFalse(r.hasNext());
        assertFalse(r.hasNext());

        Json.MemberReader empty = Json.members("{}", 8, 10);
        assertFalse(empty.hasNext());
    }

    @Test void memberReaderIsAsStrictAsParse() {
        for (String bad : List.of("[]", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\" 1}", "{\"a\":1}x", "{\"a\":1,\"a\":2}", "{a:1}",
                "{\"a\":[[[1]]]}", "{\"a\":[1,2,3,4]}", "{\"a\":{\"x\":1,\"y\":2,\"z\":3,\"w\":4}}", "{\"a\":1")) {
            assertThrows(Json.SyntaxException.class, () -> {
                Json.MemberReader r = Json.members(bad, 3, 3);
                while (r.hasNext()) { r.nextName(); r.nextValue(); }
            }, "should reject: " + bad);
        }
        // the top level itself is not limited by maxElements
        Json.MemberReader r = Json.members("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", 3, 3);
        int n = 0;
        while (r.hasNext()) { r.nextName(); r.nextValue(); n++; }
        assertEquals(5, n);
    }

    @Test void elementLimitOfParse() {
        assertEquals(List.of(1L, 2L), Json.parse("[1,2]", 4, 2));
        var e = assertThrows(Json.SyntaxException.class, () -> Json.parse("[1,2,3]", 4, 2));
        assertTrue(e.getMessage().contains("more elements than the limit of 2"), e.getMessage());
        var o = assertThrows(Json.SyntaxException.class, () -> Json.parse("{\"a\":1,\"b\":2,\"c\":3}", 4, 2));
        assertTrue(o.getMessage().contains("more members than the limit of 2"), o.getMessage());
    }
}
