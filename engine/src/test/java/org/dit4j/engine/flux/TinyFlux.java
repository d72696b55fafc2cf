package org.dit4j.engine.flux;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;

/**
 * A complete, tiny, random Flux pipeline written by the tests in the real layouts:
 * <ul>
 *   <li>{@link #writeDiffusers}: a diffusers folder (model_index.json, scheduler/, transformer/, vae/, text_encoder/
 *       (HF CLIPTextModel), text_encoder_2/ (HF T5EncoderModel), tokenizer/ (CLIP vocab.json + merges.txt),
 *       tokenizer_2/ (T5 tokenizer.json)) that diffusers' FluxPipeline.from_pretrained loads
 *       (scripts/reference/flux_pipeline_reference.py);</li>
 *   <li>{@link #writeFiles}: the same weights as ComfyUI-style single files (BFL transformer and VAE names,
 *       clip_l, t5xxl) under models/{diffusion_models,text_encoders,vae}/ with the tokenizers in models/tokenizers/.</li>
 * </ul>
 * Tokenizers are synthetic: a CLIP byte-level BPE vocabulary of the 512 byte symbols (plain and with {@code </w>}), a few
 * merges and the two special tokens (520 ids, EOS 519), and a small T5-style Unigram tokenizer.json (Metaspace,
 * EOS 1, pad 0). Weights are uniform ±1/√fan_in (RandomWeightSource), F32.
 */
final class TinyFlux {
    private TinyFlux() {}

    static final int T5_D = 32, CLIP_D = 64;
    static final VaeConfig VAE = new VaeConfig(3, 3, new int[] {32, 32, 32, 32}, 1, 16, 32, VaeConfig.FLUX_SCALING,
            VaeConfig.FLUX_SHIFT, false, false, true, true, true);

    static FluxConfig transformer(boolean guidance) {
        return new FluxConfig(128, 2, 1, 1, 64, 64, T5_D, CLIP_D, 512, FluxConfig.defaultAxesDim(64), 10000, guidance);
    }

    // ------------------------------------------------------------------------------------------------ diffusers folder

