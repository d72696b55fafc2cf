package org.dit4j.models.wan;

import static org.dit4j.models.wan.WanTestData.relL2;
import static org.dit4j.models.wan.WanTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.Consumer;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Configuration detection, the two naming layouts, load dtypes, scaled fp8 and the loader's error messages. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanWeightsTest {
    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @TempDir Path tmp;

    @Test void presetsAndRopeSplit() {
        WanConfig small = WanConfig.t2v1_3B(), big = WanConfig.t2v14B();
        assertEquals(128, small.headDim());
        assertEquals(128, big.headDim());
        assertArrayEquals(new int[] {44, 42, 42}, small.ropeAxes());     // 22 + 21 + 21 pairs
        assertArrayEquals(new int[] {8, 4, 4}, WanTestData.tinyA().ropeAxes());
        assertArrayEquals(new int[] {12, 10, 10}, WanTestData.tinyB().ropeAxes());
        assertEquals(64, small.patchFeaturesIn());
        assertEquals(64, big.patchFeaturesOut());
        // embeddings 12 tensors; per block modulation 1, two attentions 2·10, cross-attention norm 2, FFN 4; head 3
        assertEquals(12 + 40 * 27 + 3, WanWeights.expectedShapes(big).size());
    }

    @Test void detectsConfigurations() {
        try (WeightSource w = WeightSource.open(resource("wan_a_diffusers"))) {
            assertEquals(WanTestData.tinyA(), WanConfig.detect(w));    // heads from config.json
        }
        try (WeightSource w = WeightSource.open(resource("wan_a_original.safetensors"))) {
            assertEquals("", WanWeights.detectPrefix(w));
            assertEquals(WanWeights.Layout.ORIGINAL, WanWeights.Layout.of(w, ""));
            assertEquals(WanTestData.tinyA(), WanConfig.detect(w, 2));
            // no config.json next to it and a hidden size that 128-wide heads do not divide: ask for the head count
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanConfig.detect(w));
            assertTrue(e.getMessage().contains("head") && e.getMessage().contains("wan_a_original.safetensors"), e.getMessage());
        }
        try (WeightSource w = WeightSource.open(resource("wan_b_comfy_prefixed.safetensors"))) {
            assertEquals(WanWeights.COMFY_PREFIX, WanWeights.detectPrefix(w));
            assertEquals(WanTestData.tinyB(), WanConfig.detect(w, 2));
        }
        try (WeightSource w = WeightSource.open(resource("wan_b_diffusers.safetensors"))) {
            assertEquals(WanWeights.Layout.DIFFUSERS, WanWeights.Layout.of(w, ""));
            assertEquals(WanTestData.tinyB(), WanConfig.detect(w, 2));
        }
    }

    @Test void namingLayoutsAreOneToOne() {
        Set<String> canonical = WanWeights.expectedShapes(WanTestData.tinyA()).keySet();
        try (WeightSource d = WeightSource.open(resource("wan_a_diffusers"));
             WeightSource o = WeightSource.open(resource("wan_a_original.safetensors"))) {
            Set<String> fromD = new TreeSet<>();
            for (String n : d.names()) fromD.add(WanWeights.fromDiffusers(n));
            assertEquals(new TreeSet<>(canonical), fromD);
            assertEquals(new TreeSet<>(canonical), o.names());
            for (String n : canonical) {
                assertEquals(n, WanWeights.fromDiffusers(WanWeights.toDiffusers(n)));
                assertTrue(d.contains(WanWeights.toDiffusers(n)), n);
                // same values under both names (the original file is the bf16 rounding of the same f32 weights)
                assertEquals(0.0, relL2(o.tensor(n).toFloatArray(), d.tensor(WanWeights.toDiffusers(n)).toFloatArray()), 0.0, n);
            }
        }
        assertEquals("blocks.7.norm2.weight", WanWeights.toDiffusers("blocks.7.norm3.weight"));   // the norm swap
        assertEquals("scale_shift_table", WanWeights.toDiffusers("head.modulation"));
        assertEquals("blocks.0.attn1.to_out.0.bias", WanWeights.toDiffusers("blocks.0.self_attn.o.bias"));
        assertNull(WanWeights.fromDiffusers("blocks.0.norm3.weight"));    // diffusers' norm3 has no parameters
        assertEquals("blocks.2.ffn.0.weight", WanWeights.fromOriginal("model.diffusion_model.blocks.2.ffn.0.weight"));
    }

    @Test void loadDtypesFollowDiffusersFp32Modules() {
        try (WeightSource w = WeightSource.open(resource("wan_a_original.safetensors"))) {
            try (WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyA(), DType.BF16)) {
                for (String n : new String[] {"time_embedding.0.weight", "time_embedding.2.bias", "blocks.1.modulation",
                        "blocks.0.norm3.weight", "blocks.0.norm3.bias", "head.modulation"})
                    assertEquals(DType.F32, ww.tensor(n).dtype(), n);
                for (String n : new String[] {"patch_embedding.weight", "patch_embedding.bias", "blocks.0.self_attn.q.weight",
                        "blocks.0.cross_attn.norm_k.weight", "time_projection.1.weight", "head.head.weight"})
                    assertEquals(DType.BF16, ww.tensor(n).dtype(), n);
            }
            try (WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyA(), DType.F8_E4M3)) {
                assertEquals(DType.F8_E4M3, ww.tensor("blocks.0.ffn.0.weight").dtype());
                assertEquals(DType.BF16, ww.tensor("blocks.0.ffn.0.bias").dtype());
                assertEquals(DType.F32, ww.tensor("time_embedding.0.weight").dtype());
            }
        }
    }

    @Test void missingTensorIsNamed() {
        Path p = rewrite("wan_a_original.safetensors", "missing.safetensors", m -> m.remove("blocks.1.cross_attn.o.weight"));
        try (WeightSource w = WeightSource.open(p)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanWeights.load(ops, w, WanTestData.tinyA(), DType.F32));
            String msg = e.getMessage();
            assertTrue(msg.contains("blocks.1.cross_attn.o.weight") && msg.contains("missing.safetensors") && msg.contains("[32, 32]"), msg);
        }
        p = rewrite("wan_b_diffusers.safetensors", "missing_d.safetensors", m -> m.remove("blocks.0.norm2.bias"));
        try (WeightSource w = WeightSource.open(p)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanWeights.load(ops, w, WanTestData.tinyB(), DType.F32));
            assertTrue(e.getMessage().contains("blocks.0.norm2.bias") && e.getMessage().contains("blocks.0.norm3.bias"), e.getMessage());
        }
    }

    @Test void wrongShapeIsNamed() {
        Path p = rewrite("wan_a_original.safetensors", "shape.safetensors",
                m -> m.put("blocks.0.ffn.2.weight", Tensor.zeros(DType.BF16, 32, 60)));
        try (WeightSource w = WeightSource.open(p)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanWeights.load(ops, w, WanTestData.tinyA(), DType.F32));
            String msg = e.getMessage();
            assertTrue(msg.contains("blocks.0.ffn.2.weight") && msg.contains("[32, 60]") && msg.contains("expected [32, 64]"), msg);
            // detection reads the FFN width from ffn.0, so it still sees a valid model; loading names the bad tensor
            assertEquals(WanTestData.tinyA(), WanConfig.detect(w, 2));
        }
    }

    @Test void extraBlocksAndOtherModelsAreRefused() {
        try (WeightSource w = WeightSource.open(resource("wan_a_original.safetensors"))) {
            WanConfig shallow = new WanConfig(32, 2, 1, 64, 16, 16, 32, 256, new int[] {1, 2, 2}, true);
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanWeights.load(ops, w, shallow, DType.F32));
            assertTrue(e.getMessage().contains("2 blocks"), e.getMessage());
        }
        Path i2v = rewrite("wan_a_original.safetensors", "i2v.safetensors",
                m -> m.put("blocks.0.cross_attn.k_img.weight", Tensor.zeros(DType.BF16, 32, 32)));
        try (WeightSource w = WeightSource.open(i2v)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanConfig.detect(w, 2));
            assertTrue(e.getMessage().contains("image-to-video") && e.getMessage().contains("k_img"), e.getMessage());
        }
        try (WeightSource w = WeightSource.open(Path.of(resource("wan_a_io.safetensors").toString()))) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> WanConfig.detect(w, 2));
            assertTrue(e.getMessage().contains("time_projection.1.weight") && e.getMessage().contains("wan_a_io.safetensors"), e.getMessage());
        }
    }

    /**
     * ComfyUI scaled fp8 (wan2.1_t2v_14B_fp8_scaled-style): block linears stored as e4m3 with a scale, the rest as is.
     * Half of the layers use the older scalar {@code scale_weight}, the other half a per-row {@code weight_scale}.
     * The file must load to exactly the dequantized weights and compute what they compute.
     */
    @Test void scaledFp8LoadsAsDequantizedWeights() {
        Map<String, Tensor> scaled = new LinkedHashMap<>(), deq = new LinkedHashMap<>();
        scaled.put(WanWeights.COMFY_PREFIX + "scaled_fp8", Tensor.zeros(DType.F8_E4M3, 0));
        int layer = 0;
        try (WeightSource w = WeightSource.open(resource("wan_b_comfy_prefixed.safetensors"))) {
            for (String n : w.names()) {
                Tensor t = w.tensor(n);
                float[] v = t.toFloatArray();
                boolean quantize = t.rank() == 2 && n.contains(".blocks.");
                if (!quantize) {
                    scaled.put(n, Tensor.of(v, t.shape().dims()));
                    deq.put(n, Tensor.of(v, t.shape().dims()));
                    continue;
                }
                int rows = Math.toIntExact(t.dim(0)), cols = Math.toIntExact(t.dim(1));
                boolean perRow = layer++ % 2 == 1;
                float[] scale = new float[perRow ? rows : 1];
                for (int r = 0; r < rows; r++)
                    for (int c = 0; c < cols; c++) {
                        int s = perRow ? r : 0;
                        scale[s] = Math.max(scale[s], Math.abs(v[r * cols + c]) / 448f);
                    }
                Tensor q = Tensor.zeros(DType.F8_E4M3, rows, cols);
                float[] back = new float[v.length];
                for (int i = 0; i < v.length; i++) {
                    float s = scale[perRow ? i / cols : 0];
                    byte b = DType.F8_E4M3.fromFloatSaturating(v[i] / s);
                    q.segment().set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, b);
                    back[i] = DType.e4m3ToFloat(b) * s;
                }
                String l = n.substring(0, n.length() - ".weight".length());
                scaled.put(n, q);
                scaled.put(perRow ? l + ".weight_scale" : l + ".scale_weight", perRow ? Tensor.of(scale, rows) : Tensor.of(scale));
                deq.put(n, Tensor.of(back, rows, cols));
            }
        }
        Path sp = tmp.resolve("wan_b_fp8_scaled.safetensors"), dp = tmp.resolve("wan_b_dequantized.safetensors");
        SafeTensorsWriter.write(sp, scaled, Map.of());
        SafeTensorsWriter.write(dp, deq, Map.of());
        try (WeightSource s = WeightSource.open(sp); WeightSource d = WeightSource.open(dp);
             WeightSource io = WeightSource.open(resource("wan_b_io.safetensors"));
             WanWeights ws = WanWeights.load(ops, s, WanConfig.detect(s, 2), DType.F32);
             WanWeights wd = WanWeights.load(ops, d, WanTestData.tinyB(), DType.F32);
             Scope scope = Scope.open()) {
            for (String n : wd.names())
                assertEquals(0.0, relL2(ops.toHost(ws.tensor(n)).toFloatArray(), ops.toHost(wd.tensor(n)).toFloatArray()), 0.0, n);
            float[] want = ops.toHost(WanTestData.forward(ops, new WanTransformer(ops, wd), io, DType.F32)).toFloatArray();
            float[] got = ops.toHost(WanTestData.forward(ops, new WanTransformer(ops, ws), io, DType.F32)).toFloatArray();
            assertTrue(relL2(got, want) <= 1e-6, "scaled fp8 vs dequantized: rel-L2 " + relL2(got, want));
            double vsDiffusers = relL2(want, io.tensor("out").toFloatArray());
            assertTrue(vsDiffusers < 0.1, "fp8 weights moved the output by rel-L2 " + vsDiffusers);
            var e = assertThrows(IllegalArgumentException.class, () -> WanWeights.load(ops, s, WanTestData.tinyB(), DType.F8_E4M3));
            assertTrue(e.getMessage().contains("blocks.0.self_attn.q.weight") && e.getMessage().contains("BF16"), e.getMessage());
        }
    }

    /** A copy of a reference file with {@code edit} applied to its (host, copied) tensors. */
    private Path rewrite(String from, String to, Consumer<Map<String, Tensor>> edit) {
        Map<String, Tensor> m = new LinkedHashMap<>();
        try (WeightSource w = WeightSource.open(resource(from))) {
            for (String n : w.names()) {
                Tensor t = w.tensor(n), c = Tensor.zeros(t.dtype(), t.shape());
                java.lang.foreign.MemorySegment.copy(t.segment(), 0, c.segment(), 0, t.byteSize());
                m.put(n, c);
            }
        }
        edit.accept(m);
        Path p = tmp.resolve(to);
        SafeTensorsWriter.write(p, m, Map.of());
        return p;
    }
}
