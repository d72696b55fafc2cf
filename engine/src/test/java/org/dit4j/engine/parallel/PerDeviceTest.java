package org.dit4j.engine.parallel;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.junit.jupiter.api.Test;

/** One object per backend, in order, on a thread each; a failure closes what was made and reports the first error. */
class PerDeviceTest {
    record Made(Ops on, String thread, AtomicInteger closed) implements AutoCloseable {
        @Override public void close() { closed.incrementAndGet(); }
    }

    @Test void oneObjectPerBackendInOrderAndNothingLeftAfterAFailure() {
        try (CpuBackend a = new CpuBackend(1); CpuBackend b = new CpuBackend(1); CpuBackend c = new CpuBackend(1)) {
            List<Ops> targets = List.of(a, b, c);
            AtomicInteger closed = new AtomicInteger();
            List<Made> made = PerDevice.make(targets, "making", true, on -> new Made(on, Thread.currentThread().getName(), closed));
            for (int i = 0; i < 3; i++) assertEquals(targets.get(i), made.get(i).on(), "target order");
            assertEquals(3, made.stream().map(Made::thread).distinct().count(), "one thread per backend");
            List<Made> serial = PerDevice.make(targets, "making", false, on -> new Made(on, Thread.currentThread().getName(), closed));
            assertEquals(1, serial.stream().map(Made::thread).distinct().count(), "serial: the caller's thread");

            AtomicInteger closedAfterFailure = new AtomicInteger();
            ConcurrentHashMap<Ops, Boolean> seen = new ConcurrentHashMap<>();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> PerDevice.make(targets, "loading x", true, on -> {
                seen.put(on, true);
                if (on == b) throw new IllegalStateException("out of memory on device b");
                return new Made(on, "", closedAfterFailure);
            }));
            assertEquals("out of memory on device b", e.getMessage());
            assertEquals(3, seen.size(), "every backend was tried");
            assertEquals(2, closedAfterFailure.get(), "the two objects made were closed");
            assertEquals(0, closed.get());
        }
    }
}