    static Path writeDiffusers(Path dir, boolean guidance, long seed) throws IOException {
        Files.createDirectories(dir);
        FluxConfig fc = transformer(guidance);
        write(dir.resolve("model_index.json"), """
                {
                  "_class_name": "FluxPipeline",
                  "_diffusers_version": "0.35.0",
                  "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                  "text_encoder": ["transformers", "CLIPTextModel"],
                  "text_encoder_2": ["transformers", "T5EncoderModel"],
                  "tokenizer": ["transformers", "CLIPTokenizer"],
                  "tokenizer_2": ["transformers", "T5TokenizerFast"],
                  "transformer": ["diffusers", "FluxTransformer2DModel"],
                  "vae": ["diffusers", "AutoencoderKL"]
                }
                """);
        write(dir.resolve("scheduler/scheduler_config.json"), """
                {
                  "_class_name": "FlowMatchEulerDiscreteScheduler",
                  "_diffusers_version": "0.35.0",
                  "base_image_seq_len": 256,
                  "base_shift": 0.5,
                  "max_image_seq_len": 4096,
                  "max_shift": 1.15,
                  "num_train_timesteps": 1000,
                  "shift": %s,
                  "use_dynamic_shifting": %s
                }
                """.formatted(guidance ? "3.0" : "1.0", guidance));
        // transformer
        write(dir.resolve("transformer/config.json"), """
                {
                  "_class_name": "FluxTransformer2DModel",
                  "_diffusers_version": "0.35.0",
                  "attention_head_dim": %d,
                  "axes_dims_rope": [%d, %d, %d],
                  "guidance_embeds": %s,
                  "in_channels": %d,
                  "joint_attention_dim": %d,
                  "num_attention_heads": %d,
                  "num_layers": %d,
                  "num_single_layers": %d,
                  "patch_size": 1,
                  "pooled_projection_dim": %d
                }
                """.formatted(fc.headDim(), fc.axesDim()[0], fc.axesDim()[1], fc.axesDim()[2], guidance, fc.inChannels(),
                fc.contextDim(), fc.numHeads(), fc.depth(), fc.depthSingle(), fc.vecDim()));
        tensors(dir.resolve("transformer/diffusion_pytorch_model.safetensors"), diffusersTransformer(fc, seed));
        // VAE
        write(dir.resolve("vae/config.json"), """
                {
                  "_class_name": "AutoencoderKL",
                  "_diffusers_version": "0.35.0",
                  "act_fn": "silu",
                  "block_out_channels": [32, 32, 32, 32],
                  "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"],
                  "force_upcast": true,
                  "in_channels": 3,
                  "latent_channels": 16,
                  "latents_mean": null,
                  "latents_std": null,
                  "layers_per_block": 1,
                  "mid_block_add_attention": true,
                  "norm_num_groups": 32,
                  "out_channels": 3,
                  "sample_size": 64,
                  "scaling_factor": 0.3611,
                  "shift_factor": 0.1159,
                  "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"],
                  "use_post_quant_conv": false,
                  "use_quant_conv": false
                }
                """);
        tensors(dir.resolve("vae/diffusion_pytorch_model.safetensors"), vae(seed + 1, false));
        // text encoders
        List<String> t5Pieces = t5Pieces();
        write(dir.resolve("text_encoder/config.json"), """
                {
                  "architectures": ["CLIPTextModel"],
                  "model_type": "clip_text_model",
                  "attention_dropout": 0.0,
                  "bos_token_id": 518,
                  "eos_token_id": 519,
                  "pad_token_id": 1,
                  "hidden_act": "quick_gelu",
                  "hidden_size": %d,
                  "initializer_factor": 1.0,
                  "initializer_range": 0.02,
                  "intermediate_size": 128,
                  "layer_norm_eps": 1e-05,
                  "max_position_embeddings": 77,
                  "num_attention_heads": 1,
                  "num_hidden_layers": 2,
                  "projection_dim": %d,
                  "torch_dtype": "float32",
                  "vocab_size": %d
                }
                """.formatted(CLIP_D, CLIP_D, CLIP_VOCAB));
        tensors(dir.resolve("text_encoder/model.safetensors"), clip(seed + 2, "text_model."));
        write(dir.resolve("text_encoder_2/config.json"), """
                {
                  "architectures": ["T5EncoderModel"],
                  "model_type": "t5",
                  "d_ff": 64,
                  "d_kv": 8,
                  "d_model": %d,
                  "decoder_start_token_id": 0,
                  "dense_act_fn": "gelu_new",
                  "dropout_rate": 0.0,
                  "eos_token_id": 1,
                  "feed_forward_proj": "gated-gelu",
                  "initializer_factor": 1.0,
                  "is_encoder_decoder": false,
                  "is_gated_act": true,
                  "layer_norm_epsilon": 1e-06,
                  "num_decoder_layers": 2,
                  "num_heads": 4,
                  "num_layers": 2,
                  "pad_token_id": 0,
                  "relative_attention_max_distance": 128,
                  "relative_attention_num_buckets": 32,
                  "tie_word_embeddings": true,
                  "torch_dtype": "float32",
                  "use_cache": false,
                  "vocab_size": %d
                }
                """.formatted(T5_D, t5Pieces.size()));
        tensors(dir.resolve("text_encoder_2/model.safetensors"), t5(seed + 3, t5Pieces.size()));
        writeClipTokenizer(dir.resolve("tokenizer"));
        writeT5Tokenizer(dir.resolve("tokenizer_2"), t5Pieces);
        return dir;
    }

    /**
     * ComfyUI-style files of the same weights as {@link #writeDiffusers} with the same seed: models/diffusion_models/
     * flux-tiny.safetensors (BFL names), models/text_encoders/{clip_l,t5xxl_tiny}.safetensors, models/vae/ae.safetensors
     * (BFL names, 1×1-conv attention), models/tokenizers/{clip-vit-large-patch14,t5-v1_1-xxl}/. Returns models/.
     */
    static Path writeFiles(Path models, boolean guidance, long seed) throws IOException {
        FluxConfig fc = transformer(guidance);
        Files.createDirectories(models);
        tensors(models.resolve("diffusion_models/flux-tiny.safetensors"), canonicalTransformer(fc, seed));
        tensors(models.resolve("vae/ae.safetensors"), vae(seed + 1, true));
        tensors(models.resolve("text_encoders/clip_l.safetensors"), clip(seed + 2, "text_model."));
        List<String> pieces = t5Pieces();
        tensors(models.resolve("text_encoders/t5xxl_tiny.safetensors"), t5(seed + 3, pieces.size()));
        writeClipTokenizer(models.resolve("tokenizers/" + FluxModelResolver.CLIP_TOKENIZER_NAME));
        writeT5Tokenizer(models.resolve("tokenizers/" + FluxModelResolver.T5_TOKENIZER_NAME), pieces);
        return models;
    }

