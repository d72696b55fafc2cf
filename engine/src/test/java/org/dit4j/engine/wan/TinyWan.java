package org.dit4j.engine.wan;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.vae.wan.WanVaeWeights;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanWeights;

/**
 * A complete, tiny, random Wan2.1 text-to-video pipeline written by the tests:
 * <ul>
 *   <li>{@link #writeDiffusers}: a diffusers {@code WanPipeline} folder (model_index.json, scheduler/ (UniPC, flow
 *       sigmas, shift 3), transformer/ (WanTransformer3DModel names + config.json), vae/ (AutoencoderKLWan), text_encoder/
 *       (UMT5EncoderModel: a bias table per layer), tokenizer/ (a synthetic T5-style Unigram tokenizer.json)) that
 *       diffusers' WanPipeline.from_pretrained loads (scripts/reference/wan_pipeline_reference.py);</li>
 *   <li>{@link #writeFiles}: the same weights as ComfyUI-style files: models/diffusion_models/wan-tiny.safetensors
 *       (original names under {@code model.diffusion_model.}), models/vae/wan-vae-tiny.safetensors (original names),
 *       models/text_encoders/umt5-tiny.safetensors, and models/tokenizers/umt5-xxl/.</li>
 * </ul>
 * Transformer: dim 128, 1 head (head dim 128, so the head count is detectable without config.json), 2 layers, FFN 96,
 * text dim 32; VAE: Wan2.1's structure at base 2 (channels 2, 4, 8, 8), z 16, Wan2.1 latent statistics; umT5: d 32,
 * 4 heads × 8, FFN 64, 2 layers. Weights are uniform ±1/√fan_in (RandomWeightSource), F32.
 */
final class TinyWan {
    private TinyWan() {}

    static final int T5_D = 32;
    static final WanConfig TRANSFORMER = new WanConfig(128, 1, 2, 96, 16, 16, T5_D, 256, new int[] {1, 2, 2}, true);
    static final WanVaeConfig VAE = new WanVaeConfig(3, 3, 2, new int[] {2, 4, 8, 8}, 2, new boolean[] {false, true, true}, 16,
            WanVaeConfig.WAN21_LATENTS_MEAN, WanVaeConfig.WAN21_LATENTS_STD, true, true);

    /**
     * The transformer of the multi-GPU tests: as {@link #TRANSFORMER} but 4 heads of 32 (Ulysses degrees 2 and 4
     * divide it); only in diffusers folders, whose config.json gives the head count.
     */
    static final WanConfig TRANSFORMER_4_HEADS = new WanConfig(128, 4, 2, 96, 16, 16, T5_D, 256, new int[] {1, 2, 2}, true);

    static Path writeDiffusers(Path dir, long seed) throws IOException { return writeDiffusers(dir, seed, TRANSFORMER); }

