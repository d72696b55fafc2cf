/**
 * The Flux VAE: a KL autoencoder exactly as diffusers' {@code AutoencoderKL} (models.md §1.10), written against
 * {@link org.dit4j.core.ops.Ops}.
 *
 * <ul>
 *   <li>{@link org.dit4j.models.vae.VaeConfig} — architecture read from tensor shapes ({@code detect}); norm groups,
 *       latent scale and shift (not in the shapes) from a diffusers {@code config.json}, or defaults by latent channels
 *       (16 → Flux 0.3611/0.1159, 4 → SD 0.18215/0).</li>
 *   <li>{@link org.dit4j.models.vae.VaeWeights} — one canonical naming (BFL {@code ae.safetensors} names, attention
 *       projections as Linear [C, C]); reads BFL/LDM/ComfyUI files (unprefixed, {@code vae.},
 *       {@code first_stage_model.} or any prefix) and diffusers files/folders (decoder {@code up_blocks.k} =
 *       BFL {@code up.(levels−1−k)}), stored as F32/BF16/F16; strict: missing, misshapen or left-over tensors are
 *       errors naming tensor, file, expected and found shape.</li>
 *   <li>{@link org.dit4j.models.vae.AutoencoderKL} — {@code encode} (posterior mean, scaled: (mean − shift)·scale),
 *       {@code decode} (z/scale + shift, then the decoder), {@code decodeTiled} (diffusers' {@code tiled_decode}
 *       blend), raw-space variants; encoder-only or decoder-only files work for the half they hold.</li>
 *   <li>{@link org.dit4j.models.vae.VaeImages} — 8-bit RGB ↔ [−1, 1] tensors, rounding as diffusers'
 *       {@code VaeImageProcessor}.</li>
 * </ul>
 *
 * <p>Exactness is tested against {@code src/test/resources/vae/}, made by {@code scripts/reference/vae_reference.py}
 * (diffusers 0.40.0.dev0, torch 2.11, float32 CPU) on two tiny random configs: rel-L2 ≈1e-6 for encode, decode and
 * tiled decode in both layouts; the BFL files were checked by converting them back with diffusers'
 * {@code convert_ldm_vae_checkpoint}.
 *
 * <p>Not implemented: sampling from the posterior (Flux uses the mean), tiled encoding, per-channel latent
 * normalisation ({@code latents_mean/std}, other VAEs), telling SD3's VAE (same shapes as Flux's, scale 1.5305,
 * shift 0.0609) from Flux's without a config.json.
 */
package org.dit4j.models.vae;
