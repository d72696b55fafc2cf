package org.dit4j.core.parallel;

import org.dit4j.core.tensor.Scope;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;

/** Test helper: runs one function per rank on its own thread (each inside a Scope) and returns the results in rank order. */
public final class Ranks {
    private Ranks() {}

    public static <T> List<T> run(List<Communicator> comms, Function<Communicator, T> body) {
        ExecutorService pool = Executors.newFixedThreadPool(comms.size());
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (Communicator c : comms) {
                fs.add(pool.submit(() -> {
                    try (Scope s = Scope.open()) {
                        return body.apply(c);
                    } catch (RuntimeException | Error e) {
                        c.abort(e);
                        throw e;
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            RuntimeException first = null;
            for (Future<T> f : fs) {
                try {
                    out.add(f.get());
                } catch (ExecutionException e) {
                    RuntimeException r = e.getCause() instanceof RuntimeException re ? re : new RuntimeException(e.getCause());
                    if (first == null || first instanceof CommunicatorAbortedException) first = r;
                    out.add(null);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException(e);
                }
            }
            if (first != null) throw first;
            return out;
        } finally {
            pool.shutdownNow();
        }
    }
}
