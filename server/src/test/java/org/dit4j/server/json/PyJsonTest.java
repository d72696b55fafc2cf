package org.dit4j.server.json;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Python's json.dumps / repr forms (expected strings as CPython 3.12 prints them). */
class PyJsonTest {

    @Test void dumpsAsPythonJsonModule() throws Exception {
        assertEquals("{\"a\": [1, 2.5, true, null], \"b\": {\"c\": \"x\\\"y\"}}", PyJson.dumps(Json.parse("{\"a\":[1,2.5,true,null],\"b\":{\"c\":\"x\\\"y\"}}")));
        assertEquals("\"caf\\u00e9 \\ud83e\\udd8a\\n\"", PyJson.dumps(Json.F.textNode("café 🦊\n")));
        assertEquals("18446744073709551615", PyJson.dumps(Json.parse("18446744073709551615")));
    }

    @Test void floatReprAsPython() {
        assertEquals("1.0", PyJson.floatRepr(1.0));
        assertEquals("0.0001", PyJson.floatRepr(1e-4));
        assertEquals("1e-05", PyJson.floatRepr(1e-5));
        assertEquals("1e+16", PyJson.floatRepr(1e16));
        assertEquals("1000000000000000.0", PyJson.floatRepr(1e15));
        assertEquals("0.1", PyJson.floatRepr(0.1));
        assertEquals("-2.5", PyJson.floatRepr(-2.5));
        assertEquals("1.15", PyJson.floatRepr(1.15));
        assertEquals("1.7976931348623157e+308", PyJson.floatRepr(Double.MAX_VALUE));
    }

    @Test void reprOfStringsAndLists() {
        assertEquals("['a', \"it's\", 'q\\'\"']", PyJson.listRepr(List.of("a", "it's", "q'\"")));
    }
}
