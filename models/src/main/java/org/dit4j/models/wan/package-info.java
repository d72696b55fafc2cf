/**
 * The Wan2.1 text-to-video transformer (1.3B and 14B), written once against {@link org.dit4j.core.ops.Ops}
 * (models.md §2.1–2.6).
 *
 * <ul>
 *   <li>{@link org.dit4j.models.wan.WanConfig} — hyper-parameters; presets {@code t2v1_3B()}, {@code t2v14B()};
 *       {@code detect} reads them from tensor shapes. The head count is not in the shapes (the q/k RMSNorms span all
 *       heads): it comes from a diffusers {@code config.json} beside the weights, else from the released models' head
 *       dim 128, or is passed explicitly.</li>
 *   <li>{@link org.dit4j.models.wan.WanWeights} — one canonical naming (the original/ComfyUI names without prefix),
 *       loaded from original files ({@code diffusion_pytorch_model*.safetensors} of Wan-AI/Wan2.1-T2V-*), ComfyUI files
 *       ({@code wan2.1_t2v_*.safetensors}, optionally under {@code model.diffusion_model.}) or diffusers'
 *       {@code WanTransformer3DModel} ({@code transformer/}, renamed one to one; the cross-attention LayerNorm is
 *       {@code norm3} in the original and {@code norm2} in diffusers). Storage F32, BF16, F16, F8_E4M3/F8_E5M2 or ComfyUI
 *       scaled fp8 (dequantized at load by {@link org.dit4j.models.nn.ScaledFp8}). Image-to-video and VACE checkpoints
 *       are refused with a message.</li>
 *   <li>{@link org.dit4j.models.wan.WanTransformer} — patch embedding (the (1,2,2) Conv3d as a linear over flattened
 *       patches), time embedding and the six modulation vectors, text embedding, the blocks
 *       ({@link org.dit4j.models.wan.WanBlock}: self-attention with RMSNorm across heads and 3-D RoPE
 *       ({@link org.dit4j.models.wan.WanRope}), cross-attention on the text, GELU-tanh FFN), the head with its own
 *       modulation from the raw time embedding, unpatchify in Wan's (ph, pw, c) order. {@code prepare} does the host work
 *       (sinusoidal embedding, RoPE tables); {@code forwardEmbedded} is device-only and capturable; {@code embedText}
 *       can be computed once per prompt. {@code flops} counts linear and attention FLOPs.</li>
 * </ul>
 *
 * <p><b>Dtypes.</b> The activation dtype is the latent's (BF16 on the GPU, F32 on the CPU). As diffusers does when it
 * loads the model in bf16, the time MLP, the modulation tables and the cross-attention norm are kept in F32, the time
 * embedding is rounded to the activation dtype before the time projection, and modulation, norms and gating are
 * computed in F32 and rounded once. The transformer is called with the integer timesteps of the schedule
 * (0..999 scale), the latent the sampler keeps (cast to the activation dtype) and the umT5 states zero-padded to 512
 * rows as the reference does.
 *
 * <p><b>References.</b> {@code scripts/reference/wan_reference.py} (diffusers 0.40.0.dev0, torch 2.13, float32 on the
 * CPU) wrote {@code models/src/test/resources/wan/}: two tiny random configurations in both layouts with their
 * inputs and float32, float64 and bfloat16 outputs. dit4j's CPU F32 forward: rel-L2 2.3e-6 and 5.0e-7; BF16: 4.9e-3
 * and 5.6e-3 (diffusers' own bf16 run: 4.9e-3 and 6.2e-3).
 */
package org.dit4j.models.wan;
