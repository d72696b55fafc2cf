package org.dit4j.models.flux.lora;

import java.nio.file.Path;

/**
 * A LoRA file and the strength it is applied with (ΔW is multiplied by it; 1 = as trained, 0 = off, negative
 * values invert it), as ComfyUI's {@code strength_model} and diffusers' {@code lora_scale}.
 */
public record LoraSpec(Path file, float strength) {

    public LoraSpec {
        if (file == null) throw new IllegalArgumentException("a LoRA needs a file");
        if (!Float.isFinite(strength)) throw new IllegalArgumentException("LoRA strength must be a finite number, got " + strength + " for " + file);
    }

    /**
     * Parses {@code FILE[:STRENGTH]} ("style.safetensors:0.8"); without a strength (or when the text after the last
     * ':' is not a number, as in "C:\loras\x.safetensors") the strength is 1.
     */
    public static LoraSpec parse(String text) {
        if (text == null || text.isBlank()) throw new IllegalArgumentException("empty LoRA argument; expected FILE or FILE:STRENGTH");
        int colon = text.lastIndexOf(':');
        if (colon > 0 && colon < text.length() - 1) {
            String tail = text.substring(colon + 1).strip();
            if (tail.matches("[+-]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?"))
                return new LoraSpec(Path.of(text.substring(0, colon)), Float.parseFloat(tail));
        }
        return new LoraSpec(Path.of(text), 1f);
    }

    @Override public String toString() { return file + ":" + strength; }
}
