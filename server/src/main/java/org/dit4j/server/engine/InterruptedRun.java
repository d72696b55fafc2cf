package org.dit4j.server.engine;

/**
 * Thrown by a {@link StepObserver} (or before a node runs) when the user interrupted the running prompt
 * (POST /interrupt). Engines let it propagate after releasing what the run allocated.
 */
public final class InterruptedRun extends RuntimeException {
    public InterruptedRun() { super("Processing interrupted", null, false, false); }
}
