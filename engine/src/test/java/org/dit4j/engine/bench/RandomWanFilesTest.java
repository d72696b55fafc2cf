package org.dit4j.engine.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.flux.TinyFluxAccess;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.wan.WanModelFiles;
import org.dit4j.engine.wan.WanModelResolver;
import org.dit4j.engine.wan.WanPipeline;
import org.dit4j.engine.wan.WanRequest;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.vae.wan.WanVae;
import org.dit4j.models.vae.wan.WanVaeWeights;
import org.dit4j.models.wan.WanConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * RandomWanFiles: the full-size tables have the published parameter counts, and the file set (here with the tiny
 * architectures, as `--tiny` writes it) resolves as a ComfyUI-style Wan pipeline with the tokenizer beside it and generates.
 */
class RandomWanFilesTest {
    @Test void fullSizeTablesHaveThePublishedParameterCounts() {
        // Wan2.1 T2V-14B: 14.29e9 parameters, T2V-1.3B: 1.42e9; umT5-XXL encoder: 5.68e9; Wan2.1 VAE: 127e6
        assertBetween(params(RandomWanFiles.transformerShapes(WanConfig.t2v14B(), "")), 14.2e9, 14.4e9, "14B transformer");
        assertBetween(params(RandomWanFiles.transformerShapes(WanConfig.t2v1_3B(), "")), 1.40e9, 1.44e9, "1.3B transformer");
        assertBetween(params(RandomFluxFiles.t5Shapes(T5Config.UMT5_XXL)), 5.6e9, 5.75e9, "umT5-XXL encoder");
        assertBetween(params(WanVaeWeights.expectedShapes(RandomWanFiles.FULL.vae())), 1.2e8, 1.3e8, "Wan2.1 VAE");
    }

    @Test void tinyFileSetResolvesAndGenerates(@TempDir Path dir) throws Exception {
        RandomWanFiles.write(dir, List.of("t5", "vae", "14B", "1.3B"), 0, RandomWanFiles.TINY);
        long size = Files.size(dir.resolve(RandomWanFiles.T2V_14B_FILE));
        RandomWanFiles.write(dir, List.of("14B"), 99, RandomWanFiles.TINY);
        assertEquals(size, Files.size(dir.resolve(RandomWanFiles.T2V_14B_FILE)), "an existing file is kept");
        // a T5-style Unigram tokenizer.json (the device run uses a trained one, bench/wan-check-stage.sh)
        Path tok = dir.resolve("tokenizers/umt5-xxl/tokenizer.json");
        TinyFluxAccess.writeT5Tokenizer(tok.getParent(), TinyFluxAccess.t5Pieces());
        try (WeightSource w = WeightSource.open(dir.resolve(RandomWanFiles.T2V_14B_FILE))) {
            assertTrue(w.contains("model.diffusion_model.blocks.0.self_attn.q.weight"), "14B file: ComfyUI prefix");
        }
        try (WeightSource w = WeightSource.open(dir.resolve(RandomWanFiles.T2V_1_3B_FILE))) {
            assertTrue(w.contains("blocks.0.self_attn.q.weight"), "1.3B file: unprefixed original names");
        }
        HfHub offline = new HfHub(dir.resolve("hf-cache"), null, true, java.net.URI.create("http://127.0.0.1:9"));
        WanModelFiles files = new WanModelResolver(offline, null, null).resolve(List.of(
                dir.resolve(RandomWanFiles.T2V_14B_FILE) + "," + dir.resolve(RandomWanFiles.T5_FILE) + "," + dir.resolve(RandomWanFiles.VAE_FILE)));
        assertEquals(tok.getParent().toAbsolutePath(), files.tokenizer().toAbsolutePath(), "the tokenizer under DIR/tokenizers/umt5-xxl");
        try (CpuBackend ops = new CpuBackend(1); WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops))) {
            WanPipeline.Result r = p.generate(WanRequest.of("a lighthouse on a cliff at dawn", 1).withSize(32, 32).withFrames(5).withSteps(2), null);
            assertEquals(5, r.videos().getFirst().size(), "5 frames");
            assertEquals(4, r.forwards(), "2 steps with CFG (Wan's default negative prompt)");
            for (float v : r.latents()) assertTrue(Float.isFinite(v), "finite latent");
        }
    }

    @Test void diffusersVaeFolderHoldsTheSameVae(@TempDir Path dir) throws Exception {
        RandomWanFiles.write(dir, List.of("vae", "vae-diffusers"), 0, RandomWanFiles.TINY);
        assertTrue(Files.readString(dir.resolve(RandomWanFiles.VAE_DIFFUSERS_DIR + "/config.json")).contains("\"base_dim\": 2"));
        try (CpuBackend ops = new CpuBackend(1);
             WanVae a = WanVae.load(ops, dir.resolve(RandomWanFiles.VAE_FILE), DType.F32);
             WanVae b = WanVae.load(ops, dir.resolve(RandomWanFiles.VAE_DIFFUSERS_DIR), DType.F32);
             Scope s = Scope.open()) {
            float[] z = new float[16 * 2 * 3 * 4];
            for (int i = 0; i < z.length; i++) z[i] = (float) Math.sin(0.37 * i);
            Tensor latent = Tensor.of(z, 1, 16, 2, 3, 4);
            assertArrayEquals(a.decode(latent).toFloatArray(), b.decode(latent).toFloatArray(), 0f,
                    "original names and the diffusers folder: the same decode");
        }
    }

    static double params(Map<String, Shape> shapes) {
        double n = 0;
        for (Shape s : shapes.values()) n += s.numel();
        return n;
    }

    static void assertBetween(double v, double lo, double hi, String what) {
        assertTrue(v >= lo && v <= hi, what + ": " + v + " parameters, expected between " + lo + " and " + hi);
    }
}
