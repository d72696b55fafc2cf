package org.dit4j.server.engine;

/** Receives sampler progress; the server turns it into WebSocket {@code progress} events and checks for interrupts. */
@FunctionalInterface
public interface StepObserver {

    /**
     * Called after step {@code step} (0-based) of {@code total} sampler steps has finished.
     * Throws {@link InterruptedRun} when the prompt was interrupted; the engine must stop there.
     */
    void stepDone(int step, int total);

    StepObserver NONE = (step, total) -> {};
}
