/**
 * dit4j's ComfyUI-compatible server ({@code dit4j serve}): ComfyUI clients and API-format workflows run unchanged.
 *
 * <h2>Map</h2>
 * <table>
 *   <tr><th>package / class</th><th>what</th><th>ComfyUI counterpart</th></tr>
 *   <tr><td>{@link org.dit4j.server.ComfyServer}, {@code http.Api}, {@code http.WsHub}</td><td>routes (also under /api),
 *       WebSocket events, bearer token, origin check, /view and /upload/image with traversal checks</td><td>server.py</td></tr>
 *   <tr><td>{@code exec.Validator}</td><td>prompt validation and its error types/messages</td><td>execution.validate_prompt</td></tr>
 *   <tr><td>{@code exec.Executor}, {@code exec.OutputCache}</td><td>node execution, input-signature cache (classic
 *       policy: entries of the last prompt), events, history entry</td><td>execution.PromptExecutor, comfy_execution/caching.py</td></tr>
 *   <tr><td>{@code exec.PromptQueue}</td><td>priority queue, history (≤ 10000), /free flags</td><td>execution.PromptQueue</td></tr>
 *   <tr><td>{@code nodes.*}</td><td>node catalog: schemas (/object_info) and bodies</td><td>nodes.py, comfy_extras/*</td></tr>
 *   <tr><td>{@code sampling.*}</td><td>sigma tables and schedulers in float32; the sampler loops euler, uni_pc,
 *       uni_pc_bh2 ({@code KSamplers}) on host float32 arrays</td><td>comfy/model_sampling.py, comfy/samplers.py,
 *       comfy/k_diffusion/sampling.py, comfy/extra_samplers/uni_pc.py</td></tr>
 *   <tr><td>{@code files.*}</td><td>models folders, extra_model_paths.yaml, safe path resolution, atomic writes</td><td>folder_paths.py, utils/extra_config.py</td></tr>
 *   <tr><td>{@code engine.*}</td><td>the interfaces nodes call: {@link org.dit4j.server.engine.ModelProvider} (loading) and
 *       {@link org.dit4j.server.engine.Sampling} (sampler loop), and the values passed between nodes</td><td>comfy.sd, comfy.sample</td></tr>
 *   <tr><td>{@code wan.*}</td><td>Wan2.1 text-to-video: {@link org.dit4j.server.wan.WanEngine} (UNETLoader/CLIPLoader type
 *       wan/VAELoader files, ComfyUI's WAN21 sampling on the Wan21 latent format), reached through the Flux engine's loaders</td>
 *       <td>comfy.model_base.WAN21, comfy.ldm.wan, comfy.text_encoders.wan</td></tr>
 *   <tr><td>{@code preview.*}</td><td>latent2rgb step previews (latent formats' RGB factors, JPEG, binary WebSocket frame)</td>
 *       <td>latent_preview.py, comfy/latent_formats.py, server.send_image</td></tr>
 *   <tr><td>{@code flux.*}</td><td>the engine {@code dit4j serve} runs: {@link org.dit4j.server.flux.FluxEngine} (Flux.1
 *       loaders, text encoding, VAE, ComfyUI's sampler semantics on the GPU or the CPU); {@link org.dit4j.server.UnavailableEngine}
 *       only when no backend opens</td><td>comfy.sd, comfy.samplers, comfy.model_sampling, comfy.ldm.flux</td></tr>
 * </table>
 *
 * <h2>Division of work with the engine</h2>
 * The server computes what ComfyUI computes around the model — schedules ({@code simple}, {@code normal}, {@code beta},
 * {@code sgm_uniform}, ... for ModelSamplingFlux / ModelSamplingDiscreteFlow), KSampler's denoise and start/end
 * step cuts, ModelSamplingFlux's shift, empty latents, Kontext resizing, PNG encoding — and hands the engine a
 * {@link org.dit4j.server.engine.SampleJob}: patched model ({@link org.dit4j.server.engine.ModelRef}: sampling,
 * LoRAs, step cache, compile, parallel layout), conditioning, cfg, sigmas, seed, latent. The engine owns noise
 * generation, noise scaling (σ·ε + (1−σ)·x for flow models), the latent-format shift, CFG and the step loop, and
 * reports each step to a {@link org.dit4j.server.engine.StepObserver} (progress events, interrupts).
 *
 * <h2>Known departures from ComfyUI</h2>
 * <ul>
 *   <li>Validation checks inputs in declaration order (ComfyUI iterates a set: its order varies by process).</li>
 *   <li>Execution order: dependencies first, outputs in prompt order (ComfyUI's staging prefers output nodes, same
 *       results). Node ids have no subgraph expansion (no node dit4j ships expands).</li>
 *   <li>execution_success is sent after the history entry is stored, so a client that reads /history on it never
 *       sees an empty answer.</li>
 *   <li>/view?preview=webp answers JPEG (dit4j's WebP encoder is lossless only); LoadImage reads PNG, JPEG, BMP, GIF.</li>
 *   <li>SaveAnimatedWEBP writes lossless WebP always (lossless=false is noted and written losslessly; quality and method
 *       have no effect).</li>
 *   <li>Multi-GPU (ParallelUNETLoader num_gpus &gt; 1), Flux and Wan2.1 on one set of ranks per server
 *       ({@link org.dit4j.server.engine.MeshWorld}): steps run as CUDA graphs per rank and branch after an eager first
 *       call; pipefusion_degree &gt; 1 is refused; Flux step caches run on ulysses/ring layouts only (every rank decides
 *       from the whole sequence's sums) and are refused with cfg/dp degrees &gt; 1, naming the setting to change.</li>
 *   <li>Step previews: latent2rgb JPEGs (binary PREVIEW_IMAGE frames, ComfyUI's format) by default ({@code --preview-method
 *       none|auto|latent2rgb}; no TAESD); the resize to the preview size is Java2D's bilinear, not PIL's; /features reports
 *       supports_preview_metadata=false, so clients get the plain format.</li>
 *   <li>Wan2.1 text-to-video (package {@code wan}): umT5 runs in BF16 on GPUs (ComfyUI: FP16 or the scaled fp8 file's
 *       compute dtype); LoRAs, step caches, VAEDecodeTiled, noise masks and image-to-video models are refused with a
 *       message; num_gpus &gt; 1 runs on the mesh ({@code WanMesh}).</li>
 *   <li>Flux engine: T5 runs in BF16 on GPUs (ComfyUI: FP16); cond and uncond run as two forwards (ComfyUI batches them and
 *       pads T5 states of different lengths by repetition); {@code embedding:} names are not interpreted; see {@code flux}.</li>
 * </ul>
 */
package org.dit4j.server;
