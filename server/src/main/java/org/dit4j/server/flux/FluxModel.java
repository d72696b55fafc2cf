package org.dit4j.server.flux;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.FluxLoras;
import org.dit4j.models.flux.lora.LoraSpec;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.sampling.ModelSampling;

import java.nio.file.Path;
import java.util.List;

/**
 * A loaded Flux.1 transformer (ComfyUI's MODEL before patches). Its sampling is ComfyUI's checkpoint default:
 * dev and Kontext {@code ModelSamplingFlux} with shift 1.15, schnell {@code ModelSamplingDiscreteFlow} with shift 1
 * and multiplier 1.
 *
 * <p>LoRAs: the weights on the device are those of one LoRA set (none after loading). A sampler run with another set
 * releases them and loads the file again with the LoRAs merged ({@link FluxLoras}: W + Σ strength·scale·B·A in F32,
 * rounded once), as ComfyUI patches its weights before sampling; runs with the same set reuse what is loaded.
 */
final class FluxModel implements DiffusionModel {

    private final String name, family;
    private final Path file;
    private final String prefix;
    private final Ops ops;
    private final FluxConfig config;
    private final DType weightDtype, vectorDtype;
    private FluxWeights weights;
    private FluxTransformer transformer;
    private List<LoraSpec> loaded = List.of();
    private List<String> loraNotes = List.of();
    private boolean closed;

    FluxModel(String name, String family, Path file, String prefix, Ops ops, FluxConfig config, DType weightDtype, DType vectorDtype,
              FluxWeights weights) {
        this.name = name;
        this.family = family;
        this.file = file;
        this.prefix = prefix;
        this.ops = ops;
        this.config = config;
        this.weightDtype = weightDtype;
        this.vectorDtype = vectorDtype;
        this.weights = weights;
        this.transformer = new FluxTransformer(ops, weights);
    }

    @Override public String name() { return name; }

    @Override public String family() { return family; }

    @Override public ModelSampling defaultSampling() {
        return config.guidanceEmbed() ? ModelSampling.flux(1.15) : ModelSampling.flow(1.0, 1.0);
    }

    @Override public int latentChannels() { return config.inChannels() / 4; }

    FluxConfig config() { return config; }

    /** The transformer without LoRAs. */
    FluxTransformer transformer() { return transformer(List.of()); }

    /**
     * The transformer with {@code loras} merged (in this order), loading the weights again when the set differs from the
     * one on the device. Fails when the model was released (POST /free or a cache eviction).
     */
    synchronized FluxTransformer transformer(List<LoraSpec> loras) {
        if (closed) throw new IllegalStateException("model " + name + " was released; queue the prompt again to reload it");
        if (loras.equals(loaded) && transformer != null) return transformer;
        release();
        try (WeightSource w = FluxEngine.open(file);
             FluxLoras patch = loras.isEmpty() ? null : FluxLoras.open(loras, config, true)) {
            weights = FluxWeights.load(ops, w, prefix, config, weightDtype, vectorDtype, patch);
            loraNotes = patch == null ? List.of() : patch.notes();
        }
        for (String note : loraNotes) System.err.println("dit4j server: " + note);
        transformer = new FluxTransformer(ops, weights);
        loaded = List.copyOf(loras);
        return transformer;
    }

    /** The weights on this model's device with {@code loras} merged (loaded as {@link #transformer(List)} does). */
    synchronized FluxWeights weights(List<LoraSpec> loras) {
        transformer(loras);
        return weights;
    }

    /** A separate copy of the weights with {@code loras} merged on another backend (a multi-GPU rank); owned by the caller. */
    FluxWeights loadOnto(Ops other, List<LoraSpec> loras) {
        synchronized (this) {
            if (closed) throw new IllegalStateException("model " + name + " was released; queue the prompt again to reload it");
        }
        try (WeightSource w = FluxEngine.open(file);
             FluxLoras patch = loras.isEmpty() ? null : FluxLoras.open(loras, config, true)) {
            return FluxWeights.load(other, w, prefix, config, weightDtype, vectorDtype, patch);
        }
    }

    /** What the LoRAs on the device leave out (keys that fit no module of this model), as ComfyUI warns about them. */
    synchronized List<String> loraNotes() { return loraNotes; }

    private void release() {
        if (weights != null) weights.close();
        weights = null;
        transformer = null;
        loaded = List.of();
    }

    @Override public synchronized void close() {
        release();
        closed = true;
    }

    @Override public String toString() { return "<FluxModel " + name + " " + family + " " + config + ">"; }
}
