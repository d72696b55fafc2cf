package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.json.Json;

import java.util.List;

/**
 * A queued prompt: ComfyUI's tuple {@code (number, prompt_id, prompt, extra_data, outputs_to_execute, sensitive)}.
 * {@code number} is the priority (lower runs first); it is an integer unless the client sent one.
 */
public record QueueItem(Number number, String promptId, ObjectNode prompt, ObjectNode extraData, List<String> outputs, ObjectNode sensitive,
                        long sequence) implements Comparable<QueueItem> {

    /** The first five fields as ComfyUI returns them in /queue and history. */
    public ArrayNode toJson() {
        ArrayNode a = Json.array();
        a.add(Json.node(number));
        a.add(promptId);
        a.add(prompt);
        a.add(extraData);
        a.add(Json.node(outputs));
        return a;
    }

    /** Python's tuple ordering of the heap: number, then prompt_id. */
    @Override public int compareTo(QueueItem o) {
        int c = Double.compare(number.doubleValue(), o.number.doubleValue());
        if (c != 0) return c;
        c = promptId.compareTo(o.promptId);
        return c != 0 ? c : Long.compare(sequence, o.sequence);
    }
}
