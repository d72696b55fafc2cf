/**
 * The Wan2.1 video VAE: a causal 3-D convolutional autoencoder exactly as diffusers' {@code AutoencoderKLWan} and the
 * original {@code WanVAE} (models.md §2.8), written against {@link org.dit4j.core.ops.Ops}.
 *
 * <ul>
 *   <li>{@link org.dit4j.models.vae.wan.WanVaeConfig} — level channels, residual blocks, temporal downsamples, z_dim read
 *       from tensor shapes ({@code detect}); the per-channel latent mean/std from a diffusers {@code config.json}, else
 *       Wan2.1's 16 values for a 16-channel latent. Wan2.2's VAE (residual blocks, patchified input) is refused.</li>
 *   <li>{@link org.dit4j.models.vae.wan.WanVaeWeights} — one canonical naming (the original / ComfyUI
 *       {@code wan_2.1_vae.safetensors} names, flat {@code encoder.downsamples.N} / {@code decoder.upsamples.N}
 *       lists); reads those files (any prefix) and diffusers folders/files ({@code down_blocks},
 *       {@code up_blocks.i.resnets.j}, {@code upsamplers.0}, {@code mid_block}, {@code quant_conv}…), stored as F32,
 *       BF16 or F16; strict: missing, misshapen or left-over tensors are errors naming tensor, file, expected and
 *       found shape.</li>
 *   <li>{@link org.dit4j.models.vae.wan.WanVae} — {@code encode} (posterior mean, normalised: (μ − mean)/std),
 *       {@code decode} (z·std + mean, then the decoder), raw-space variants, and streaming decode that hands each
 *       chunk's frames to a consumer. Both directions run chunk by chunk over time (decoder: 1 latent frame by
 *       default, as the reference; encoder: frame 0 then 4 frames); the causal layers carry at most 2 frames each
 *       between chunks (the reference's {@code feat_cache}, {@code WanVaeBlocks.CausalCache}),
 *       so memory is bounded and any chunking gives the same result. The decode is not clamped (see
 *       {@code WanVae}).</li>
 *   <li>{@link org.dit4j.models.vae.wan.WanVideoFrames} — 8-bit RGB frames ↔ [−1, 1] video tensors, rounding as
 *       diffusers' {@code VideoProcessor} (half to even) or truncating as {@code export_to_video}.</li>
 * </ul>
 *
 * <p>Building blocks ({@link org.dit4j.models.vae.wan.WanVaeBlocks}): causal 3-D convolutions (2 frames of front
 * padding in time, none after, 1/1 in space, through {@code Ops.conv3d} and {@code Ops.pad}), the channel RMS norm
 * (on channel-last data through {@code Ops.rmsNorm}), residual blocks, per-frame single-head mid-block attention,
 * and the resamples: downsample2d/3d (zero pad (0,1), stride-2 conv; temporal: stride-2 time conv over the last
 * frame of the previous chunk and this one) and upsample2d/3d (nearest ×2, conv to C/2; temporal: causal time conv to
 * 2C interleaved into two frames each, skipped for the stream's first frame).
 *
 * <p>Exactness is tested against {@code src/test/resources/wanvae/}, made by
 * {@code scripts/reference/wan_vae_reference.py} (diffusers 0.40.0.dev0, torch 2.13, float32 CPU) on two tiny random
 * configurations: a has Wan2.1's structure (4 levels, temporal [F, T, T], z 16; its original-layout file checked by
 * converting it back with diffusers' {@code convert_wan_vae_to_diffusers}), b another shape (3 levels, temporal
 * [T, F], 1 block per level, z 4). CPU F32 vs diffusers: encode rel-L2 2.0e-6 / 5.8e-7, decode 1.1e-5 / 9.7e-7 (a
 * / b; diffusers' own float32 decode of a is 9.4e-6 from its float64 decode), in both layouts and with weights stored
 * as BF16, F16 and F32; decoding in chunks of 1, 2 or 3 latent frames and encoding in one pass or in the reference's
 * chunks agree to ≤ 1e-5. BF16 weights and activations: 1.3e-2 / 2.2e-2 (b).
 *
 * <p>Not implemented: sampling from the posterior, spatial tiling (diffusers' {@code tiled_decode}; the time
 * chunking already bounds memory by frames, not by H·W), Wan2.2's VAE, attention blocks inside levels
 * ({@code attn_scales}), scaled-fp8 VAE files.
 */
package org.dit4j.models.vae.wan;
