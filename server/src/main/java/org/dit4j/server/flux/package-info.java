/**
 * The Flux.1 engine of {@code dit4j serve}: {@link org.dit4j.server.flux.FluxEngine} implements the server's
 * {@link org.dit4j.server.engine.ModelProvider} and {@link org.dit4j.server.engine.Sampling} over the engine's Flux parts.
 *
 * <table>
 *   <tr><th>class</th><th>ComfyUI value / code</th><th>built on</th></tr>
 *   <tr><td>{@code FluxModel}</td><td>MODEL (UNETLoader, CheckpointLoaderSimple's model.diffusion_model.*): BFL or diffusers
 *       names, weight_dtype default / fp8_e4m3fn(_fast) / fp8_e5m2</td><td>FluxWeights, FluxTransformer</td></tr>
 *   <tr><td>{@code FluxTextEncoder}, {@code FluxTextEmbedding}</td><td>CLIP (DualCLIPLoader type flux, CLIPLoader with a
 *       file holding both, checkpoint text_encoders.*), CLIPTextEncode's conditioning (T5 ≥ 256 tokens + pooled CLIP-L,
 *       on the host)</td><td>ClipTextModel, T5Encoder, TextConditioning (ComfyUI mode), PromptWeights; tokenizers found as
 *       FluxModelResolver finds them ({@code <models-dir>/tokenizers/}, the checkpoint, the Hugging Face cache)</td></tr>
 *   <tr><td>{@code FluxLora}</td><td>LoRA (LoraLoaderModelOnly, ParallelLoraLoader(ModelOnly)): merged into the model's
 *       weights before sampling, W + Σ strength·scale·B·A in F32 rounded once (ComfyUI rounds fp8 weights stochastically
 *       back to fp8; dit4j keeps merged fp8 weights in BF16); keys that fit no module are left out with a warning, as
 *       ComfyUI does; strength_clip changes nothing for a LoRA without text-encoder tensors and is refused for one with
 *       them</td><td>models.flux.lora (FluxLoras)</td></tr>
 *   <tr><td>{@code FluxVae}</td><td>VAE: decode, decode_tiled_ (three feathered tilings), encode (posterior mode)</td>
 *       <td>AutoencoderKL (raw latent space)</td></tr>
 *   <tr><td>{@code FluxSampler}</td><td>comfy.samplers CFGGuider + KSAMPLER(euler), CONST model sampling,
 *       latent_formats.Flux, flux/model.py (padding, ids, reference latents); TeaCache / MagCache nodes as
 *       ComfyUI-TeaCache / ComfyUI-MagCache configure them (threshold 0: no cache; MagCache uses the published
 *       Flux.1-dev γ table for every Flux model type; the cache lives on the model's device whatever cache_device says;
 *       with CFG both conditionings must share T5 length, guidance and reference latents)</td>
 *       <td>FluxTransformer, CudaGraph, engine.flux.FluxCachedTransformer, engine.cache</td></tr>
 * </table>
 *
 * <h2>Exactness</h2>
 * On the CPU (float32) the server's latents equal {@link org.dit4j.engine.flux.FluxPipeline}'s for the same seed, prompt,
 * steps and guidance to float32 rounding (rel. 1e-7 … 4e-7 measured for dev, schnell + CFG and Kontext; tests allow
 * 2e-5) wherever ComfyUI's semantics coincide with diffusers' (T5 padded to 256, a step count dividing ComfyUI's σ
 * table); the saved PNGs are within one 8-bit level (ComfyUI truncates, the pipeline rounds).
 *
 * <h2>Not yet supported (clear execution_error)</h2>
 * num_gpus &gt; 1; samplers other than {@code euler};
 * conditioning with several entries (combine/area); latent noise masks. Prompt weights ({@code (word:1.2)}) are applied
 * as ComfyUI applies them ({@code PromptWeights}); {@code embedding:} names (textual inversion) are not.
 */
package org.dit4j.server.flux;
