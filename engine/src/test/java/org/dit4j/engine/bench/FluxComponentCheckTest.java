package org.dit4j.engine.bench;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.SafeTensorsFile;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.text.ClipTextConfig;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.models.vae.VaeWeights;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The component check's metrics and PASS/FAIL rules, and its plumbing on a tiny folder in the layout
 * {@code bench/flux_components_reference.py} writes (the reference outputs here come from dit4j's own F32 run, so
 * this tests loading and comparing, not exactness; the reference script's tiny run covers that, bench/README.md).
 */
class FluxComponentCheckTest {

    @Test void relL2MaxAbsAndPsnr() {
        float[] ref = {3, 4}, a = {3, 4.05f};
        assertEquals(0.05 / 5, FluxComponentCheck.relL2(a, ref, "x"), 1e-7);
        assertEquals(0.05, FluxComponentCheck.maxAbs(a, ref), 1e-6);
        // an offset of 0.02 in [−1, 1] is 0.01 in [0, 1]: MSE 1e-4, 40 dB; values beyond ±1 are clamped first
        float[] img = {-0.5f, 0f, 0.5f, 0.9f}, off = {-0.48f, 0.02f, 0.52f, 0.92f};
        assertEquals(40.0, FluxComponentCheck.psnr(off, img), 1e-4);
        assertEquals(Double.POSITIVE_INFINITY, FluxComponentCheck.psnr(new float[] {1.5f, -3f}, new float[] {1f, -1f}));
        assertTrue(Double.isNaN(FluxComponentCheck.maxAbs(new float[] {Float.NaN}, new float[] {0})));
    }

    @Test void toleranceRules(@TempDir Path dir) {
        int n = 4096;
        Random r = new Random(1);
        float[] ref = new float[n], own = new float[n], close = new float[n], far = new float[n];
        float[] noise = new float[n];
        for (int i = 0; i < n; i++) {
            ref[i] = (float) (0.5 * r.nextGaussian());
            noise[i] = (float) r.nextGaussian();
        }
        double unit = FluxComponentCheck.relL2(add(ref, noise, 1), ref, "noise");   // rel-L2 of adding 1·noise
        for (int i = 0; i < n; i++) {
            own[i] = ref[i] + (float) (0.04 / unit) * noise[i];                          // reference bf16: 4e-2
            close[i] = ref[i] + (float) (0.045 / unit) * noise[-i + n - 1];              // 4.5e-2 ≤ 1.25·4e-2
            far[i] = ref[i] + (float) (0.06 / unit) * noise[-i + n - 1];                 // 6e-2 > 5e-2
        }
        Path io = dir.resolve("io.safetensors");
        SafeTensorsWriter.write(io, Map.of("x", Tensor.of(ref, n), "x_bf16", Tensor.of(own, n), "y", Tensor.of(ref, n)), Map.of());
        try (SafeTensorsFile f = SafeTensorsFile.open(io)) {
            FluxComponentCheck.Result c = FluxComponentCheck.compare("x", DType.BF16, close, f, "x", false, 0, 0);
            assertEquals(0.04, c.refBf16(), 1e-3);
            assertEquals(0.05, c.limit(), 1e-3);
            assertTrue(c.pass(), "4.5e-2 is within 1.25 × the reference's own bf16 error");
            assertFalse(FluxComponentCheck.compare("x", DType.BF16, far, f, "x", false, 0, 0).pass());
            assertFalse(FluxComponentCheck.compare("x", DType.F32, close, f, "x", false, 0, 0).pass());
            // no bf16 reference output: the plain 2e-2 limit
            FluxComponentCheck.Result y = FluxComponentCheck.compare("y", DType.BF16, close, f, "y", false, 0, 0);
            assertEquals(FluxComponentCheck.BF16_LIMIT, y.limit());
            assertFalse(y.pass());
            // images: PSNR ≥ 35 dB is required on top of the rel-L2 limit in BF16
            FluxComponentCheck.Result img = FluxComponentCheck.compare("x", DType.BF16, close, f, "x", true, 0, 0);
            assertTrue(img.psnr() > 35 && img.pass(), "PSNR " + img.psnr());
            float[] ref3 = new float[n], bad = new float[n];
            for (int i = 0; i < n; i++) {        // half the pixels far outside [−1, 1] (they carry the norm, and clamp),
                ref3[i] = i % 2 == 0 ? Math.copySign(10f, ref[i]) : ref[i];          // half in range, off by 0.1
                bad[i] = ref3[i] + (i % 2 == 0 ? 0 : 0.1f);
            }
            Path io3 = dir.resolve("io3.safetensors");
            SafeTensorsWriter.write(io3, Map.of("z", Tensor.of(ref3, n)), Map.of());
            try (SafeTensorsFile f3 = SafeTensorsFile.open(io3)) {
                FluxComponentCheck.Result b = FluxComponentCheck.compare("z", DType.BF16, bad, f3, "z", true, 0, 0);
                assertTrue(b.relL2() < FluxComponentCheck.BF16_LIMIT, "rel-L2 " + b.relL2());
                assertTrue(b.psnr() < FluxComponentCheck.PSNR_MIN, "PSNR " + b.psnr());
                assertFalse(b.pass(), "an image below 35 dB fails even within the rel-L2 limit");
            }
        }
    }

    /** A folder as the reference script writes it, with dit4j's F32 CPU outputs as the "reference": F32 passes exactly. */
    @Test void checkRunsEveryPart(@TempDir Path dir) throws Exception {
        ClipTextConfig clip = new ClipTextConfig(120, 128, 2, 64, 2, 16, 1e-5f, ClipTextConfig.Activation.QUICK_GELU, 119);
        T5Config t5 = new T5Config(100, 32, 8, 4, 48, 2, 32, 128, false, 1e-6f);
        VaeConfig vae = new VaeConfig(3, 3, new int[] {32, 32}, 1, 16, 32, VaeConfig.FLUX_SCALING, VaeConfig.FLUX_SHIFT,
                false, false, true, true, true);
        RandomFluxFiles.file(dir.resolve("clip.safetensors"), RandomFluxFiles.clipShapes(clip), 1);
        RandomFluxFiles.file(dir.resolve("t5.safetensors"), RandomFluxFiles.t5Shapes(t5), 2);
        Files.createDirectories(dir.resolve("vae"));
        RandomFluxFiles.file(dir.resolve("vae/ae.safetensors"), VaeWeights.expectedShapes(vae), 3);
        int[][] t5ids = {{5, 17, 99, 1, 0, 0, 0, 0}}, clipIds = {{118, 7, 3, 119, 119, 119}};
        Random r = new Random(2);
        float[] z = new float[16 * 4 * 4], x = new float[3 * 8 * 8];
        for (int i = 0; i < z.length; i++) z[i] = (float) r.nextGaussian();
        for (int i = 0; i < x.length; i++) x[i] = (float) (2 * r.nextDouble() - 1);
        Map<String, Tensor> io = new LinkedHashMap<>();
        io.put("t5.ids", ids(t5ids));
        io.put("clip.ids", ids(clipIds));
        io.put("vae.z", Tensor.of(z, 1, 16, 4, 4));
        io.put("vae.x", Tensor.of(x, 1, 3, 8, 8));
        try (Ops ops = new CpuBackend(1); Scope s = Scope.open()) {
            try (WeightSource w = WeightSource.open(dir.resolve("t5.safetensors")); T5Encoder e = T5Encoder.load(ops, w, DType.F32)) {
                io.put("t5.hidden", ops.toHost(e.encode(t5ids, null)));
            }
            try (WeightSource w = WeightSource.open(dir.resolve("clip.safetensors"));
                 ClipTextModel m = ClipTextModel.load(ops, w, DType.F32); ClipTextModel.Output o = m.encode(clipIds, null)) {
                io.put("clip.hidden", ops.toHost(o.hidden()));
                io.put("clip.pooled", ops.toHost(o.pooled()));
            }
            try (AutoencoderKL v = AutoencoderKL.load(ops, dir.resolve("vae"), DType.F32)) {
                io.put("vae.dec", ops.toHost(v.decode(ops.upload(io.get("vae.z")))));
                io.put("vae.mean", ops.toHost(v.encodeRaw(ops.upload(io.get("vae.x")))));
            }
            SafeTensorsWriter.write(dir.resolve("io.safetensors"), io, Map.of());
        }
        List<FluxComponentCheck.Result> res = FluxComponentCheck.check(dir, "cpu", List.of(DType.F32),
                Set.of("t5", "clip", "vae-decode", "vae-encode"));
        assertEquals(List.of("t5.hidden", "clip.hidden", "clip.pooled", "vae.decode", "vae.encode"),
                res.stream().map(FluxComponentCheck.Result::output).toList());
        for (FluxComponentCheck.Result r0 : res) {
            assertEquals(0.0, r0.relL2(), 1e-6, r0.output());
            assertTrue(r0.pass(), r0.output());
        }
        assertEquals(Double.POSITIVE_INFINITY, res.get(3).psnr());
    }

    private static Tensor ids(int[][] ids) {
        float[] v = new float[ids.length * ids[0].length];
        for (int i = 0; i < ids.length; i++) for (int j = 0; j < ids[0].length; j++) v[i * ids[0].length + j] = ids[i][j];
        return Tensor.of(DType.I64, v, ids.length, ids[0].length);
    }

    private static float[] add(float[] a, float[] b, float s) {
        float[] o = new float[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i] + s * b[i];
        return o;
    }
}
