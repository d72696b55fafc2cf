package org.dit4j.engine.parallel;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

import org.dit4j.core.ops.Ops;

/**
 * Makes one object per backend of a mesh — typically the ranks' copies of a model's weights from one opened
 * checkpoint — on one platform thread per backend, so the uploads to several GPUs run at once. Each backend is
 * synchronized after its object is made. On any failure the objects already made are closed and the first error is
 * thrown (the others are dropped), so nothing is left half-loaded.
 */
public final class PerDevice {
    private PerDevice() {}

    /**
     * {@code make} applied to every backend of {@code targets}, in target order.
     *
     * @param what     names the work in messages (e.g. "loading flux1-dev.safetensors")
     * @param parallel one thread per backend; false runs them one after the other on the caller's thread (for makers
     *                 that are not thread-safe)
     */
    public static <R extends AutoCloseable> List<R> make(List<? extends Ops> targets, String what, boolean parallel, Function<Ops, R> make) {
        int n = targets.size();
        List<R> out = new ArrayList<>(java.util.Collections.nCopies(n, (R) null));
        try {
            if (!parallel || n == 1) {
                for (int i = 0; i < n; i++) out.set(i, make.apply(targets.get(i)));
                return out;
            }
            Throwable[] failure = new Throwable[1];
            Thread[] threads = new Thread[n];
            for (int i = 0; i < n; i++) {
                int t = i;
                threads[i] = Thread.ofPlatform().name("dit4j-load-" + i).start(() -> {
                    try {
                        R r = make.apply(targets.get(t));
                        synchronized (out) { out.set(t, r); }
                        targets.get(t).synchronize();
                    } catch (Throwable e) {
                        synchronized (failure) { if (failure[0] == null) failure[0] = e; }
                    }
                });
            }
            for (Thread t : threads) t.join();
            if (failure[0] instanceof RuntimeException re) throw re;
            if (failure[0] instanceof Error er) throw er;
            if (failure[0] != null) throw new IllegalStateException(what + " failed on a device: " + failure[0].getMessage(), failure[0]);
            return out;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            MeshBackends.closeAll(out);
            throw new IllegalStateException("interrupted while " + what + " onto " + n + " device(s)", e);
        } catch (RuntimeException | Error e) {
            MeshBackends.closeAll(out);
            throw e;
        }
    }

}
