package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.JsonNode;

/** Where execution events go: the WebSocket hub ({@code {"type": type, "data": data}} to one client or all). */
@FunctionalInterface
public interface EventSink {

    /** Sends to client {@code sid}, or to every client when {@code sid} is null. */
    void send(String type, JsonNode data, String sid);

    /** Sends a binary message (a preview image: event type, image type, bytes) in order with the events. */
    default void sendBinary(byte[] message, String sid) {}

    EventSink NONE = (type, data, sid) -> {};
}