    // ------------------------------------------------------------------------------------------------ weights

    static Map<String, Tensor> canonicalTransformer(FluxConfig fc, long seed) {
        return all(new RandomWeightSource(FluxWeights.expectedShapes(fc), DType.F32, seed), null);
    }

    /** Canonical (BFL) tensors split into diffusers tensors: qkv rows in thirds, linear1 into q,k,v,proj_mlp, final halves swapped. */
    static Map<String, Tensor> diffusersTransformer(FluxConfig fc, long seed) {
        Map<String, Tensor> canon = canonicalTransformer(fc, seed);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : canon.entrySet()) {
            FluxWeights.DiffusersRecipe r = FluxWeights.diffusersSources(e.getKey());
            float[] v = e.getValue().toFloatArray();
            long[] dims = e.getValue().shape().dims();
            long cols = dims.length == 2 ? dims[1] : 1;
            if (r.swapHalves()) {
                int half = v.length / 2;
                float[] sw = new float[v.length];
                System.arraycopy(v, half, sw, 0, half);
                System.arraycopy(v, 0, sw, half, half);
                v = sw;
            }
            long[] rows = new long[r.sources().size()];
            if (e.getKey().contains(".linear1.")) {
                for (int k = 0; k < 3; k++) rows[k] = fc.hiddenSize();
                rows[3] = fc.mlpHidden();
            } else {
                java.util.Arrays.fill(rows, dims[0] / rows.length);
            }
            int off = 0;
            for (int k = 0; k < rows.length; k++) {
                int n = (int) (rows[k] * cols);
                float[] part = java.util.Arrays.copyOfRange(v, off, off + n);
                off += n;
                out.put(r.sources().get(k), dims.length == 2 ? Tensor.of(part, rows[k], cols) : Tensor.of(part, rows[k]));
            }
            e.getValue().close();
        }
        return out;
    }

    /** The VAE: BFL names (attention as 1×1 convs) when {@code bfl}, else diffusers names. */
    static Map<String, Tensor> vae(long seed, boolean bfl) {
        Map<String, Shape> shapes = VaeWeights.expectedShapes(VAE);
        Map<String, Tensor> canon = all(new RandomWeightSource(shapes, DType.F32, seed), null);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (Map.Entry<String, Tensor> e : canon.entrySet()) {
            String n = e.getKey();
            Tensor t = e.getValue();
            boolean attn = n.matches("(encoder|decoder)\\.mid\\.attn_1\\.(q|k|v|proj_out)\\.weight");
            if (bfl && attn) {
                out.put(n, Tensor.of(t.toFloatArray(), t.dim(0), t.dim(1), 1, 1));
                t.close();
            } else {
                out.put(bfl ? n : VaeWeights.toDiffusers(n, VAE.levels()).get(0), t);
            }
        }
        return out;
    }

    static final int CLIP_VOCAB = 520;

    static Map<String, Tensor> clip(long seed, String prefix) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int d = CLIP_D, m = 128;
        s.put("embeddings.token_embedding.weight", Shape.of(CLIP_VOCAB, d));
        s.put("embeddings.position_embedding.weight", Shape.of(77, d));
        for (int i = 0; i < 2; i++) {
            String p = "encoder.layers." + i + ".";
            for (String ln : new String[] {"layer_norm1", "layer_norm2"}) {
                s.put(p + ln + ".weight", Shape.of(d));
                s.put(p + ln + ".bias", Shape.of(d));
            }
            for (String proj : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                s.put(p + "self_attn." + proj + ".weight", Shape.of(d, d));
                s.put(p + "self_attn." + proj + ".bias", Shape.of(d));
            }
            s.put(p + "mlp.fc1.weight", Shape.of(m, d));
            s.put(p + "mlp.fc1.bias", Shape.of(m));
            s.put(p + "mlp.fc2.weight", Shape.of(d, m));
            s.put(p + "mlp.fc2.bias", Shape.of(d));
        }
        s.put("final_layer_norm.weight", Shape.of(d));
        s.put("final_layer_norm.bias", Shape.of(d));
        return all(new RandomWeightSource(s, DType.F32, seed), prefix);
    }

    static Map<String, Tensor> t5(long seed, int vocab) {
        Map<String, Shape> s = new LinkedHashMap<>();
        int d = T5_D, inner = 32, ff = 64;
        s.put("shared.weight", Shape.of(vocab, d));
        for (int i = 0; i < 2; i++) {
            String a = "encoder.block." + i + ".layer.0.", f = "encoder.block." + i + ".layer.1.";
            s.put(a + "layer_norm.weight", Shape.of(d));
            for (String x : new String[] {"q", "k", "v"}) s.put(a + "SelfAttention." + x + ".weight", Shape.of(inner, d));
            s.put(a + "SelfAttention.o.weight", Shape.of(d, inner));
            if (i == 0) s.put(a + "SelfAttention.relative_attention_bias.weight", Shape.of(32, 4));
            s.put(f + "layer_norm.weight", Shape.of(d));
            s.put(f + "DenseReluDense.wi_0.weight", Shape.of(ff, d));
            s.put(f + "DenseReluDense.wi_1.weight", Shape.of(ff, d));
            s.put(f + "DenseReluDense.wo.weight", Shape.of(d, ff));
        }
        s.put("encoder.final_layer_norm.weight", Shape.of(d));
        return all(new RandomWeightSource(s, DType.F32, seed), "");
    }

    private static Map<String, Tensor> all(RandomWeightSource src, String prefix) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (String n : src.names()) out.put(prefix == null ? n : prefix + n, src.tensor(n));
        return out;
    }

    // ------------------------------------------------------------------------------------------------ tokenizers

    /** GPT-2/CLIP bytes_to_unicode order: printable Latin-1 bytes first, the others mapped to 256+n. */
    static List<String> byteSymbols() {
        List<Integer> bs = new ArrayList<>();
        for (int b = '!'; b <= '~'; b++) bs.add(b);
        for (int b = 0xA1; b <= 0xAC; b++) bs.add(b);
        for (int b = 0xAE; b <= 0xFF; b++) bs.add(b);
        List<String> out = new ArrayList<>();
        for (int b : bs) out.add(Character.toString(b));
        int n = 0;
        for (int b = 0; b < 256; b++) if (!bs.contains(b)) out.add(Character.toString(256 + n++));
        return out;
    }

    static final String[][] CLIP_MERGES = {{"c", "a"}, {"ca", "t</w>"}, {"d", "o"}, {"do", "g</w>"}, {"t", "h"}, {"th", "e</w>"}};

    static void writeClipTokenizer(Path dir) throws IOException {
        List<String> vocab = new ArrayList<>(byteSymbols());
        for (String s : byteSymbols()) vocab.add(s + "</w>");
        for (String[] m : CLIP_MERGES) vocab.add(m[0] + m[1]);
        vocab.add("<|startoftext|>");
        vocab.add("<|endoftext|>");
        if (vocab.size() != CLIP_VOCAB) throw new AssertionError("CLIP vocab size " + vocab.size());
        StringBuilder v = new StringBuilder("{");
        for (int i = 0; i < vocab.size(); i++) v.append(i == 0 ? "" : ", ").append(quote(vocab.get(i))).append(": ").append(i);
        write(dir.resolve("vocab.json"), v.append("}").toString());
        StringBuilder m = new StringBuilder("#version: 0.2\n");
        for (String[] mm : CLIP_MERGES) m.append(mm[0]).append(' ').append(mm[1]).append('\n');
        write(dir.resolve("merges.txt"), m.toString());
        write(dir.resolve("special_tokens_map.json"), """
                {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
                """);
        write(dir.resolve("tokenizer_config.json"), """
                {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": true, "errors": "replace",
                 "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
                """);
    }

    static final String[] T5_WORDS = {"a", "the", "of", "and", "in", "photo", "cat", "dog", "red", "blue", "fox", "snow", "house",
        "tree", "sunset", "big", "small", "portrait", "woman", "man", "city", "night", "make", "it", "winter", "painting"};

    static List<String> t5Pieces() {
        Set<String> p = new LinkedHashSet<>(List.of("<pad>", "</s>", "<unk>", "\u2581"));
        for (String w : T5_WORDS) p.add("\u2581" + w);
        for (String s : new String[] {"s", "ing", "ed", "er", "ly", "es", "en", "on", "at", "an"}) p.add(s);
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()".codePoints().forEach(c -> p.add(Character.toString(c)));
        return new ArrayList<>(p);
    }

    static void writeT5Tokenizer(Path dir, List<String> pieces) throws IOException {
        StringBuilder sb = new StringBuilder();
        sb.append("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [\n");
        String[] added = {"<pad>", "</s>", "<unk>"};
        for (int i = 0; i < added.length; i++)
            sb.append("    {\"id\": ").append(i).append(", \"content\": ").append(quote(added[i]))
              .append(", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, \"special\": true}")
              .append(i + 1 < added.length ? ",\n" : "\n");
        sb.append("  ],\n  \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [\n");
        sb.append("    {\"type\": \"Strip\", \"strip_left\": false, \"strip_right\": true},\n");
        sb.append("    {\"type\": \"Replace\", \"pattern\": {\"Regex\": \" {2,}\"}, \"content\": \"\u2581\"}]},\n");
        sb.append("  \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"add_prefix_space\": true, \"prepend_scheme\": \"first\"},\n");
        sb.append("  \"post_processor\": {\"type\": \"TemplateProcessing\",\n");
        sb.append("    \"single\": [{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}],\n");
        sb.append("    \"pair\": [{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}},"
                + " {\"Sequence\": {\"id\": \"B\", \"type_id\": 0}}, {\"SpecialToken\": {\"id\": \"</s>\", \"type_id\": 0}}],\n");
        sb.append("    \"special_tokens\": {\"</s>\": {\"id\": \"</s>\", \"ids\": [1], \"tokens\": [\"</s>\"]}}},\n");
        sb.append("  \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", \"add_prefix_space\": true, \"prepend_scheme\": \"always\"},\n");
        sb.append("  \"model\": {\"type\": \"Unigram\", \"unk_id\": 2, \"vocab\": [\n");
        for (int i = 0; i < pieces.size(); i++) {
            String piece = pieces.get(i);
            double score = i < 3 ? 0.0 : piece.equals("\u2581") ? -2.0 : -(2.5 + 0.0625 * i + (piece.length() == 1 ? 3.0 : 0.0));
            sb.append("    [").append(quote(piece)).append(", ").append(score).append("]").append(i + 1 < pieces.size() ? ",\n" : "\n");
        }
        sb.append("  ], \"byte_fallback\": false}\n}\n");
        write(dir.resolve("tokenizer.json"), sb.toString());
        write(dir.resolve("special_tokens_map.json"), """
                {"eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
                """);
        write(dir.resolve("tokenizer_config.json"), """
                {"tokenizer_class": "T5Tokenizer", "model_max_length": 512, "extra_ids": 0, "additional_special_tokens": [],
                 "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
                """);
    }

    static String quote(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20 || c > 0x7E) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    /**
     * Writes OUT/tiny-dev, OUT/tiny-schnell (diffusers folders), OUT/models (ComfyUI-style files of tiny-dev's weights)
     * and OUT/reference.png (a 200×120 test pattern) for the device check (scripts/reference/flux_pipeline_reference.py).
     */
    public static void main(String[] args) throws IOException {
        Path out = Path.of(args[0]);
        writeDiffusers(out.resolve("tiny-dev"), true, 11);
        writeDiffusers(out.resolve("tiny-schnell"), false, 11);
        writeFiles(out.resolve("models"), true, 11);
        int w = 200, h = 120;
        byte[] rgb = new byte[3 * w * h];
        java.util.Random r = new java.util.Random(3);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                int o = 3 * (y * w + x);
                rgb[o] = (byte) (x * 255 / (w - 1));
                rgb[o + 1] = (byte) (y * 255 / (h - 1));
                rgb[o + 2] = (byte) ((((x / 10) + (y / 10)) % 2) * 180 + r.nextInt(40));
            }
        }
        org.dit4j.engine.image.Png.write(out.resolve("reference.png"), new org.dit4j.engine.image.RgbImage(w, h, rgb), Map.of());
    }

    // ------------------------------------------------------------------------------------------------ io

    static void write(Path file, String text) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, text, StandardCharsets.UTF_8);
    }

    static void tensors(Path file, Map<String, Tensor> tensors) throws IOException {
        Files.createDirectories(file.getParent());
        SafeTensorsWriter.write(file, tensors, Map.of("format", "pt"));
        for (Tensor t : tensors.values()) t.close();
    }
}
