package org.dit4j.core.io;

import org.dit4j.core.tensor.Tensor;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Map;

/** Builds safetensors files as bytes, for tests (valid ones through the writer's header, hostile ones by hand). */
final class StBytes {
    private StBytes() {}

    /** 8-byte little-endian prefix {@code declaredLength}, then {@code header}, then {@code data}. */
    static byte[] raw(long declaredLength, byte[] header, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(declaredLength).put(header).put(data);
        return b.array();
    }

    /** A file with the given JSON header (correct length prefix) and {@code dataBytes} bytes of data 0, 1, 2, ... */
    static byte[] file(String json, int dataBytes) {
        byte[] h = json.getBytes(StandardCharsets.UTF_8);
        byte[] d = new byte[dataBytes];
        for (int i = 0; i < d.length; i++) d[i] = (byte) i;
        return raw(h.length, h, d);
    }

    /** The bytes SafeTensorsWriter would write for these host tensors. */
    static byte[] written(Map<String, Tensor> tensors, Map<String, String> metadata) {
        byte[] header = SafeTensorsWriter.header(tensors, metadata);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).array());
        out.writeBytes(header);
        for (Tensor t : tensors.values()) out.writeBytes(t.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        return out.toByteArray();
    }

    /** The header length a file declares. */
    static long declaredLength(byte[] file) {
        return ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }
}
