package org.dit4j.engine;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;

/** Says what model a checkpoint holds, from tensor names and shapes only. */
public final class ModelDetector {
    private ModelDetector() {}

    /** A one-line description, e.g. "Flux.1 transformer (dev/Kontext: guidance embedder), BFL layout, 19 double + 38 single blocks". */
    public static String describe(WeightSource w) {
        try {
            String prefix = FluxWeights.detectPrefix(w);
            FluxConfig c = FluxConfig.detect(w, prefix);
            FluxWeights.Layout layout = FluxWeights.Layout.of(w, prefix);
            return "Flux.1 transformer (" + (c.guidanceEmbed() ? "dev/Kontext: guidance embedder" : "schnell: no guidance embedder")
                    + "), " + layout + " layout" + (prefix.isEmpty() ? "" : " with prefix '" + prefix + "'") + ", hidden "
                    + c.hiddenSize() + ", " + c.numHeads() + " heads, " + c.depth() + " double + " + c.depthSingle() + " single blocks";
        } catch (CheckpointException | IllegalArgumentException e) {
            return "unknown (not a Flux transformer: " + e.getMessage() + ")";
        }
    }
}
