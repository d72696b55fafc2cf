package org.dit4j.server.wan;

import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.sampling.ModelSampling;

import java.nio.file.Path;
import java.util.List;

/**
 * A loaded Wan2.1 text-to-video transformer (ComfyUI's WAN21 MODEL before patches). Its sampling is ComfyUI's default
 * for Wan2.1 text-to-video: {@code ModelSamplingDiscreteFlow} with shift {@value #DEFAULT_SHIFT} and multiplier 1000
 * (ModelSamplingSD3 replaces the shift).
 */
final class WanModel implements DiffusionModel {

    /** supported_models.WAN21_T2V's sampling shift. */
    static final double DEFAULT_SHIFT = 8.0;
    /** ModelSamplingDiscreteFlow's default multiplier (timestep = σ·1000). */
    static final double MULTIPLIER = 1000.0;

    private final String name;
    private final WanConfig config;
    private final Path file;
    private final String prefix;
    private final DType weightDtype, vectorDtype;
    private WanWeights weights;
    private WanTransformer transformer;

    /**
     * @param file        the checkpoint the weights came from (ranks of a multi-GPU mesh load their copy from it)
     * @param prefix      the checkpoint's tensor-name prefix
     * @param weightDtype matrix weight dtype; {@code vectorDtype} biases and norms
     */
    WanModel(String name, Ops ops, WanConfig config, WanWeights weights, Path file, String prefix, DType weightDtype, DType vectorDtype) {
        this.name = name;
        this.config = config;
        this.weights = weights;
        this.file = file;
        this.prefix = prefix;
        this.weightDtype = weightDtype;
        this.vectorDtype = vectorDtype;
        this.transformer = new WanTransformer(ops, weights);
    }

    @Override public String name() { return name; }

    @Override public String family() {
        String size = config.dim() == 1536 && config.numLayers() == 30 ? "1.3B"
                : config.dim() == 5120 && config.numLayers() == 40 ? "14B" : "dim" + config.dim() + "x" + config.numLayers();
        return "wan2.1-t2v-" + size;
    }

    @Override public ModelSampling defaultSampling() { return ModelSampling.flow(DEFAULT_SHIFT, MULTIPLIER); }

    @Override public int latentChannels() { return config.inChannels(); }

    WanConfig config() { return config; }

    /** The transformer; fails when the model was released (POST /free or a cache eviction). */
    synchronized WanTransformer transformer() {
        if (transformer == null) throw new IllegalStateException("model " + name + " was released; queue the prompt again to reload it");
        return transformer;
    }

    /** The weights on this model's device (rank 0 of a mesh); fails when the model was released. */
    synchronized WanWeights weights() {
        transformer();
        return weights;
    }

    /**
     * A separate copy of the weights on each of {@code targets} (multi-GPU ranks), from one opening of the file, uploaded
     * in parallel (one thread per target); owned by the caller. On a failure nothing stays loaded.
     */
    List<WanWeights> loadOnto(List<Ops> targets) {
        synchronized (this) {
            if (weights == null) throw new IllegalStateException("model " + name + " was released; queue the prompt again to reload it");
        }
        try (WeightSource w = WeightSource.open(file)) {
            return org.dit4j.engine.parallel.PerDevice.make(targets, "loading " + file.getFileName(), true,
                    on -> WanWeights.load(on, w, prefix, config, weightDtype, vectorDtype));
        }
    }

    @Override public synchronized void close() {
        if (weights != null) weights.close();
        weights = null;
        transformer = null;
    }

    @Override public String toString() { return "<WanModel " + name + " " + family() + ">"; }
}
