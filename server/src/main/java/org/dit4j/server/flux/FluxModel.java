package org.dit4j.server.flux;

import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.sampling.ModelSampling;

/**
 * A loaded Flux.1 transformer (ComfyUI's MODEL before patches). Its sampling is ComfyUI's checkpoint default:
 * dev and Kontext {@code ModelSamplingFlux} with shift 1.15, schnell {@code ModelSamplingDiscreteFlow} with shift 1
 * and multiplier 1.
 */
final class FluxModel implements DiffusionModel {

    private final String name, family;
    private final FluxConfig config;
    private FluxWeights weights;
    private FluxTransformer transformer;

    FluxModel(String name, String family, FluxConfig config, FluxWeights weights, FluxTransformer transformer) {
        this.name = name;
        this.family = family;
        this.config = config;
        this.weights = weights;
        this.transformer = transformer;
    }

    @Override public String name() { return name; }

    @Override public String family() { return family; }

    @Override public ModelSampling defaultSampling() {
        return config.guidanceEmbed() ? ModelSampling.flux(1.15) : ModelSampling.flow(1.0, 1.0);
    }

    @Override public int latentChannels() { return config.inChannels() / 4; }

    FluxConfig config() { return config; }

    /** The transformer; fails when the model was released (POST /free or a cache eviction that raced a prompt). */
    synchronized FluxTransformer transformer() {
        if (transformer == null) throw new IllegalStateException("model " + name + " was released; queue the prompt again to reload it");
        return transformer;
    }

    @Override public synchronized void close() {
        if (weights != null) weights.close();
        weights = null;
        transformer = null;
    }

    @Override public String toString() { return "<FluxModel " + name + " " + family + " " + config + ">"; }
}
