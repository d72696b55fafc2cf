package org.dit4j.server.engine;

/** A loaded text encoder (ComfyUI's CLIP value): one or two encoders and their tokenizers. */
public interface TextEncoder extends AutoCloseable {

    /** Encodes one prompt (CLIPTextEncode). */
    TextEmbedding encode(String text);

    /**
     * The encoder with a LoRA applied at {@code strength} (ParallelLoraLoader's strength_clip). Engines that cannot
     * patch text encoders throw {@link UnsupportedOperationException} with a message saying so.
     */
    default TextEncoder withLora(LoraWeights lora, double strength) {
        throw new UnsupportedOperationException("this engine cannot apply LoRA " + lora.name() + " to a text encoder; set strength_clip to 0");
    }

    /** Releases the weights; called when no cached node output refers to the encoder any more. */
    @Override default void close() {}
}
