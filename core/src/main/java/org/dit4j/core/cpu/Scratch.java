package org.dit4j.core.cpu;

/**
 * A per-thread reusable float buffer that is safe under re-entrancy: {@link #borrow} takes the thread's buffer out
 * (a nested user on the same thread, e.g. a task run by a fork-join thread while it waits, gets a fresh array),
 * {@link #giveBack} puts it back for the next call.
 */
final class Scratch {
    private final ThreadLocal<float[]> cached = new ThreadLocal<>();

    /** A buffer of at least {@code n} floats, with arbitrary contents. */
    float[] borrow(int n) {
        float[] a = cached.get();
        if (a != null && a.length >= n) {
            cached.set(null);
            return a;
        }
        return new float[n];
    }

    void giveBack(float[] a) {
        float[] c = cached.get();
        if (c == null || c.length < a.length) cached.set(a);
    }
}
