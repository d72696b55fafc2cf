package org.dit4j.engine;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.LoraFile;

/** Says what model a checkpoint holds, from tensor names and shapes only. */
public final class ModelDetector {
    private ModelDetector() {}

    /** A one-line description, e.g. "Flux.1 transformer (dev/Kontext: guidance embedder), BFL layout, 19 double + 38 single blocks". */
    public static String describe(WeightSource w) {
        if (LoraFile.looksLikeLora(w)) return describeLora(w);
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

    /** "Flux.1 LoRA (kohya, 494 low-rank pairs (rank 16, alpha 16))", or what else the LoRA looks like. */
    private static String describeLora(WeightSource w) {
        try {
            LoraFile f = LoraFile.read(w);
            if (f.entries().isEmpty()) {
                String family = LoraFile.guessFamily(w.names());
                return "a LoRA, but not for a Flux.1 transformer" + (family != null ? " (it looks like one for " + family + ")" : "");
            }
            return "Flux.1 LoRA (" + f.summary() + ")";
        } catch (CheckpointException e) {
            return "a LoRA dit4j cannot apply: " + e.getMessage();
        }
    }
}
