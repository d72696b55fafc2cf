package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.ops.Ops;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.image.RgbImage;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The Wan pipeline end to end on a tiny random model (CPU, F32). */
class WanPipelineTest {
    @TempDir static Path tmp;
    static Ops ops;
    static Path folder, models;

    @BeforeAll static void setUp() throws Exception {
        ops = new CpuBackend();
        folder = TinyWan.writeDiffusers(tmp.resolve("tiny-wan"), 21);
        models = TinyWan.writeFiles(tmp.resolve("models"), 21);
    }

    @AfterAll static void tearDown() { ops.close(); }

    static WanRequest request(long seed) {
        return WanRequest.of("a red fox in the snow", seed).withSize(48, 32).withFrames(9).withSteps(4);
    }

    static HfHub offlineHub() { return new HfHub(tmp.resolve("hf-cache"), null, true, java.net.URI.create("http://127.0.0.1:9")); }

    @Test void diffusersFolderGeneratesDeterministicFrames() {
        WanModelFiles files = WanModelResolver.fromDiffusersFolder(folder);
        assertEquals(new WanScheduler("diffusers", 3.0), files.scheduler(), "flow_shift read from scheduler_config.json");
        try (WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops))) {
            WanPipeline.Result a = p.generate(request(7), null);
            WanRequest full = a.request();
            assertEquals(48, full.width());
            assertEquals(32, full.height());
            assertEquals(9, full.frames());
            assertEquals(5.0f, full.guidance(), 0f);
            assertEquals(WanText.DEFAULT_NEGATIVE_PROMPT, full.negativePrompt());
            assertEquals(8, a.forwards(), "4 steps × (cond + uncond)");
            assertEquals(1, a.videos().size());
            List<RgbImage> frames = a.videos().getFirst();
            assertEquals(9, frames.size(), "1 + 4·(3 − 1) frames from 3 latent frames");
            for (RgbImage f : frames) {
                assertEquals(48, f.width());
                assertEquals(32, f.height());
            }
            assertEquals(16 * 3 * 4 * 6, a.latents().length);
            for (float v : a.latents()) assertTrue(Float.isFinite(v), "finite latent");
            assertTrue(distinctValues(frames.get(4)) > 8, "a frame that is not flat");

            WanPipeline.Result b = p.generate(request(7), null);
            for (int i = 0; i < 9; i++) assertArrayEquals(frames.get(i).rgb(), b.videos().getFirst().get(i).rgb(), "same seed, frame " + i);
            WanPipeline.Result c = p.generate(request(8), null);
            assertFalse(java.util.Arrays.equals(a.latents(), c.latents()), "another seed gives another latent");
            WanPipeline.Result noCfg = p.generate(request(7).withGuidance(1f), null);
            assertEquals(4, noCfg.forwards(), "guidance 1: one forward per step");
            assertTrue(maxAbsDiff(a.latents(), noCfg.latents()) > 1e-3, "CFG changes the result");
            WanPipeline.Result euler = p.generate(request(7).withSampler("euler"), null);
            assertTrue(maxAbsDiff(a.latents(), euler.latents()) > 1e-4, "Euler differs from UniPC");
        }
    }

    @Test void comfyFilesLoadTheSameModel() {
        WanModelResolver r = new WanModelResolver(offlineHub(), null, null);
        WanModelFiles files = r.resolve(List.of(models.resolve("diffusion_models").toString(), models.resolve("vae").toString(),
                models.resolve("text_encoders").toString()));
        assertEquals(WanModelFiles.Layout.FILES, files.layout());
        assertNull(files.scheduler());
        assertEquals(WanScheduler.WAN_REFERENCE, files.schedulerOrDefault());
        assertEquals(models.resolve("tokenizers/umt5-xxl").toAbsolutePath(), files.tokenizer().toAbsolutePath());
        // with the diffusers folder's scheduler, the ComfyUI files (original names, prefixed) give the same latent
        WanModelFiles same = new WanModelFiles("files", files.layout(), files.transformer(), files.vae(), files.t5(), files.tokenizer(),
                WanModelResolver.fromDiffusersFolder(folder).scheduler());
        float[] fromFiles, fromFolder;
        try (WanPipeline p = new WanPipeline(ops, same, WanPipeline.Settings.defaults(ops))) {
            fromFiles = p.generate(request(3).withSteps(2), null).latents();
        }
        try (WanPipeline p = new WanPipeline(ops, WanModelResolver.fromDiffusersFolder(folder), WanPipeline.Settings.defaults(ops))) {
            fromFolder = p.generate(request(3).withSteps(2), null).latents();
        }
        assertTrue(maxAbsDiff(fromFiles, fromFolder) < 1e-5, "files vs diffusers folder: " + maxAbsDiff(fromFiles, fromFolder));
        // the Wan reference schedule (σ from 0.999, shift 5) is a different trajectory
        try (WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops))) {
            WanPipeline.Result res = p.generate(request(3).withSteps(2), null);
            assertEquals(5.0, res.schedule().shift(), 0);
            assertEquals(999, res.schedule().timestep(0), "int(1000·σ₀), σ₀ = 5·0.999/(1 + 4·0.999) = 0.99980");
            assertEquals(0.0f, res.schedule().sigma(2), 0f);
        }
    }

    @Test void detectsWanAndRefusesIncompleteInput() throws Exception {
        assertTrue(WanModelResolver.isWan(List.of(folder.toString()), null));
        assertTrue(WanModelResolver.isWan(List.of(models.resolve("diffusion_models/wan-tiny.safetensors").toString()), null));
        assertFalse(WanModelResolver.isWan(List.of(models.resolve("vae/wan-vae-tiny.safetensors").toString()), null));
        assertTrue(WanModelResolver.isWan(List.of("Wan-AI/Wan2.1-T2V-1.3B-Diffusers"), offlineHub()));
        assertFalse(WanModelResolver.isWan(List.of("black-forest-labs/FLUX.1-schnell"), offlineHub()));
        assertFalse(WanModelResolver.isWan(List.of(), offlineHub()));
        WanModelResolver r = new WanModelResolver(offlineHub(), null, null);
        CheckpointException e = assertThrows(CheckpointException.class,
                () -> r.resolve(List.of(models.resolve("diffusion_models/wan-tiny.safetensors").toString())));
        assertTrue(e.getMessage().contains("wan_2.1_vae") && e.getMessage().contains("umT5"), e.getMessage());
        Path broken = tmp.resolve("broken");
        Files.createDirectories(broken);
        Files.writeString(broken.resolve("model_index.json"), "{\"_class_name\": \"WanPipeline\"}");
        CheckpointException e2 = assertThrows(CheckpointException.class, () -> WanModelResolver.fromDiffusersFolder(broken));
        assertTrue(e2.getMessage().contains("transformer/diffusion_pytorch_model*.safetensors"), e2.getMessage());
    }

    static int distinctValues(RgbImage f) {
        java.util.Set<Byte> s = new java.util.HashSet<>();
        for (byte b : f.rgb()) s.add(b);
        return s.size();
    }

    static double maxAbsDiff(float[] a, float[] b) {
        double m = 0;
        for (int i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
        return m;
    }
}
