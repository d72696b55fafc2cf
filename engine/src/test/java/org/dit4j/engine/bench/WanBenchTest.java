package org.dit4j.engine.bench;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanWeights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The Wan benchmark on the CPU backend (the reduced configuration CI can run) and its random weights. */
class WanBenchTest {

    @Test void cpuRunsTheReducedConfigurationAndWritesJson(@TempDir Path dir) throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        WanBench.Result r = new WanBench(new PrintStream(buf, true, StandardCharsets.UTF_8))
                .run(new WanBench.Options("wan-14b", 65, 640, 640, "cpu", 0, 2, true, 512, 0));
        String log = buf.toString(StandardCharsets.UTF_8);
        assertEquals("wan-14b-reduced", r.model());
        assertEquals("64x64x5", r.size());
        assertEquals(2 * 4 * 4, r.videoTokens(), "5 frames → 2 latent frames, 64 px → 8 latent → 4 patches per side");
        assertEquals(16, r.textTokens());
        assertTrue(r.eagerMs() > 0 && Double.isFinite(r.eagerMs()), "eager time " + r.eagerMs());
        assertTrue(Double.isNaN(r.graphMs()), "no CUDA graph on the CPU");
        assertTrue(log.contains("reduced Wan configuration"), log);
        Path json = dir.resolve("wan.json");
        WanBench.writeJson(json, r);
        String j = Files.readString(json);
        assertTrue(j.contains("\"video_tokens\": 32") && j.contains("\"graph_ms\": null") && j.contains("\"size\": \"64x64x5\""), j);
    }

    @Test void latentSizesFollowTheVae() {
        assertArrayEquals(new long[] {21, 60, 104}, WanBench.latentSize(81, 832, 480));
        assertArrayEquals(new long[] {17, 80, 80}, WanBench.latentSize(65, 640, 640));
        var e = assertThrows(IllegalArgumentException.class, () -> WanBench.latentSize(80, 832, 480));
        assertTrue(e.getMessage().contains("4k + 1") && e.getMessage().contains("80"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> WanBench.latentSize(81, 840, 480));
        assertTrue(e.getMessage().contains("840"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> WanBench.config("wan-2b"));
    }

    /** Tensors above the host limit come from windows of the pool: normal(0, 0.02) values; F32-kept tensors are F32. */
    @Test void poolFilledRandomWeightsHaveTheIntendedStatistics() {
        WanConfig cfg = WanBench.reducedConfig();
        try (CpuBackend cpu = new CpuBackend(); WanWeights w = WanBench.randomWeights(cpu, cfg, DType.F32, 5, 1000)) {
            Tensor ffn = w.tensor("blocks.1.ffn.0.weight");                 // 256×128 values: from the pool
            float[] v = ffn.toFloatArray();
            double sum = 0, sq = 0;
            for (float x : v) { sum += x; sq += (double) x * x; }
            double mean = sum / v.length, std = Math.sqrt(sq / v.length - mean * mean);
            assertTrue(Math.abs(mean) < 1e-3 && Math.abs(std - 0.02) < 1e-3, "mean " + mean + ", std " + std);
            assertEquals(DType.F32, w.tensor("blocks.0.modulation").dtype());
            assertEquals(DType.F32, w.tensor("time_embedding.2.weight").dtype());
            float[] norm = w.tensor("blocks.0.self_attn.norm_q.weight").toFloatArray();
            double nm = 0;
            for (float x : norm) nm += x;
            assertEquals(1.0, nm / norm.length, 0.01, "norm scales are 1 + normal(0, 0.02)");
        }
        try (CpuBackend cpu = new CpuBackend(); WanWeights a = WanBench.randomWeights(cpu, cfg, DType.F32, 5, 1000);
             WanWeights b = WanBench.randomWeights(cpu, cfg, DType.F32, 5, 1000)) {
            assertArrayEquals(a.tensor("blocks.0.ffn.2.weight").toFloatArray(), b.tensor("blocks.0.ffn.2.weight").toFloatArray(),
                    "same seed, same weights");
        }
    }
}