    /** {@link #writeDiffusers(Path, long)} with another transformer configuration (same VAE and umT5). */
    static Path writeDiffusers(Path dir, long seed, WanConfig transformer) throws IOException {
        TinyFluxAccess.write(dir.resolve("model_index.json"), """
                {
                  "_class_name": "WanPipeline",
                  "_diffusers_version": "0.35.0",
                  "boundary_ratio": null,
                  "expand_timesteps": false,
                  "scheduler": ["diffusers", "UniPCMultistepScheduler"],
                  "text_encoder": ["transformers", "UMT5EncoderModel"],
                  "tokenizer": ["transformers", "T5TokenizerFast"],
                  "transformer": ["diffusers", "WanTransformer3DModel"],
                  "transformer_2": [null, null],
                  "vae": ["diffusers", "AutoencoderKLWan"]
                }
                """);
        TinyFluxAccess.write(dir.resolve("scheduler/scheduler_config.json"), """
                {
                  "_class_name": "UniPCMultistepScheduler",
                  "_diffusers_version": "0.35.0",
                  "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
                  "disable_corrector": [], "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero",
                  "flow_shift": 3.0, "lower_order_final": true, "num_train_timesteps": 1000,
                  "predict_x0": true, "prediction_type": "flow_prediction", "rescale_betas_zero_snr": false,
                  "sample_max_value": 1.0, "solver_order": 2, "solver_p": null, "solver_type": "bh2",
                  "steps_offset": 0, "thresholding": false, "timestep_spacing": "linspace", "trained_betas": null,
                  "use_beta_sigmas": false, "use_exponential_sigmas": false, "use_flow_sigmas": true, "use_karras_sigmas": false
                }
                """);
        WanConfig c = transformer;
        TinyFluxAccess.write(dir.resolve("transformer/config.json"), """
                {
                  "_class_name": "WanTransformer3DModel",
                  "_diffusers_version": "0.35.0",
                  "added_kv_proj_dim": null, "attention_head_dim": %d, "cross_attn_norm": true, "eps": 1e-06,
                  "ffn_dim": %d, "freq_dim": %d, "image_dim": null, "in_channels": %d, "num_attention_heads": %d,
                  "num_layers": %d, "out_channels": %d, "patch_size": [1, 2, 2], "pos_embed_seq_len": null,
                  "qk_norm": "rms_norm_across_heads", "rope_max_seq_len": 1024, "text_dim": %d
                }
                """.formatted(c.headDim(), c.ffnDim(), c.freqDim(), c.inChannels(), c.numHeads(), c.numLayers(), c.outChannels(),
                c.textDim()));
        Map<String, Tensor> diff = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : transformer(seed, c).entrySet()) diff.put(WanWeights.toDiffusers(e.getKey()), e.getValue());
        TinyFluxAccess.tensors(dir.resolve("transformer/diffusion_pytorch_model.safetensors"), diff);
        TinyFluxAccess.write(dir.resolve("vae/config.json"), """
                {
                  "_class_name": "AutoencoderKLWan",
                  "_diffusers_version": "0.35.0",
                  "attn_scales": [], "base_dim": 2, "dim_mult": [1, 2, 4, 4], "dropout": 0.0, "num_res_blocks": 2,
                  "temperal_downsample": [false, true, true], "z_dim": 16,
                  "latents_mean": %s,
                  "latents_std": %s
                }
                """.formatted(json(WanVaeConfig.WAN21_LATENTS_MEAN), json(WanVaeConfig.WAN21_LATENTS_STD)));
        Map<String, Tensor> vaeDiff = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : vae(seed + 1).entrySet())
            vaeDiff.put(WanVaeWeights.toDiffusers(e.getKey(), VAE.numResBlocks()), e.getValue());
        TinyFluxAccess.tensors(dir.resolve("vae/diffusion_pytorch_model.safetensors"), vaeDiff);
        List<String> pieces = TinyFluxAccess.t5Pieces();
        TinyFluxAccess.write(dir.resolve("text_encoder/config.json"), """
                {
                  "architectures": ["UMT5EncoderModel"],
                  "model_type": "umt5",
                  "d_ff": 64, "d_kv": 8, "d_model": %d, "decoder_start_token_id": 0, "dense_act_fn": "gelu_new",
                  "dropout_rate": 0.0, "eos_token_id": 1, "feed_forward_proj": "gated-gelu", "initializer_factor": 1.0,
                  "is_encoder_decoder": true, "is_gated_act": true, "layer_norm_epsilon": 1e-06, "num_decoder_layers": 2,
                  "num_heads": 4, "num_layers": 2, "pad_token_id": 0, "relative_attention_max_distance": 128,
                  "relative_attention_num_buckets": 32, "tie_word_embeddings": false, "torch_dtype": "float32",
                  "use_cache": false, "vocab_size": %d
                }
                """.formatted(T5_D, pieces.size()));
        TinyFluxAccess.tensors(dir.resolve("text_encoder/model.safetensors"), umt5(seed + 2, pieces.size()));
        TinyFluxAccess.writeT5Tokenizer(dir.resolve("tokenizer"), pieces);
        return dir;
    }

    /** The same weights as {@link #writeDiffusers} (same seed) as ComfyUI-style files; returns models/. */
    static Path writeFiles(Path models, long seed) throws IOException {
        Map<String, Tensor> prefixed = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : transformer(seed).entrySet()) prefixed.put(WanWeights.COMFY_PREFIX + e.getKey(), e.getValue());
        TinyFluxAccess.tensors(models.resolve("diffusion_models/wan-tiny.safetensors"), prefixed);
        TinyFluxAccess.tensors(models.resolve("vae/wan-vae-tiny.safetensors"), vae(seed + 1));
        List<String> pieces = TinyFluxAccess.t5Pieces();
        TinyFluxAccess.tensors(models.resolve("text_encoders/umt5-tiny.safetensors"), umt5(seed + 2, pieces.size()));
        TinyFluxAccess.writeT5Tokenizer(models.resolve("tokenizers/" + WanModelResolver.TOKENIZER_NAME), pieces);
        return models;
    }

    /** Canonical (original) transformer tensors. */
    static Map<String, Tensor> transformer(long seed) { return transformer(seed, TRANSFORMER); }

    /** Canonical (original) tensors of a transformer of configuration {@code c}. */
    static Map<String, Tensor> transformer(long seed, WanConfig c) {
        return all(new RandomWeightSource(WanWeights.expectedShapes(c), DType.F32, seed));
    }

    /** Canonical (original) VAE tensors. */
    static Map<String, Tensor> vae(long seed) {
        return all(new RandomWeightSource(WanVaeWeights.expectedShapes(VAE), DType.F32, seed));
    }

    /** A 2-layer umT5 encoder (every layer with its own relative-position bias) in Hugging Face names. */
    static Map<String, Tensor> umt5(long seed, int vocab) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int d = T5_D, inner = 32, ff = 64;
        s.put("shared.weight", Shape.of(vocab, d));
        for (int i = 0; i < 2; i++) {
            String a = "encoder.block." + i + ".layer.0.", f = "encoder.block." + i + ".layer.1.";
            s.put(a + "layer_norm.weight", Shape.of(d));
            for (String x : new String[] {"q", "k", "v"}) s.put(a + "SelfAttention." + x + ".weight", Shape.of(inner, d));
            s.put(a + "SelfAttention.o.weight", Shape.of(d, inner));
            s.put(a + "SelfAttention.relative_attention_bias.weight", Shape.of(32, 4));
            s.put(f + "layer_norm.weight", Shape.of(d));
            s.put(f + "DenseReluDense.wi_0.weight", Shape.of(ff, d));
            s.put(f + "DenseReluDense.wi_1.weight", Shape.of(ff, d));
            s.put(f + "DenseReluDense.wo.weight", Shape.of(d, ff));
        }
        s.put("encoder.final_layer_norm.weight", Shape.of(d));
        return all(new RandomWeightSource(s, DType.F32, seed));
    }

    private static Map<String, Tensor> all(RandomWeightSource src) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : src.names()) out.put(n, src.tensor(n));
        return out;
    }

    private static String json(float[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) sb.append(i == 0 ? "" : ", ").append(v[i]);
        return sb.append(']').toString();
    }

    /** Writes OUT/tiny-wan (diffusers folder) and OUT/models (ComfyUI-style files) for scripts/reference/wan_pipeline_reference.py. */
    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        writeDiffusers(out.resolve("tiny-wan"), 21);
        writeFiles(out.resolve("models"), 21);
    }
}
