package org.dit4j.server.exec;

import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * ComfyUI's PromptQueue: a priority queue of pending prompts, the running one, the history (at most
 * {@value #MAX_HISTORY} entries, oldest dropped first) and the /free flags. {@code onChange} runs after every change
 * of the queue (the server broadcasts a {@code status} event).
 */
public final class PromptQueue {

    public static final int MAX_HISTORY = 10000;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final PriorityQueue<QueueItem> pending = new PriorityQueue<>();
    private final Map<Long, QueueItem> running = new LinkedHashMap<>();
    private final LinkedHashMap<String, ObjectNode> history = new LinkedHashMap<>();
    private final Map<String, Boolean> flags = new LinkedHashMap<>();
    private final Runnable onChange;
    private long taskCounter, sequence;

    public PromptQueue(Runnable onChange) { this.onChange = onChange; }

    /** A running task: the item and its task number. */
    public record Task(QueueItem item, long id) {}

    public long nextSequence() {
        lock.lock();
        try {
            return sequence++;
        } finally {
            lock.unlock();
        }
    }

    public void put(QueueItem item) {
        lock.lock();
        try {
            pending.add(item);
            notEmpty.signal();
        } finally {
            lock.unlock();
        }
        onChange.run();
    }

    /** Takes the highest-priority item, waiting at most {@code timeoutMillis}; null when none came (or a flag was set). */
    public Task take(long timeoutMillis) throws InterruptedException {
        Task t;
        lock.lock();
        try {
            long nanos = TimeUnit.MILLISECONDS.toNanos(timeoutMillis);
            while (pending.isEmpty()) {
                if (nanos <= 0 || !flags.isEmpty()) return null;
                nanos = notEmpty.awaitNanos(nanos);
            }
            QueueItem item = pending.poll();
            t = new Task(item, taskCounter++);
            running.put(t.id, item);
        } finally {
            lock.unlock();
        }
        onChange.run();
        return t;
    }

    /**
     * Moves a finished task to the history (sensitive extra_data is never part of the item's JSON). With
     * {@code notify} false the caller announces the change itself ({@link #changed()}), after its own events.
     */
    public void taskDone(Task t, ObjectNode historyEntry, boolean notify) {
        lock.lock();
        try {
            running.remove(t.id);
            if (history.size() > MAX_HISTORY) history.remove(history.keySet().iterator().next());
            history.put(t.item().promptId(), historyEntry);
        } finally {
            lock.unlock();
        }
        if (notify) onChange.run();
    }

    /** Announces a change made with notify=false. */
    public void changed() { onChange.run(); }

    public List<QueueItem> runningItems() {
        lock.lock();
        try {
            return new ArrayList<>(running.values());
        } finally {
            lock.unlock();
        }
    }

    /** Pending items in the order they will run. */
    public List<QueueItem> pendingItems() {
        lock.lock();
        try {
            List<QueueItem> l = new ArrayList<>(pending);
            l.sort(null);
            return l;
        } finally {
            lock.unlock();
        }
    }

    public int remaining() {
        lock.lock();
        try {
            return pending.size() + running.size();
        } finally {
            lock.unlock();
        }
    }

    public void wipe() {
        lock.lock();
        try {
            pending.clear();
        } finally {
            lock.unlock();
        }
        onChange.run();
    }

    /** Removes a pending item by prompt id; running prompts are interrupted instead. */
    public boolean delete(String promptId) {
        boolean removed;
        lock.lock();
        try {
            removed = pending.removeIf(i -> i.promptId().equals(promptId));
        } finally {
            lock.unlock();
        }
        if (removed) onChange.run();
        return removed;
    }

    /** {@code get_history}: all entries (the last {@code maxItems} when given, from {@code offset}) or one by id. */
    public Map<String, ObjectNode> history(String promptId, Integer maxItems, int offset) {
        lock.lock();
        try {
            Map<String, ObjectNode> out = new LinkedHashMap<>();
            if (promptId != null) {
                ObjectNode h = history.get(promptId);
                if (h != null) out.put(promptId, h.deepCopy());
                return out;
            }
            int off = offset;
            if (off < 0 && maxItems != null) off = history.size() - maxItems;
            int i = 0;
            for (var e : history.entrySet()) {
                if (i >= off) {
                    out.put(e.getKey(), e.getValue());
                    if (maxItems != null && out.size() >= maxItems) break;
                }
                i++;
            }
            return out;
        } finally {
            lock.unlock();
        }
    }

    public void wipeHistory() {
        lock.lock();
        try {
            history.clear();
        } finally {
            lock.unlock();
        }
    }

    public void deleteHistory(String promptId) {
        lock.lock();
        try {
            history.remove(promptId);
        } finally {
            lock.unlock();
        }
    }

    public void setFlag(String name, boolean value) {
        lock.lock();
        try {
            flags.put(name, value);
            notEmpty.signal();
        } finally {
            lock.unlock();
        }
    }

    /** Returns and clears the flags. */
    public Map<String, Boolean> takeFlags() {
        lock.lock();
        try {
            Map<String, Boolean> f = new LinkedHashMap<>(flags);
            flags.clear();
            return f;
        } finally {
            lock.unlock();
        }
    }
}
