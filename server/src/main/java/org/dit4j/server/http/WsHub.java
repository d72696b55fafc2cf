package org.dit4j.server.http;

import com.fasterxml.jackson.databind.JsonNode;
import io.javalin.websocket.WsContext;
import org.dit4j.server.exec.EventSink;
import org.dit4j.server.json.Json;

import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;

/**
 * The WebSocket clients by session id (ComfyUI's {@code sockets}) and one publisher thread that sends events in
 * the order they were produced ({@code {"type": ..., "data": ...}} text frames, and binary preview frames), as ComfyUI's publish loop does.
 */
public final class WsHub implements EventSink, AutoCloseable {

    private record Msg(String text, byte[] bytes, String sid) {}

    private final Map<String, WsContext> sockets = new ConcurrentHashMap<>();
    private final BlockingQueue<Msg> out = new LinkedBlockingQueue<>();
    private final Thread publisher;
    private volatile boolean closed;

    WsHub() {
        publisher = Thread.ofPlatform().daemon().name("dit4j-ws-publisher").start(this::publishLoop);
    }

    void add(String sid, WsContext ctx) {
        WsContext old = sockets.put(sid, ctx);
        if (old != null && old != ctx) {
            try {
                old.closeSession();
            } catch (RuntimeException e) {
                // already gone
            }
        }
    }

    void remove(String sid, WsContext ctx) { sockets.remove(sid, ctx); }

    int clients() { return sockets.size(); }

    @Override public void send(String type, JsonNode data, String sid) {
        out.add(new Msg(Json.write(Json.obj("type", type, "data", data)), null, sid));
    }

    @Override public void sendBinary(byte[] message, String sid) {
        out.add(new Msg(null, message.clone(), sid));
    }

    private void publishLoop() {
        while (!closed) {
            Msg m;
            try {
                m = out.take();
            } catch (InterruptedException e) {
                return;
            }
            if (m.sid == null) sockets.values().forEach(ws -> deliver(ws, m));
            else {
                WsContext ws = sockets.get(m.sid);
                if (ws != null) deliver(ws, m);
            }
        }
    }

    private static void deliver(WsContext ws, Msg m) {
        try {
            if (ws.session.isOpen()) {
                if (m.text != null) ws.send(m.text);
                else ws.send(java.nio.ByteBuffer.wrap(m.bytes));
            }
        } catch (RuntimeException e) {
            // a client that went away misses the message, as ComfyUI's send_socket_catch_exception
        }
    }

    /** Waits until every queued event was handed to the sockets (tests, shutdown). */
    void drain(long timeoutMillis) {
        long end = System.currentTimeMillis() + timeoutMillis;
        while (!out.isEmpty() && System.currentTimeMillis() < end) Thread.onSpinWait();
    }

    @Override public void close() {
        drain(1000);
        closed = true;
        publisher.interrupt();
    }
}
