package org.dit4j.server.nodes;

import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.TextEncoder;

/** CLIPTextEncode, FluxGuidance, ConditioningZeroOut, ReferenceLatent. */
final class ConditioningNodes {

    private ConditioningNodes() {}

    static void register(NodeCatalog c) {
        c.register(new SimpleNode("CLIPTextEncode", env -> NodeSchema.builder("CLIPTextEncode").display("CLIP Text Encode (Prompt)")
                .category("conditioning")
                .description("Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion model towards generating specific images.")
                .required("text", InputSpec.of("STRING", "multiline", true, "dynamicPrompts", true, "tooltip", "The text to be encoded."))
                .required("clip", InputSpec.of("CLIP", "tooltip", "The CLIP model used for encoding the text."))
                .output("CONDITIONING").build(),
                call -> {
                    TextEncoder clip = call.get("clip", TextEncoder.class);
                    return NodeResult.of(Conditioning.of(clip.encode(call.string("text"))));
                }));

        c.register(new SimpleNode("FluxGuidance", env -> NodeSchema.builder("FluxGuidance").category("advanced/conditioning/flux")
                .module("comfy_extras.nodes_flux")
                .required("conditioning", "CONDITIONING")
                .required("guidance", InputSpec.of("FLOAT", "default", 3.5, "min", 0.0, "max", 100.0, "step", 0.1))
                .output("CONDITIONING").build(),
                call -> NodeResult.of(call.get("conditioning", Conditioning.class).withGuidance(call.number("guidance")))));

        c.register(new SimpleNode("ConditioningZeroOut", env -> NodeSchema.builder("ConditioningZeroOut").category("advanced/conditioning")
                .required("conditioning", "CONDITIONING")
                .output("CONDITIONING").build(),
                call -> NodeResult.of(call.get("conditioning", Conditioning.class).zeroed())));

        c.register(new SimpleNode("ReferenceLatent", env -> NodeSchema.builder("ReferenceLatent").category("advanced/conditioning/edit_models")
                .module("comfy_extras.nodes_edit_model")
                .description("This node sets the guiding latent for an edit model. If the model supports it you can chain multiple to set multiple reference images.")
                .required("conditioning", "CONDITIONING")
                .optional("latent", InputSpec.of("LATENT"))
                .output("CONDITIONING").build(),
                call -> {
                    Conditioning cond = call.get("conditioning", Conditioning.class);
                    Latent latent = call.optional("latent", Latent.class);
                    return NodeResult.of(latent == null ? cond : cond.withReference(latent));
                }));
    }
}
