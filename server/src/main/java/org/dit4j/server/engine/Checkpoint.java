package org.dit4j.server.engine;

/** The parts of a single-file checkpoint (CheckpointLoaderSimple); {@code clip} or {@code vae} is null when absent. */
public record Checkpoint(DiffusionModel model, TextEncoder clip, Vae vae) {}
