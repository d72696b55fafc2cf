package org.dit4j.engine.parallel;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.IdentityHashMap;
import java.util.Map;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Buffer;
import org.dit4j.core.tensor.Tensor;

/**
 * Live-memory accounting for tests: wraps an {@link Ops} and a {@link Communicator} so that every buffer their calls
 * return (new memory, not views of an argument) is tracked until released, and records the peak of the tracked bytes,
 * sampled after every call. One tracker per rank thread; not thread-safe.
 */
final class MemoryTracker {
    private final Map<Buffer, Long> live = new IdentityHashMap<>();
    private long peak;

    long peakBytes() { return peak; }

    Ops wrap(Ops ops) { return proxy(Ops.class, ops); }

    Communicator wrap(Communicator comm) { return proxy(Communicator.class, comm); }

    private <T> T proxy(Class<T> type, T target) {
        Object p = Proxy.newProxyInstance(type.getClassLoader(), new Class<?>[] {type}, (self, method, args) -> {
            // a default method the target does not override runs on the proxy, so the temporaries of its composition
            // (e.g. groupNormSilu = silu(groupNorm(x))) are counted as they would be if the caller made the calls itself
            Object result = method.isDefault() && !overrides(target, method)
                    ? java.lang.reflect.InvocationHandler.invokeDefault(self, method, args)
                    : invoke(method, target, args);
            record(result, args);
            return result;
        });
        return type.cast(p);
    }

    private static boolean overrides(Object target, Method m) {
        for (Class<?> c = target.getClass(); c != null && c != Object.class; c = c.getSuperclass()) {
            try {
                c.getDeclaredMethod(m.getName(), m.getParameterTypes());
                return true;
            } catch (NoSuchMethodException e) {
                // look further up
            }
        }
        return false;
    }

    private static Object invoke(Method m, Object target, Object[] args) throws Throwable {
        try {
            return m.invoke(target, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }

    private void record(Object result, Object[] args) {
        if (result instanceof Tensor t) add(t, args);
        if (result instanceof PartialAttention pa) {
            add(pa.out(), args);
            add(pa.lse(), args);
        }
        live.keySet().removeIf(Buffer::isReleased);
        long sum = 0;
        for (long b : live.values()) sum += b;
        peak = Math.max(peak, sum);
    }

    private void add(Tensor t, Object[] args) {
        if (args != null)
            for (Object a : args)
                if (a instanceof Tensor in && in.buffer() == t.buffer()) return;      // a view of an argument
        live.putIfAbsent(t.buffer(), t.buffer().byteSize());
    }
}
