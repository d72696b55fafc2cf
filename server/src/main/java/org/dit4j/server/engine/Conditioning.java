package org.dit4j.server.engine;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * ComfyUI's CONDITIONING value: a list of (embedding, options) entries. The options dit4j knows are the Flux
 * guidance value (FluxGuidance) and reference latents (ReferenceLatent, Kontext).
 */
public record Conditioning(List<Entry> entries) {

    public Conditioning {
        entries = List.copyOf(entries);
        if (entries.isEmpty()) throw new IllegalArgumentException("conditioning has no entries");
    }

    public static Conditioning of(TextEmbedding embedding) { return new Conditioning(List.of(new Entry(embedding, null, List.of()))); }

    /** One entry; {@code guidance} is null when no FluxGuidance node set it (the engine then uses the model default, 3.5). */
    public record Entry(TextEmbedding embedding, Double guidance, List<Latent> referenceLatents) {
        public Entry {
            Objects.requireNonNull(embedding, "embedding");
            referenceLatents = List.copyOf(referenceLatents);
        }
    }

    /** Sets the guidance of every entry (FluxGuidance). */
    public Conditioning withGuidance(double guidance) {
        return new Conditioning(entries.stream().map(e -> new Entry(e.embedding(), guidance, e.referenceLatents())).toList());
    }

    /** Zeros every embedding, keeping the options (ConditioningZeroOut). */
    public Conditioning zeroed() {
        return new Conditioning(entries.stream().map(e -> new Entry(e.embedding().zeroed(), e.guidance(), e.referenceLatents())).toList());
    }

    /** Appends a reference latent to every entry (ReferenceLatent). */
    public Conditioning withReference(Latent latent) {
        return new Conditioning(entries.stream().map(e -> {
            List<Latent> refs = new ArrayList<>(e.referenceLatents());
            refs.add(latent);
            return new Entry(e.embedding(), e.guidance(), refs);
        }).toList());
    }

    @Override public String toString() { return "<CONDITIONING " + entries.size() + " entr" + (entries.size() == 1 ? "y" : "ies") + ">"; }
}
