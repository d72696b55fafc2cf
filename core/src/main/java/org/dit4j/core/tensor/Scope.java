package org.dit4j.core.tensor;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Deterministic lifetime for intermediates. While a scope is open on a thread, every tensor a backend allocates on
 * that thread belongs to the innermost scope and is released when the scope closes, unless {@link #keep} hands it
 * to the enclosing scope (or, with no enclosing scope, to the caller, who must {@link Tensor#close()} it).
 * <pre>
 * try (Scope s = Scope.open()) {
 *     Tensor h = ops.linear(x, w, b);      // freed at the end of the block
 *     return s.keep(ops.add(h, x));        // survives the block
 * }
 * </pre>
 * Scopes nest per thread; close them in reverse order of opening (try-with-resources does).
 */
public final class Scope implements AutoCloseable {
    private static final ThreadLocal<Deque<Scope>> STACK = ThreadLocal.withInitial(ArrayDeque::new);

    private final List<Tensor> owned = new ArrayList<>();
    private final Thread thread = Thread.currentThread();
    private boolean closed;

    private Scope() {}

    public static Scope open() {
        Scope s = new Scope();
        STACK.get().push(s);
        return s;
    }

    /** The innermost open scope of this thread, or null. */
    public static Scope current() { return STACK.get().peek(); }

    /** Called by backends for every tensor that owns newly allocated memory. */
    public static void track(Tensor t) {
        Scope s = current();
        if (s != null) s.owned.add(t);
    }

    /** Moves {@code t} out of this scope into the enclosing one (or to the caller). Returns t. */
    public Tensor keep(Tensor t) {
        checkOpen();
        if (owned.remove(t)) {
            Scope parent = parentOf(this);
            if (parent != null) parent.owned.add(t);
        }
        return t;
    }

    /**
     * Takes {@code t} out of whichever open scope of this thread tracks it, so that no scope releases it: the caller
     * now owns it and must {@link Tensor#close()} it. For state that outlives the scopes it was computed in (e.g. the
     * frames a streaming model carries from one chunk to the next). Returns t.
     */
    public static Tensor detach(Tensor t) {
        untrack(t);
        return t;
    }

    /** Forget a tensor that was closed early by its owner. */
    static void untrack(Tensor t) {
        for (Scope s : STACK.get()) if (s.owned.remove(t)) return;
    }

    /** Number of tensors this scope will release; for tests and leak checks. */
    public int size() { return owned.size(); }

    @Override public void close() {
        if (closed) return;
        if (Thread.currentThread() != thread) throw new IllegalStateException("a Scope must be closed on the thread that opened it");
        Deque<Scope> stack = STACK.get();
        if (stack.peek() != this) throw new IllegalStateException("scopes must be closed innermost first");
        stack.pop();
        closed = true;
        for (Tensor t : owned) t.releaseOwned();
        owned.clear();
    }

    private void checkOpen() {
        if (closed) throw new IllegalStateException("scope already closed");
    }

    private static Scope parentOf(Scope s) {
        boolean found = false;
        for (Scope x : STACK.get()) {
            if (found) return x;
            if (x == s) found = true;
        }
        return null;
    }
}
