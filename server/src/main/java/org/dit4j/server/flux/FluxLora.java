package org.dit4j.server.flux;

import org.dit4j.server.engine.LoraWeights;

import java.nio.file.Path;

/** A LoRA file the engine checked (ComfyUI's LoRA as a value); merged into a model's weights when a sampler runs. */
record FluxLora(Path file) implements LoraWeights {
    @Override public String name() { return file.getFileName().toString(); }

    @Override public String toString() { return "<FluxLora " + name() + ">"; }
}
