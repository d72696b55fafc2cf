package org.dit4j.engine.flux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.lora.LoraSpec;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link FluxPipeline} with a LoRA: a kohya LoRA on the fused qkv / linear1 / final modulation, applied to the tiny
 * diffusers-layout pipeline (split q/k/v), generates what the same pipeline generates from a BFL transformer file whose
 * weights the test merged itself (W + strength·alpha/rank·B·A in double, rounded to float32).
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxPipelineLoraTest {
    @TempDir static Path tmp;
    static Ops ops;
    static Path dev;
    static final FluxConfig FC = TinyFlux.transformer(true);

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        dev = TinyFlux.writeDiffusers(tmp.resolve("dev"), true, 11);
    }

    @AfterAll static void tearDown() { ops.close(); }

    record Pair(String module, String canonical, int rank, float alpha, long rows, long cols) {}

    @Test void loraGeneratesWhatThePreMergedTransformerGenerates() throws Exception {
        int d = FC.hiddenSize();
        List<Pair> pairs = List.of(
                new Pair("lora_unet_double_blocks_0_img_attn_qkv", "double_blocks.0.img_attn.qkv.weight", 4, 2f, 3L * d, d),
                new Pair("lora_unet_single_blocks_0_linear1", "single_blocks.0.linear1.weight", 4, 8f, 3L * d + FC.mlpHidden(), d),
                new Pair("lora_unet_final_layer_adaLN_modulation_1", "final_layer.adaLN_modulation.1.weight", 2, 2f, 2L * d, d));
        float strength = 0.9f;
        Path lora = tmp.resolve("style.safetensors"), merged = tmp.resolve("merged.safetensors");
        try (Scope scope = Scope.open()) {
            Random rnd = new Random(3);
            Map<String, Tensor> file = new LinkedHashMap<>();
            Map<String, Tensor> weights = new LinkedHashMap<>(TinyFlux.canonicalTransformer(FC, 11));
            for (Pair p : pairs) {
                float[] a = gaussian(rnd, p.rank() * p.cols(), 1 / Math.sqrt(p.cols())), b = gaussian(rnd, p.rows() * p.rank(), 0.5);
                file.put(p.module() + ".lora_down.weight", Tensor.of(a, p.rank(), p.cols()));
                file.put(p.module() + ".lora_up.weight", Tensor.of(b, p.rows(), p.rank()));
                file.put(p.module() + ".alpha", Tensor.of(new float[] {p.alpha()}));
                float[] w = weights.get(p.canonical()).toFloatArray();
                double s = strength * p.alpha() / p.rank();
                for (int i = 0; i < p.rows(); i++)
                    for (int j = 0; j < p.cols(); j++) {
                        double acc = 0;
                        for (int k = 0; k < p.rank(); k++) acc += (double) b[i * p.rank() + k] * a[k * (int) p.cols() + j];
                        w[i * (int) p.cols() + j] = (float) (w[i * (int) p.cols() + j] + s * acc);
                    }
                weights.put(p.canonical(), Tensor.of(w, p.rows(), p.cols()));
            }
            SafeTensorsWriter.write(lora, file, Map.of());
            SafeTensorsWriter.write(merged, weights, Map.of());
        }
        FluxModelFiles folder = FluxModelResolver.fromDiffusersFolder(dev);
        FluxModelFiles premerged = new FluxModelFiles("pre-merged", folder.layout(), merged, folder.vae(), folder.clip(), folder.t5(),
                folder.clipTokenizer(), folder.t5Tokenizer(), folder.scheduler());
        FluxRequest req = FluxRequest.of("a photo of a cat", 42).withSize(64, 48).withSteps(3).withT5Length(16);
        FluxPipeline.Settings settings = FluxPipeline.Settings.defaults(ops);
        float[] withLora, reference, plain;
        try (FluxPipeline p = new FluxPipeline(ops, folder, settings, List.of(new LoraSpec(lora, strength)), false)) {
            assertEquals(1, p.loraSummary().size());
            assertTrue(p.loraSummary().get(0).startsWith("style.safetensors ×0.9: kohya, 3 low-rank pairs (rank 2/4, alpha 2/8); changes 3 weight tensors"),
                    p.loraSummary().get(0));
            withLora = p.generate(req, FluxProgress.NONE).latents();
        }
        try (FluxPipeline p = new FluxPipeline(ops, premerged, settings)) {
            reference = p.generate(req, FluxProgress.NONE).latents();
        }
        try (FluxPipeline p = new FluxPipeline(ops, folder, settings)) {
            plain = p.generate(req, FluxProgress.NONE).latents();
        }
        double err = relDiff(withLora, reference), effect = relDiff(plain, reference);
        System.out.printf("pipeline with LoRA vs pre-merged transformer: latent rel-L2 %.3e (the LoRA moves the latent by %.3f)%n", err, effect);
        assertTrue(err < 1e-5, "latent rel-L2 " + err);
        assertTrue(effect > 1e-2, "the LoRA should change the latent, rel-L2 " + effect);
    }

    @Test void aLoraForAnotherModelFailsBeforeAnythingLoads() {
        Path wide = tmp.resolve("wide.safetensors");
        try (Scope scope = Scope.open()) {
            SafeTensorsWriter.write(wide, Map.of(
                    "lora_unet_double_blocks_0_img_attn_proj.lora_down.weight", Tensor.zeros(DType.BF16, 4, 3072),
                    "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight", Tensor.zeros(DType.BF16, 3072, 4)), Map.of());
        }
        FluxModelFiles folder = FluxModelResolver.fromDiffusersFolder(dev);
        var e = assertThrows(CheckpointException.class, () -> new FluxPipeline(ops, folder, FluxPipeline.Settings.defaults(ops),
                List.of(LoraSpec.parse(wide + ":0.5")), true));
        assertTrue(e.getMessage().contains("wide.safetensors") && e.getMessage().contains("trained for another model"), e.getMessage());
    }

    static float[] gaussian(Random rnd, long n, double std) {
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * std);
        return v;
    }

    static double relDiff(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += ((double) a[i] - b[i]) * ((double) a[i] - b[i]);
            den += (double) b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }
}
