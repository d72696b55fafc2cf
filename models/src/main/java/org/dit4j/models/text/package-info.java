/**
 * Text encoders of the diffusion models, written once against {@link org.dit4j.core.ops.Ops} (models.md §1.11).
 *
 * <ul>
 *   <li>{@link org.dit4j.models.text.T5Encoder} — the encoder stack of T5 v1.1 (Flux: T5-XXL, no mask, 512/256
 *       tokens) and umT5 (Wan: relative-position bias in every block, padding mask), as Hugging Face
 *       {@code T5EncoderModel} / {@code UMT5EncoderModel}. {@link org.dit4j.models.text.T5Config#detect} reads the
 *       configuration from tensor shapes.</li>
 *   <li>{@link org.dit4j.models.text.ClipTextModel} — Hugging Face {@code CLIPTextModel} (Flux: CLIP-L, causal mask,
 *       pooled output at the EOS token, no projection); {@link org.dit4j.models.text.ClipTextConfig#detect}.</li>
 *   <li>{@link org.dit4j.models.text.TextConditioning} — Flux's prompt → (T5 hidden state {@code txt}, CLIP pooled
 *       {@code y}) with the tokenizers of {@link org.dit4j.models.text.tokenizer}.</li>
 * </ul>
 *
 * <p><b>Checkpoints.</b> Names are Hugging Face's under a prefix found by probing one name: T5
 * {@code [prefix]shared.weight} (or {@code encoder.embed_tokens.weight}), {@code encoder.block.N.layer.0.SelfAttention.
 * {q,k,v,o,relative_attention_bias}}, {@code ….layer.1.DenseReluDense.{wi_0,wi_1,wo}}, layer norms; CLIP
 * {@code text_model.embeddings.…}, {@code text_model.encoder.layers.N.…}, {@code text_model.final_layer_norm}.
 * ComfyUI's single files use exactly these names ({@code t5xxl_*.safetensors}, {@code umt5_xxl_*.safetensors}: no
 * prefix; {@code clip_l.safetensors}: {@code text_model.}); its all-in-one checkpoints put them under
 * {@code text_encoders.t5xxl.transformer.} / {@code text_encoders.clip_l.transformer.}; diffusers'
 * {@code text_encoder_2/} (sharded, with an index) and {@code text_encoder/} are read through
 * {@link org.dit4j.core.io.WeightSource}. Storage may be F32, BF16, F16, F8_E4M3/F8_E5M2, or ComfyUI scaled fp8
 * ({@code <layer>.scale_weight}, or {@code <layer>.weight_scale} in newer files, scalar or per output row). Scaled
 * fp8 weights stay fp8 on the device and the scale multiplies the linear's output (equal to W = w8·scale up to f32
 * rounding), unless a weight dtype is requested at load, which dequantizes them. Not supported: original T5/T5 v1.0
 * (ReLU, non-gated {@code wi}), OpenAI/OpenCLIP-native CLIP names ({@code transformer.resblocks.N}), int8/nvfp4
 * ComfyUI quantization (refused with the file's quantization tag in the message).
 *
 * <p><b>Dtypes.</b> Arithmetic follows the backend's rule (f32 inside every op). On the CPU run both encoders with
 * F32 activations (the reference tests: rel-L2 ≈ 4e-7 against transformers). On the GPU use BF16 activations for T5
 * — never F16: T5's unscaled attention and growing activations overflow fp16 (Hugging Face clamps them, which changes
 * the result; {@link org.dit4j.models.text.T5Encoder} refuses F16) — and BF16 or F16 for CLIP. fp16 weight files
 * ({@code t5xxl_fp16.safetensors}) are fine: only the activations overflow. Flux takes the T5 output in bf16.
 *
 * <p><b>Pooled CLIP position.</b> transformers 5 pools at the first position of the highest id when the config's
 * {@code eos_token_id} is 2 (openai/clip-vit-large-patch14's legacy config), else at the first position of
 * {@code eos_token_id}. For CLIP's tokenizer (EOS 49407 = the highest id, also the padding) both are the first EOS.
 *
 * <p><b>References.</b> {@code scripts/reference/text_encoders_reference.py} (transformers 5.17, torch 2.11, float32 on
 * the CPU of the GPU machine) wrote {@code models/src/test/resources/text/}: tiny random T5 v1.1, umT5, scaled-fp8 T5
 * and CLIP models with their inputs and outputs.
 */
package org.dit4j.models.text;
