package org.dit4j.models.vae;

import static org.dit4j.models.vae.VaeTestData.castHost;
import static org.dit4j.models.vae.VaeTestData.relL2;
import static org.dit4j.models.vae.VaeTestData.resource;
import static org.dit4j.models.vae.VaeTestData.rewrite;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
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

/** Naming, configuration detection, layouts, dtypes, prefixes, partial files and checkpoint errors of the VAE. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class VaeWeightsTest {
    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @TempDir Path tmp;

    @Test void fluxShapesMatchTheRealCheckpoint() {
        Map<String, Shape> s = VaeWeights.expectedShapes(VaeConfig.flux());
        assertEquals(244, s.size(), "BFL ae.safetensors holds 244 tensors");
        assertEquals(Shape.of(128, 3, 3, 3), s.get("encoder.conv_in.weight"));
        assertEquals(Shape.of(256, 128, 1, 1), s.get("encoder.down.1.block.0.nin_shortcut.weight"));
        assertEquals(Shape.of(512, 512, 3, 3), s.get("encoder.down.2.downsample.conv.weight"));
        assertFalse(s.containsKey("encoder.down.3.downsample.conv.weight"));
        assertEquals(Shape.of(32, 512, 3, 3), s.get("encoder.conv_out.weight"));
        assertEquals(Shape.of(512, 16, 3, 3), s.get("decoder.conv_in.weight"));
        assertEquals(Shape.of(512, 512), s.get("decoder.mid.attn_1.q.weight"));
        assertEquals(Shape.of(256, 512, 1, 1), s.get("decoder.up.1.block.0.nin_shortcut.weight"));
        assertEquals(Shape.of(128, 256, 3, 3), s.get("decoder.up.0.block.0.conv1.weight"));
        assertEquals(Shape.of(512, 512, 3, 3), s.get("decoder.up.3.upsample.conv.weight"));
        assertFalse(s.containsKey("decoder.up.0.upsample.conv.weight"));
        assertEquals(Shape.of(3, 128, 3, 3), s.get("decoder.conv_out.weight"));
        assertEquals(8, VaeConfig.flux().downFactor());
    }

    @Test void namingMaps() {
        assertEquals(List.of("decoder.up_blocks.0.resnets.0.conv1.weight"), VaeWeights.toDiffusers("decoder.up.3.block.0.conv1.weight", 4));
        assertEquals("decoder.up.3.block.2.norm2.bias", VaeWeights.fromDiffusers("decoder.up_blocks.0.resnets.2.norm2.bias", 4));
        assertEquals("decoder.up.1.block.0.nin_shortcut.weight",
                VaeWeights.fromDiffusers("decoder.up_blocks.2.resnets.0.conv_shortcut.weight", 4));
        assertEquals("decoder.up.2.upsample.conv.bias", VaeWeights.fromDiffusers("decoder.up_blocks.1.upsamplers.0.conv.bias", 4));
        assertEquals("encoder.down.1.downsample.conv.weight",
                VaeWeights.fromDiffusers("encoder.down_blocks.1.downsamplers.0.conv.weight", 4));
        assertEquals("encoder.mid.block_2.conv1.weight", VaeWeights.fromDiffusers("encoder.mid_block.resnets.1.conv1.weight", 4));
        assertEquals("decoder.mid.attn_1.proj_out.weight",
                VaeWeights.fromDiffusers("decoder.mid_block.attentions.0.to_out.0.weight", 4));
        assertEquals("encoder.mid.attn_1.q.weight", VaeWeights.fromDiffusers("encoder.mid_block.attentions.0.query.weight", 4));
        assertEquals("encoder.mid.attn_1.norm.bias", VaeWeights.fromDiffusers("encoder.mid_block.attentions.0.group_norm.bias", 4));
        assertEquals("decoder.norm_out.weight", VaeWeights.fromDiffusers("decoder.conv_norm_out.weight", 4));
        assertEquals("post_quant_conv.bias", VaeWeights.fromDiffusers("post_quant_conv.bias", 4));
        assertEquals(List.of("decoder.mid_block.attentions.0.to_v.bias", "decoder.mid_block.attentions.0.value.bias"),
                VaeWeights.toDiffusers("decoder.mid.attn_1.v.bias", 4));
        assertNull(VaeWeights.fromDiffusers("model.diffusion_model.img_in.weight", 4));
        assertThrows(IllegalArgumentException.class, () -> VaeWeights.toDiffusers("decoder.up.0.attn.0.weight", 4));
        for (VaeConfig cfg : List.of(VaeConfig.flux(), VaeTestData.sdTiny()))
            for (String name : VaeWeights.expectedShapes(cfg).keySet())
                for (String d : VaeWeights.toDiffusers(name, cfg.levels()))
                    assertEquals(name, VaeWeights.fromDiffusers(d, cfg.levels()), d);
    }

    /** Our diffusers→canonical mapping agrees with the BFL files, which diffusers' convert_ldm_vae_checkpoint checked. */
    @Test void diffusersNamesMapOntoTheBflFiles() {
        for (String[] pair : new String[][] {
                {"flux_tiny_diffusers/diffusion_pytorch_model.safetensors", "flux_tiny_bfl.safetensors", "", "3"},
                {"sd_tiny_diffusers.safetensors", "sd_tiny_bfl.safetensors", "first_stage_model.", "2"}}) {
            try (WeightSource d = WeightSource.open(resource(pair[0])); WeightSource b = WeightSource.open(resource(pair[1]))) {
                int levels = Integer.parseInt(pair[3]);
                assertEquals(d.names().size(), b.names().size());
                for (String n : d.names()) {
                    String canonical = VaeWeights.fromDiffusers(n, levels);
                    assertNotNull(canonical, n);
                    String bfl = pair[2] + canonical;
                    assertTrue(b.contains(bfl), n + " → " + bfl);
                    assertArrayEquals(d.tensor(n).toFloatArray(), b.tensor(bfl).toFloatArray(), 0f, n);
                }
            }
        }
    }

    @Test void detectsConfigsFromShapes() {
        try (WeightSource a = WeightSource.open(resource("flux_tiny_bfl.safetensors"));
             WeightSource b = WeightSource.open(resource("flux_tiny_diffusers"));
             WeightSource c = WeightSource.open(resource("sd_tiny_bfl.safetensors"));
             WeightSource d = WeightSource.open(resource("sd_tiny_diffusers.safetensors"))) {
            assertEquals(VaeTestData.fluxTiny(), VaeConfig.detect(a, 4));
            assertEquals(VaeTestData.fluxTiny(), VaeConfig.detect(b, 4));
            assertEquals(VaeTestData.sdTiny(), VaeConfig.detect(c, 4));
            assertEquals(VaeTestData.sdTiny(), VaeConfig.detect(d, 4));
            assertEquals("", VaeWeights.detectPrefix(a));
            assertEquals("first_stage_model.", VaeWeights.detectPrefix(c));
            assertEquals(VaeWeights.Layout.BFL, VaeWeights.layoutOf(a, ""));
            assertEquals(VaeWeights.Layout.DIFFUSERS, VaeWeights.layoutOf(b, ""));
            assertEquals(VaeWeights.Layout.BFL, VaeWeights.layoutOf(c, "first_stage_model."));
            assertEquals(VaeTestData.fluxTiny(), AutoencoderKL.readConfig(b, resource("flux_tiny_diffusers")));
        }
    }

    /** Weights stored as BF16/F16 load as the same numbers as an F32 file of the rounded values; against diffusers' F32 run the rounding costs a stated amount. */
    @Test void halfPrecisionFilesAndPrefixes() {
        try (WeightSource src = WeightSource.open(resource("flux_tiny_bfl.safetensors"));
             WeightSource io = WeightSource.open(resource("flux_tiny_io.safetensors"));
             Scope scope = Scope.open()) {
            Tensor z = io.tensor("z");
            Tensor ref = io.tensor("dec");
            for (DType dt : new DType[] {DType.BF16, DType.F16}) {
                Path half = rewrite(src, tmp.resolve(dt + ".safetensors"), "", (n, t) -> castHost(t, dt), null);
                Path rounded = rewrite(src, tmp.resolve(dt + "-as-f32.safetensors"), "vae.",
                        (n, t) -> castHost(castHost(t, dt), DType.F32),
                        Map.of("model.diffusion_model.img_in.weight", Tensor.of(new float[] {1, 2}, 1, 2)));
                float[] a = decode(half, DType.F32, z);
                float[] keep = decode(half, null, z);        // weights kept as stored; the CPU backend decodes them exactly
                float[] b = decode(rounded, DType.F32, z);   // ComfyUI "vae." prefix next to other models' tensors
                assertEquals(0.0, relL2(a, b), 1e-7, dt + " file vs F32 file of the same values");
                assertEquals(0.0, relL2(keep, b), 1e-7, dt + " weights kept vs converted on load");
                double err = relL2(a, ref.toFloatArray());
                System.out.printf("vae %s weights vs diffusers F32: rel-L2 %.2e%n", dt, err);
                assertTrue(err < (dt == DType.BF16 ? 2e-2 : 2e-3), dt + " weights: rel-L2 " + err);
                assertTrue(err > 1e-6, dt + " rounding must be visible: rel-L2 " + err);
            }
        }
    }

    private float[] decode(Path file, DType dtype, Tensor z) {
        try (WeightSource w = WeightSource.open(file); AutoencoderKL vae = AutoencoderKL.load(ops, w, VaeConfig.detect(w, 4), dtype);
             Scope s = Scope.open()) {
            return ops.toHost(vae.decode(ops.upload(z))).toFloatArray();
        }
    }

    /** A decoder-only file (as some repackagings ship) decodes; encoding says what is missing. */
    @Test void decoderOnlyFile() {
        try (WeightSource src = WeightSource.open(resource("flux_tiny_bfl.safetensors"));
             WeightSource io = WeightSource.open(resource("flux_tiny_io.safetensors"))) {
            Path p = rewrite(src, tmp.resolve("dec.safetensors"), "", (n, t) -> n.startsWith("decoder.") ? t : null, null);
            try (WeightSource w = WeightSource.open(p); Scope s = Scope.open()) {
                VaeConfig cfg = VaeConfig.detect(w, 4);
                assertFalse(cfg.hasEncoder());
                assertTrue(cfg.hasDecoder() && cfg.midAttention());
                assertArrayEquals(new int[] {8, 16, 16}, cfg.blockOutChannels());
                assertEquals(2, cfg.layersPerBlock());
                assertEquals(16, cfg.latentChannels());
                assertEquals(VaeConfig.FLUX_SCALING, cfg.scalingFactor());
                assertEquals(VaeConfig.FLUX_SHIFT, cfg.shiftFactor());
                try (AutoencoderKL vae = AutoencoderKL.load(ops, w, cfg, DType.F32)) {
                    float[] dec = ops.toHost(vae.decode(ops.upload(io.tensor("z")))).toFloatArray();
                    assertTrue(relL2(dec, io.tensor("dec").toFloatArray()) <= 1e-4);
                    IllegalStateException e = assertThrows(IllegalStateException.class, () -> vae.encode(ops.upload(io.tensor("x"))));
                    assertTrue(e.getMessage().contains("no encoder"), e.getMessage());
                }
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ errors

    @Test void wrongShapeNamesTensorFileAndShapes() {
        try (WeightSource src = WeightSource.open(resource("flux_tiny_bfl.safetensors"))) {
            Path p = rewrite(src, tmp.resolve("bad.safetensors"), "",
                    (n, t) -> n.equals("decoder.up.1.block.1.conv2.weight") ? Tensor.zeros(DType.F32, 16, 16, 1, 1) : t, null);
            CheckpointException e = assertThrows(CheckpointException.class, () -> load(p, 4));
            assertMentions(e, "decoder.up.1.block.1.conv2.weight", "bad.safetensors", "[16, 16, 1, 1]", "[16, 16, 3, 3]");
        }
        try (WeightSource src = WeightSource.open(resource("flux_tiny_diffusers"))) {
            Path p = rewrite(src, tmp.resolve("bad-diffusers.safetensors"), "",
                    (n, t) -> n.equals("decoder.up_blocks.0.resnets.0.conv1.weight") ? Tensor.zeros(DType.F32, 16, 16, 3, 1) : t, null);
            CheckpointException e = assertThrows(CheckpointException.class, () -> load(p, 4));
            assertMentions(e, "decoder.up_blocks.0.resnets.0.conv1.weight", "canonical 'decoder.up.2.block.0.conv1.weight'",
                    "bad-diffusers.safetensors", "[16, 16, 3, 1]", "[16, 16, 3, 3]");
        }
    }

    @Test void missingExtraAndForeignTensors() {
        try (WeightSource src = WeightSource.open(resource("flux_tiny_bfl.safetensors"))) {
            Path p = rewrite(src, tmp.resolve("missing.safetensors"), "",
                    (n, t) -> n.equals("decoder.mid.attn_1.v.bias") ? null : t, null);
            assertMentions(assertThrows(CheckpointException.class, () -> load(p, 4)), "lacks tensor 'decoder.mid.attn_1.v.bias'",
                    "expected shape [16]");
        }
        try (WeightSource w = WeightSource.open(resource("sd_tiny_diffusers.safetensors"))) {
            VaeConfig noQuant = new VaeConfig(3, 3, new int[] {8, 16}, 1, 4, 4, 0.18215f, 0f, false, false, false, true, true);
            CheckpointException e = assertThrows(CheckpointException.class, () -> VaeWeights.load(ops, w, noQuant, DType.F32));
            assertMentions(e, "leaves out", "quant_conv.weight");
            VaeConfig deeper = new VaeConfig(3, 3, new int[] {8, 16, 16}, 1, 4, 4, 0.18215f, 0f, true, true, false, true, true);
            assertMentions(assertThrows(CheckpointException.class, () -> VaeWeights.load(ops, w, deeper, DType.F32)),
                    "2 resolution levels", "3");
        }
        Path foreign = tmp.resolve("foreign.safetensors");
        org.dit4j.core.io.SafeTensorsWriter.write(foreign, Map.of("img_in.weight", Tensor.zeros(DType.F32, 2, 2)), Map.of());
        assertMentions(assertThrows(CheckpointException.class, () -> load(foreign, 4)), "not a VAE", "foreign.safetensors",
                "decoder.conv_in.weight");
        IllegalArgumentException g = assertThrows(IllegalArgumentException.class, () -> load(resource("flux_tiny_bfl.safetensors"), 32));
        assertMentions(g, "32 groups", "[8, 16, 16]", "norm_num_groups");
    }

    @Test void configJsonMustAgreeWithTheWeights() throws Exception {
        Path dir = Files.createDirectories(tmp.resolve("vae"));
        try (WeightSource src = WeightSource.open(resource("flux_tiny_diffusers"))) {
            rewrite(src, dir.resolve("diffusion_pytorch_model.safetensors"), "", (n, t) -> t, null);
        }
        String json = Files.readString(resource("flux_tiny_diffusers/config.json"));
        Files.writeString(dir.resolve("config.json"), json.replace("\"latent_channels\": 16", "\"latent_channels\": 8"));
        assertMentions(assertThrows(CheckpointException.class, () -> AutoencoderKL.load(ops, dir, DType.F32)),
                "config.json", "latent_channels = 8", "16");
        Files.writeString(dir.resolve("config.json"), json.replace("\"AutoencoderKL\"", "\"AutoencoderKLWan\""));
        assertMentions(assertThrows(CheckpointException.class, () -> AutoencoderKL.load(ops, dir, DType.F32)), "AutoencoderKLWan");
        // a pipeline folder: model_index.json + vae/
        Files.writeString(dir.resolve("config.json"), json.replace("0.1159", "0.25"));
        Files.writeString(tmp.resolve("model_index.json"), "{}");
        try (AutoencoderKL vae = AutoencoderKL.load(ops, tmp, DType.F32)) {
            assertEquals(0.25f, vae.config().shiftFactor());
            assertEquals(4, vae.config().normGroups());
        }
    }

    @Test void inputShapeErrors() {
        try (AutoencoderKL vae = load(resource("flux_tiny_bfl.safetensors"), 4); Scope s = Scope.open()) {
            assertMentions(assertThrows(IllegalArgumentException.class, () -> vae.decode(Tensor.zeros(DType.F32, 1, 4, 4, 4))),
                    "[N, 16, h, w]", "[1, 4, 4, 4]");
            assertMentions(assertThrows(IllegalArgumentException.class, () -> vae.encode(Tensor.zeros(DType.F32, 1, 4, 8, 8))),
                    "[N, 3, H, W]", "[1, 4, 8, 8]");
            assertMentions(assertThrows(IllegalArgumentException.class,
                    () -> vae.decodeTiled(Tensor.zeros(DType.F32, 1, 16, 8, 8), 4, 4)), "overlapLatent < tileLatent");
        }
    }

    private static AutoencoderKL load(Path p, int groups) {
        try (WeightSource w = WeightSource.open(p)) {
            return AutoencoderKL.load(ops, w, VaeConfig.detect(w, groups), DType.F32);
        }
    }

    private static void assertMentions(Exception e, String... parts) {
        for (String p : parts) assertTrue(e.getMessage().contains(p), "message lacks '" + p + "': " + e.getMessage());
    }
}
