package org.dit4j.server.engine;

/** A loaded LoRA file; applied to a model at sampling time with a strength ({@link ModelRef.LoraApplication}). */
public interface LoraWeights extends AutoCloseable {

    String name();

    @Override default void close() {}
}
