package org.dit4j.server.exec;

import org.dit4j.server.engine.InterruptedRun;

import java.util.concurrent.atomic.AtomicBoolean;

/** ComfyUI's interrupt flag: set by POST /interrupt, cleared when a prompt starts, checked between nodes and steps. */
public final class Interrupts {

    private final AtomicBoolean flag = new AtomicBoolean();

    public void request() { flag.set(true); }

    void clear() { flag.set(false); }

    public boolean requested() { return flag.get(); }

    /** Throws {@link InterruptedRun} when an interrupt was requested (throw_exception_if_processing_interrupted). */
    void check() {
        if (flag.getAndSet(false)) throw new InterruptedRun();
    }
}
