package org.dit4j.engine.bench;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.text.ClipTextConfig;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Writes a full-size Flux.1-dev model set with random bf16 weights as ComfyUI-style files — the transformer (BFL names),
 * clip_l (Hugging Face CLIPTextModel names), t5xxl (HF T5EncoderModel names) and ae (BFL VAE names) — so the whole
 * pipeline (`dit4j generate`) can be benchmarked at full size without downloading a checkpoint. Tokenizers are not
 * written: put them under {@code DIR/tokenizers/} (see FluxModelResolver).
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.RandomFluxFiles DIR [seed] [small]</pre>
 */
public final class RandomFluxFiles {
    private RandomFluxFiles() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 1 || args.length > 2 && !args[2].equals("small")) {
            System.err.println("usage: RandomFluxFiles DIR [seed] [small]");
            System.exit(2);
        }
        write(Path.of(args[0]), args.length > 1 ? Long.parseLong(args[1]) : 0, args.length > 2);
    }

    public static void write(Path dir, long seed) throws Exception { write(dir, seed, false); }

    /**
     * @param small full widths (Flux.1-dev's 3072 hidden, 24 heads; T5-XXL's 4096) but only 2 double and 4 single
     *              transformer blocks and 2 T5 layers (about 3 GB instead of 34 GB): the same kernels and shapes per
     *              block, for functional checks on GPUs that need no full-depth timing
     */
    public static void write(Path dir, long seed, boolean small) throws Exception {
        Files.createDirectories(dir);
        FluxConfig dev = FluxConfig.dev();
        FluxConfig flux = small ? new FluxConfig(dev.hiddenSize(), dev.numHeads(), 2, 4, dev.inChannels(), dev.outChannels(),
                dev.contextDim(), dev.vecDim(), dev.mlpHidden(), dev.axesDim(), dev.theta(), dev.guidanceEmbed()) : dev;
        T5Config xxl = T5Config.T5_V1_1_XXL;
        T5Config t5 = small ? new T5Config(xxl.vocabSize(), xxl.dModel(), xxl.dKv(), xxl.numHeads(), xxl.dFf(), 2, xxl.numBuckets(),
                xxl.maxDistance(), xxl.perLayerBias(), xxl.eps()) : xxl;
        file(dir.resolve("flux1-dev-random.safetensors"), FluxWeights.expectedShapes(flux), seed);
        file(dir.resolve("clip_l.safetensors"), clipShapes(ClipTextConfig.CLIP_L), seed + 1);
        file(dir.resolve("t5xxl_random.safetensors"), t5Shapes(t5), seed + 2);
        file(dir.resolve("ae.safetensors"), VaeWeights.expectedShapes(VaeConfig.flux()), seed + 3);
    }

    static void file(Path path, Map<String, Shape> shapes, long seed) {
        long t0 = System.nanoTime();
        try (Scope scope = Scope.open(); RandomWeightSource src = new RandomWeightSource(shapes, DType.BF16, seed)) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            long bytes = 0;
            for (String name : src.names()) {
                Tensor t = src.tensor(name);
                tensors.put(name, t);
                bytes += t.byteSize();
            }
            SafeTensorsWriter.write(path, tensors, Map.of("dit4j", "random weights (RandomFluxFiles), seed " + seed));
            System.out.printf(Locale.ROOT, "wrote %s: %d tensors, %.2f GB in %.1f s%n", path, tensors.size(), bytes / 1e9,
                    (System.nanoTime() - t0) / 1e9);
        }
    }

    /** Hugging Face CLIPTextModel tensor names and shapes (with the {@code text_model.} prefix). */
    static Map<String, Shape> clipShapes(ClipTextConfig c) {
        Map<String, Shape> m = new LinkedHashMap<>();
        String p = "text_model.";
        long d = c.hidden(), f = c.intermediate();
        m.put(p + "embeddings.token_embedding.weight", Shape.of(c.vocabSize(), d));
        m.put(p + "embeddings.position_embedding.weight", Shape.of(c.maxPositions(), d));
        for (int i = 0; i < c.layers(); i++) {
            String l = p + "encoder.layers." + i + ".";
            for (String proj : new String[]{"q_proj", "k_proj", "v_proj", "out_proj"}) {
                m.put(l + "self_attn." + proj + ".weight", Shape.of(d, d));
                m.put(l + "self_attn." + proj + ".bias", Shape.of(d));
            }
            m.put(l + "layer_norm1.weight", Shape.of(d));
            m.put(l + "layer_norm1.bias", Shape.of(d));
            m.put(l + "mlp.fc1.weight", Shape.of(f, d));
            m.put(l + "mlp.fc1.bias", Shape.of(f));
            m.put(l + "mlp.fc2.weight", Shape.of(d, f));
            m.put(l + "mlp.fc2.bias", Shape.of(d));
            m.put(l + "layer_norm2.weight", Shape.of(d));
            m.put(l + "layer_norm2.bias", Shape.of(d));
        }
        m.put(p + "final_layer_norm.weight", Shape.of(d));
        m.put(p + "final_layer_norm.bias", Shape.of(d));
        return m;
    }

    /** Hugging Face T5EncoderModel tensor names and shapes (T5 v1.1: relative bias in block 0 only). */
    static Map<String, Shape> t5Shapes(T5Config c) {
        Map<String, Shape> m = new LinkedHashMap<>();
        long d = c.dModel(), inner = (long) c.numHeads() * c.dKv(), ff = c.dFf();
        m.put("shared.weight", Shape.of(c.vocabSize(), d));
        for (int i = 0; i < c.numLayers(); i++) {
            String b = "encoder.block." + i + ".layer.";
            for (String proj : new String[]{"q", "k", "v"}) m.put(b + "0.SelfAttention." + proj + ".weight", Shape.of(inner, d));
            m.put(b + "0.SelfAttention.o.weight", Shape.of(d, inner));
            if (i == 0 || c.perLayerBias())
                m.put(b + "0.SelfAttention.relative_attention_bias.weight", Shape.of(c.numBuckets(), c.numHeads()));
            m.put(b + "0.layer_norm.weight", Shape.of(d));
            m.put(b + "1.DenseReluDense.wi_0.weight", Shape.of(ff, d));
            m.put(b + "1.DenseReluDense.wi_1.weight", Shape.of(ff, d));
            m.put(b + "1.DenseReluDense.wo.weight", Shape.of(d, ff));
            m.put(b + "1.layer_norm.weight", Shape.of(d));
        }
        m.put("encoder.final_layer_norm.weight", Shape.of(d));
        return m;
    }
}
