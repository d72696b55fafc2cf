package org.dit4j.engine.flux;

/** Callbacks of a {@link FluxPipeline} run; all optional. */
public interface FluxProgress {
    /** A stage starts ("load transformer", "encode text", "denoise", …). */
    default void stage(String name) {}

    /** {@code done} of {@code total} denoising steps are finished, {@code seconds} after the first started. */
    default void step(int done, int total, double seconds) {}

    /** A message worth showing (a size adjustment, a fallback). */
    default void note(String message) {}

    FluxProgress NONE = new FluxProgress() {};
}
