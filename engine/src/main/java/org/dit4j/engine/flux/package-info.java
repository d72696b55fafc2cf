/**
 * Flux.1 end to end: {@link org.dit4j.engine.flux.FluxPipeline} (text-to-image for dev and schnell, Kontext editing)
 * over the parts in {@code org.dit4j.models} (text encoders and tokenizers, transformer, VAE, flow-matching sampler).
 *
 * <ul>
 *   <li>{@link org.dit4j.engine.flux.FluxModelResolver} turns {@code --model} into {@link org.dit4j.engine.flux.FluxModelFiles}:
 *       a diffusers folder, ComfyUI-style files (roles read from tensor names; tokenizers from
 *       {@code <models-dir>/tokenizers/}, the checkpoint, or the Hugging Face cache), or a hub repo id through
 *       {@link org.dit4j.engine.hub.HfHub}.</li>
 *   <li>{@link org.dit4j.engine.flux.FluxRequest} / {@link org.dit4j.engine.flux.FluxPipeline.Result}: one generation;
 *       defaults by model kind ({@link org.dit4j.engine.flux.FluxPipeline#withDefaults}).</li>
 *   <li>{@link org.dit4j.engine.flux.Kontext}: the reference image's preferred resolution.</li>
 *   <li>{@link org.dit4j.engine.flux.GenerationMetadata}: PNG text chunks (parameters, ComfyUI API prompt, JSON).</li>
 * </ul>
 *
 * <p>Exactness: tiny random pipelines in both layouts run on the CPU in the tests; the same pipelines are compared
 * with diffusers' FluxPipeline/FluxKontextPipeline on the GPU machine by
 * {@code scripts/reference/flux_pipeline_reference.py}.
 */
package org.dit4j.engine.flux;
