package org.dit4j.engine.wan;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.bench.WanComponentCheck;
import org.dit4j.engine.image.RgbImage;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * dit4j's Wan2.1 pipeline (CPU, F32) against diffusers on the tiny random pipeline: scripts/reference/wan_pipeline_reference.py
 * writes diffusers' umT5 states, VAE decode/encode and pipeline frames; this test runs dit4j's parts on the same inputs
 * (WanComponentCheck, WanPipeline) and asserts token ids equal, rel-L2 ≤ 1e-4 per component, and clip PSNR ≥ 35 dB
 * (recorded: umT5 3.4e-7, decode 1.2e-6, encode 1.7e-7; frames bit-identical).
 *
 * <p>Needs a Python with torch, transformers, safetensors and diffusers: {@code DIT4J_REF_PYTHON} (default
 * /tmp/tvenv/bin/python) with {@code DIT4J_DIFFUSERS_SRC} (a diffusers checkout's src/, put on PYTHONPATH) when diffusers
 * is not installed there. Without them the test is skipped and says why.
 */
class WanDiffusersReferenceTest {
    @TempDir Path tmp;

    static final Path SCRIPT = Path.of("..", "scripts", "reference", "wan_pipeline_reference.py");

    @Test void cpuF32MatchesDiffusers() throws Exception {
        String python = System.getenv().getOrDefault("DIT4J_REF_PYTHON", "/tmp/tvenv/bin/python");
        String src = System.getenv("DIT4J_DIFFUSERS_SRC");
        String why = unavailable(python, src);
        if (why != null) System.err.println("WanDiffusersReferenceTest skipped: " + why);
        assumeTrue(why == null, why);

        Path folder = TinyWan.writeDiffusers(tmp.resolve("tiny-wan"), 21);
        Path out = tmp.resolve("out");
        String log = exec(List.of(python, SCRIPT.toString(), "--tiny", tmp.toString(), "--out", out.toString(), "--cases", "t2v,batch2",
                "--skip-dit4j", "--threads", "1"), src, 600);
        Path ref = out.resolve("ref");
        assertTrue(Files.isRegularFile(ref.resolve("frames.safetensors")), "the reference script wrote no frames:\n" + log);

        try (Ops ops = new CpuBackend()) {
            Map<String, Tensor> ours = WanComponentCheck.run(ops, folder, ref.resolve("inputs.safetensors"), DType.F32);
            try (WeightSource theirs = WeightSource.open(ref.resolve("components.safetensors"))) {
                assertArrayEquals(floats(theirs, "text.ids"), ours.get("text.ids").toFloatArray(), "umT5 token ids");
                assertArrayEquals(floats(theirs, "text.mask"), ours.get("text.mask").toFloatArray(), "umT5 attention mask");
                assertRelL2(floats(theirs, "text.states"), ours.get("text.states").toFloatArray(), 1e-4, "umT5 states");
                float[] dec = ours.get("vae.decoded").toFloatArray();
                for (int i = 0; i < dec.length; i++) dec[i] = Math.max(-1f, Math.min(1f, dec[i]));     // diffusers clamps
                assertRelL2(floats(theirs, "vae.decoded"), dec, 1e-4, "VAE decode");
                assertRelL2(floats(theirs, "vae.encoded"), ours.get("vae.encoded").toFloatArray(), 1e-4, "VAE encode");
            } finally {
                for (Tensor t : ours.values()) t.close();
            }

            WanModelFiles files = WanModelResolver.fromDiffusersFolder(folder);
            try (WanPipeline p = new WanPipeline(ops, files, WanPipeline.Settings.defaults(ops));
                 WeightSource frames = WeightSource.open(ref.resolve("frames.safetensors"))) {
                // the script's cases: t2v 48×32, 9 frames, 4 steps, guidance 5, seed 7; batch2 32×32, 5 frames, 3 steps, seed 9
                WanPipeline.Result t2v = p.generate(WanRequest.of("a red fox in the snow", 7).withSize(48, 32).withFrames(9).withSteps(4)
                        .withGuidance(5f), null);
                assertVideosClose(floats(frames, "t2v"), t2v.videos(), "t2v");
                WanPipeline.Result b2 = p.generate(WanRequest.of("two cats playing chess", 9).withSize(32, 32).withFrames(5).withSteps(3)
                        .withGuidance(5f).withBatch(2), null);
                assertVideosClose(floats(frames, "batch2"), b2.videos(), "batch2");
            }
        }
    }

    /** PSNR of the whole clip (8-bit RGB) ≥ 35 dB per video; ref is [videos, T, H, W, 3]. */
    static void assertVideosClose(float[] ref, List<List<RgbImage>> videos, String what) {
        int n = 0;
        for (List<RgbImage> v : videos) for (RgbImage f : v) n += f.rgb().length;
        assertEquals(ref.length, n, what + ": number of 8-bit values");
        int at = 0;
        for (int v = 0; v < videos.size(); v++) {
            double se = 0;
            int count = 0;
            for (RgbImage f : videos.get(v)) {
                for (byte b : f.rgb()) {
                    double d = (b & 0xFF) - ref[at++];
                    se += d * d;
                    count++;
                }
            }
            double psnr = se == 0 ? Double.POSITIVE_INFINITY : 10 * Math.log10(255.0 * 255.0 / (se / count));
            assertTrue(psnr >= 35, what + " video " + v + ": PSNR " + psnr + " dB against diffusers, expected >= 35 dB");
        }
    }

    static void assertRelL2(float[] ref, float[] ours, double limit, String what) {
        assertEquals(ref.length, ours.length, what + ": element count");
        double num = 0, den = 0;
        for (int i = 0; i < ref.length; i++) {
            double d = (double) ours[i] - ref[i];
            num += d * d;
            den += (double) ref[i] * ref[i];
        }
        double rel = Math.sqrt(num / Math.max(den, 1e-30));
        assertTrue(den > 0, what + ": the reference is all zeros");
        assertTrue(rel <= limit, what + ": rel-L2 " + rel + " against diffusers, expected <= " + limit);
    }

    static float[] floats(WeightSource w, String name) {
        try (Tensor t = w.tensor(name)) {
            return t.toFloatArray();
        }
    }

    /** Why the reference cannot run here, or null when it can. */
    static String unavailable(String python, String src) {
        if (!Files.isRegularFile(SCRIPT)) return SCRIPT.toAbsolutePath() + " not found (run from the engine module)";
        if (!Files.isExecutable(Path.of(python)))
            return "no Python at " + python + " (set DIT4J_REF_PYTHON to one with torch, transformers, safetensors, diffusers)";
        try {
            exec(List.of(python, "-c", "import torch, transformers, safetensors, diffusers; from diffusers import WanPipeline"), src, 120);
            return null;
        } catch (IOException | RuntimeException e) {
            return python + " cannot import torch/transformers/safetensors/diffusers.WanPipeline"
                    + (src == null ? " (set DIT4J_DIFFUSERS_SRC to a diffusers src/ folder)" : " with PYTHONPATH=" + src) + ": "
                    + e.getMessage().lines().reduce((a, b) -> b).orElse("");
        }
    }

    static String exec(List<String> cmd, String pythonPath, int timeoutS) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(new ArrayList<>(cmd)).redirectErrorStream(true);
        if (pythonPath != null) pb.environment().put("PYTHONPATH", pythonPath);
        pb.environment().put("HF_HUB_OFFLINE", "1");
        pb.environment().put("TRANSFORMERS_OFFLINE", "1");
        Process p = pb.start();
        byte[] outBytes;
        try {
            outBytes = p.getInputStream().readAllBytes();
            if (!p.waitFor(timeoutS, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IllegalStateException(cmd + " did not finish in " + timeoutS + " s");
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted", e);
        }
        String text = new String(outBytes, StandardCharsets.UTF_8);
        if (p.exitValue() != 0) throw new IllegalStateException(cmd.getFirst() + " exited " + p.exitValue() + ":\n" + text);
        return text;
    }
}
