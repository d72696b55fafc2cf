package org.dit4j.models.flux;

import static org.dit4j.models.flux.FluxTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Naming, configuration detection, layout equivalence and checkpoint errors of {@link FluxWeights}. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxWeightsTest {
    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @TempDir Path tmp;

    @Test void detectsConfigsFromShapes() {
        try (WeightSource a = WeightSource.open(resource("flux_dev_diffusers"));
             WeightSource b = WeightSource.open(resource("flux_dev_bfl.safetensors"));
             WeightSource c = WeightSource.open(resource("flux_schnell_diffusers.safetensors"));
             WeightSource d = WeightSource.open(resource("flux_schnell_bfl_prefixed.safetensors"))) {
            assertEquals(FluxTestData.tinyDev(), FluxConfig.detect(a));
            assertEquals(FluxTestData.tinyDev(), FluxConfig.detect(b, ""));
            assertEquals(FluxTestData.tinySchnell(), FluxConfig.detect(c));
            assertEquals(FluxWeights.BFL_PREFIX, FluxWeights.detectPrefix(d));
            assertEquals(FluxTestData.tinySchnell(), FluxConfig.detect(d, FluxWeights.BFL_PREFIX));
            assertEquals(FluxWeights.Layout.DIFFUSERS, FluxWeights.Layout.of(a, ""));
            assertEquals(FluxWeights.Layout.BFL, FluxWeights.Layout.of(d, FluxWeights.BFL_PREFIX));
        }
    }

    @Test void namingMaps() {
        assertEquals("double_blocks.1.img_attn.qkv.weight", FluxWeights.fromDiffusers("transformer_blocks.1.attn.to_k.weight"));
        assertEquals("double_blocks.0.txt_attn.qkv.bias", FluxWeights.fromDiffusers("transformer_blocks.0.attn.add_v_proj.bias"));
        assertEquals("single_blocks.12.linear1.weight", FluxWeights.fromDiffusers("single_transformer_blocks.12.proj_mlp.weight"));
        assertEquals("single_blocks.3.linear2.bias", FluxWeights.fromDiffusers("single_transformer_blocks.3.proj_out.bias"));
        assertEquals("final_layer.adaLN_modulation.1.weight", FluxWeights.fromDiffusers("norm_out.linear.weight"));
        assertEquals("final_layer.linear.weight", FluxWeights.fromDiffusers("proj_out.weight"));
        assertEquals("double_blocks.2.txt_attn.norm.key_norm.scale", FluxWeights.fromDiffusers("transformer_blocks.2.attn.norm_added_k.weight"));
        assertEquals("guidance_in.out_layer.bias", FluxWeights.fromDiffusers("time_text_embed.guidance_embedder.linear_2.bias"));
        assertNull(FluxWeights.fromDiffusers("vae.decoder.conv_in.weight"));
        assertEquals(List.of("single_transformer_blocks.5.attn.to_q.bias", "single_transformer_blocks.5.attn.to_k.bias",
                "single_transformer_blocks.5.attn.to_v.bias", "single_transformer_blocks.5.proj_mlp.bias"),
                FluxWeights.diffusersSources("single_blocks.5.linear1.bias").sources());
        assertTrue(FluxWeights.diffusersSources("final_layer.adaLN_modulation.1.bias").swapHalves());
        assertEquals("img_in.weight", FluxWeights.fromBfl("model.diffusion_model.img_in.weight"));
        assertEquals("img_in.weight", FluxWeights.fromBfl("img_in.weight"));
        // every canonical tensor of the full dev model has a diffusers recipe that maps back to it
        for (String name : FluxWeights.expectedShapes(FluxConfig.dev()).keySet())
            for (String src : FluxWeights.diffusersSources(name).sources())
                assertEquals(name, FluxWeights.fromDiffusers(src), src);
    }

    /** The diffusers F32 shards and the BFL BF16 file hold the same weights (bf16-grid values): loaded canonically they are equal. */
    @Test void layoutsLoadToTheSameTensors() {
        try (WeightSource a = WeightSource.open(resource("flux_dev_diffusers/diffusion_pytorch_model.safetensors.index.json"));
             WeightSource b = WeightSource.open(resource("flux_dev_bfl.safetensors"));
             FluxWeights wa = FluxWeights.load(ops, a, FluxTestData.tinyDev(), DType.F32);
             FluxWeights wb = FluxWeights.load(ops, b, FluxTestData.tinyDev(), DType.F32)) {
            assertEquals(FluxWeights.expectedShapes(FluxTestData.tinyDev()).size(), wa.names().size());
            for (String n : wa.names()) {
                try (Scope s = Scope.open()) {
                    assertArrayEquals(ops.toHost(wb.tensor(n)).toFloatArray(), ops.toHost(wa.tensor(n)).toFloatArray(), 0f, n);
                }
            }
            // the final layer's halves are swapped: diffusers (scale, shift) → canonical (shift, scale)
            float[] diff = a.tensor("norm_out.linear.bias").toFloatArray();
            float[] canon = ops.toHost(wa.tensor("final_layer.adaLN_modulation.1.bias")).toFloatArray();
            assertEquals(diff[32], canon[0]);
            assertEquals(diff[0], canon[32]);
        }
    }

    @Test void loadsIntoBf16() {
        try (WeightSource a = WeightSource.open(resource("flux_dev_diffusers"));
             FluxWeights w = FluxWeights.load(ops, a, FluxTestData.tinyDev(), DType.BF16)) {
            Tensor q = w.tensor("double_blocks.0.img_attn.qkv.weight");
            assertEquals(DType.BF16, q.dtype());
            assertEquals(Shape.of(96, 32), q.shape());
            // values are on the bf16 grid, so the cast is exact
            try (Scope s = Scope.open()) {
                float[] got = ops.toHost(q).toFloatArray();
                float[] want = a.tensor("transformer_blocks.0.attn.to_k.weight").toFloatArray();
                for (int i = 0; i < want.length; i++) assertEquals(want[i], got[32 * 32 + i], 0f);
            }
        }
    }

    @Test void missingTensorIsNamed() {
        Path f = rewrite("flux_dev_bfl.safetensors", "missing.safetensors", "double_blocks.1.txt_attn.proj.weight", null);
        try (WeightSource w = WeightSource.open(f)) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F32));
            assertTrue(e.getMessage().contains("double_blocks.1.txt_attn.proj.weight"), e.getMessage());
            assertTrue(e.getMessage().contains("missing.safetensors"), e.getMessage());
            assertTrue(e.getMessage().contains("[32, 32]"), e.getMessage());
        }
        Path g = rewrite("flux_schnell_diffusers.safetensors", "missing-diffusers.safetensors",
                "single_transformer_blocks.1.proj_mlp.bias", null);
        try (WeightSource w = WeightSource.open(g)) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> FluxWeights.load(ops, w, FluxTestData.tinySchnell(), DType.F32));
            assertTrue(e.getMessage().contains("single_transformer_blocks.1.proj_mlp.bias"), e.getMessage());
            assertTrue(e.getMessage().contains("single_blocks.1.linear1.bias"), e.getMessage());
        }
    }

    @Test void wrongShapeIsNamed() {
        Path f = rewrite("flux_dev_bfl.safetensors", "shape.safetensors", "single_blocks.0.linear2.weight", Shape.of(32, 150));
        try (WeightSource w = WeightSource.open(f)) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F32));
            String m = e.getMessage();
            assertTrue(m.contains("single_blocks.0.linear2.weight") && m.contains("shape.safetensors"), m);
            assertTrue(m.contains("[32, 150]") && m.contains("expected [32, 160]"), m);
        }
        // a checkpoint of another size does not load into the dev preset
        try (WeightSource w = WeightSource.open(resource("flux_dev_bfl.safetensors"))) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> FluxWeights.load(ops, w, FluxConfig.dev(), DType.F32));
            assertTrue(e.getMessage().contains("img_in.weight") && e.getMessage().contains("expected [3072, 64]"), e.getMessage());
        }
    }

    @Test void partsTheConfigLeavesOutAreErrors() {
        try (WeightSource w = WeightSource.open(resource("flux_dev_diffusers"))) {
            CheckpointException e = assertThrows(CheckpointException.class,
                    () -> FluxWeights.load(ops, w, FluxTestData.tinyDev().withGuidanceEmbed(false), DType.F32));
            assertTrue(e.getMessage().contains("time_text_embed.guidance_embedder.linear_1.weight"), e.getMessage());
            FluxConfig shallow = new FluxConfig(32, 2, 1, 2, 64, 64, 32, 24, 128, new int[] {4, 6, 6}, 10000, true);
            e = assertThrows(CheckpointException.class, () -> FluxWeights.load(ops, w, shallow, DType.F32));
            assertTrue(e.getMessage().contains("2 double blocks"), e.getMessage());
        }
    }

    @Test void notAFluxCheckpoint() {
        Path f = tmp.resolve("other.safetensors");
        SafeTensorsWriter.write(f, Map.of("encoder.weight", Tensor.of(new float[] {1, 2}, 2)), Map.of());
        try (WeightSource w = WeightSource.open(f)) {
            CheckpointException e = assertThrows(CheckpointException.class, () -> FluxConfig.detect(w));
            assertTrue(e.getMessage().contains("other.safetensors") && e.getMessage().contains("img_in.weight"), e.getMessage());
        }
    }

    /** Copies {@code resource} without tensor {@code name} (newShape null) or with it replaced by zeros of newShape. */
    private Path rewrite(String resource, String fileName, String name, Shape newShape) {
        Path out = tmp.resolve(fileName);
        try (WeightSource w = WeightSource.open(resource(resource))) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            for (String n : w.names()) {
                if (!n.equals(name)) m.put(n, w.tensor(n));
                else if (newShape != null) m.put(n, Tensor.zeros(w.info(n).dtype(), newShape));
            }
            SafeTensorsWriter.write(out, m, w.metadata());
        }
        return out;
    }
}
