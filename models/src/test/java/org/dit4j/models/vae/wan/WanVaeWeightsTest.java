package org.dit4j.models.vae.wan;

import static org.dit4j.models.vae.wan.WanVaeTestData.relL2;
import static org.dit4j.models.vae.wan.WanVaeTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.function.BiFunction;

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

/** Naming, configuration detection, partial files, dtypes and the error messages of the Wan VAE loader. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanVaeWeightsTest {
    static Ops ops;

    @TempDir Path tmp;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    /** The released Wan2.1 VAE: 194 tensors, 126,892,531 parameters (diffusers' AutoencoderKLWan() default, counted). */
    @Test void wan21HasTheReleasedTensors() {
        Map<String, Shape> s = WanVaeWeights.expectedShapes(WanVaeConfig.wan21());
        assertEquals(194, s.size());
        long all = 0, encoder = 0;
        for (Map.Entry<String, Shape> e : s.entrySet()) {
            all += e.getValue().numel();
            if (e.getKey().startsWith("encoder.") || e.getKey().startsWith("conv1.")) encoder += e.getValue().numel();
        }
        assertEquals(126_892_531L, all);
        assertEquals(53_596_928L, encoder);
        assertEquals(Shape.of(384, 192, 1, 1, 1), s.get("decoder.upsamples.4.shortcut.weight"));
        assertEquals(Shape.of(768, 384, 3, 1, 1), s.get("decoder.upsamples.3.time_conv.weight"));
        assertEquals(Shape.of(192, 384, 3, 3), s.get("decoder.upsamples.3.resample.1.weight"));
        assertEquals(Shape.of(192, 192, 3, 1, 1), s.get("encoder.downsamples.5.time_conv.weight"));
        assertEquals(8, WanVaeConfig.wan21().spatialFactor());
        assertEquals(4, WanVaeConfig.wan21().temporalFactor());
        assertEquals(21, WanVaeConfig.wan21().latentFrames(81));
        assertEquals(81, WanVaeConfig.wan21().videoFrames(21));
    }

    /** models.md §2.8 and diffusers' convert_wan_vae_to_diffusers, for Wan2.1's structure. */
    @Test void diffusersNamesOfWan21() {
        String[][] pairs = {
            {"conv1.weight", "quant_conv.weight"}, {"conv2.bias", "post_quant_conv.bias"},
            {"encoder.conv1.weight", "encoder.conv_in.weight"}, {"decoder.head.0.gamma", "decoder.norm_out.gamma"},
            {"encoder.head.2.bias", "encoder.conv_out.bias"},
            {"encoder.downsamples.3.shortcut.weight", "encoder.down_blocks.3.conv_shortcut.weight"},
            {"encoder.downsamples.2.resample.1.weight", "encoder.down_blocks.2.resample.1.weight"},
            {"encoder.downsamples.5.time_conv.bias", "encoder.down_blocks.5.time_conv.bias"},
            {"encoder.middle.1.to_qkv.weight", "encoder.mid_block.attentions.0.to_qkv.weight"},
            {"decoder.middle.2.residual.3.gamma", "decoder.mid_block.resnets.1.norm2.gamma"},
            {"decoder.upsamples.2.residual.6.weight", "decoder.up_blocks.0.resnets.2.conv2.weight"},
            {"decoder.upsamples.3.time_conv.weight", "decoder.up_blocks.0.upsamplers.0.time_conv.weight"},
            {"decoder.upsamples.4.shortcut.weight", "decoder.up_blocks.1.resnets.0.conv_shortcut.weight"},
            {"decoder.upsamples.11.resample.1.bias", "decoder.up_blocks.2.upsamplers.0.resample.1.bias"},
            {"decoder.upsamples.12.residual.0.gamma", "decoder.up_blocks.3.resnets.0.norm1.gamma"},
        };
        for (String[] p : pairs) {
            assertEquals(p[1], WanVaeWeights.toDiffusers(p[0], 2), p[0]);
            assertEquals(p[0], WanVaeWeights.fromDiffusers(p[1], 2), p[1]);
        }
        assertNull(WanVaeWeights.fromDiffusers("decoder.conv_in.scale", 2));
        assertThrows(IllegalArgumentException.class, () -> WanVaeWeights.toDiffusers("decoder.up.0.block.0.conv1.weight", 2));
    }

    /** The diffusers names of both reference configs are exactly the names in diffusers' own files, and map back. */
    @Test void diffusersNamesMatchDiffusersFiles() {
        for (Object[] c : new Object[][] {{"a_diffusers", WanVaeTestData.a()}, {"b_diffusers", WanVaeTestData.b()}}) {
            WanVaeConfig cfg = (WanVaeConfig) c[1];
            try (WeightSource w = WeightSource.open(resource((String) c[0]))) {
                Set<String> mapped = new TreeSet<>();
                for (String n : WanVaeWeights.expectedShapes(cfg).keySet()) {
                    String d = WanVaeWeights.toDiffusers(n, cfg.numResBlocks());
                    assertTrue(mapped.add(d), "two names map to " + d);
                    assertEquals(n, WanVaeWeights.fromDiffusers(d, cfg.numResBlocks()));
                    assertEquals(WanVaeWeights.expectedShapes(cfg).get(n), w.info(d).shape(), d);
                }
                assertEquals(w.names(), mapped, c[0] + ": names");
            }
        }
        try (WeightSource w = WeightSource.open(resource("a_original.safetensors"))) {
            assertEquals(new TreeSet<>(WanVaeWeights.expectedShapes(WanVaeTestData.a()).keySet()), w.names());
        }
    }

    @Test void detectsEveryReferenceFile() {
        WanVaeConfig bNoStats = WanVaeTestData.b().withLatentStats(new float[4], new float[] {1, 1, 1, 1});
        Object[][] cases = {
            {"a_original.safetensors", WanVaeTestData.a(), WanVaeWeights.Layout.ORIGINAL, ""},
            {"a_diffusers", WanVaeTestData.a(), WanVaeWeights.Layout.DIFFUSERS, ""},
            {"b_diffusers", bNoStats, WanVaeWeights.Layout.DIFFUSERS, ""},
            {"b_original_prefixed.safetensors", bNoStats, WanVaeWeights.Layout.ORIGINAL, "vae."},
        };
        for (Object[] c : cases) {
            try (WeightSource w = WeightSource.open(resource((String) c[0]))) {
                assertEquals(c[1], WanVaeConfig.detect(w), c[0] + " (shapes only)");
                WanVaeWeights.Reader r = WanVaeWeights.Reader.of(w);
                assertEquals(c[2], r.layout, c[0] + " layout");
                assertEquals(c[3], r.prefix, c[0] + " prefix");
            }
        }
        try (WeightSource w = WeightSource.open(resource("b_diffusers"))) {
            assertEquals(WanVaeTestData.b(), WanVae.readConfig(w, resource("b_diffusers")), "stats from config.json");
        }
    }

    /** Encoder-only and decoder-only files load the half they hold; that half computes what the full model does. */
    @Test void partialCheckpoints() {
        Path dec = rewrite("a_original.safetensors", "dec.safetensors", (n, t) -> n.startsWith("encoder.") || n.startsWith("conv1.") ? null : t);
        Path enc = rewrite("a_original.safetensors", "enc.safetensors", (n, t) -> n.startsWith("decoder.") || n.startsWith("conv2.") ? null : t);
        try (WanVae full = WanVae.load(ops, resource("a_original.safetensors"), DType.F32);
             WanVae d = WanVae.load(ops, dec, DType.F32); WanVae e = WanVae.load(ops, enc, DType.F32);
             WeightSource io = WeightSource.open(resource("a_io.safetensors")); Scope scope = Scope.open()) {
            assertFalse(d.config().hasEncoder());
            assertTrue(d.config().hasDecoder());
            assertTrue(e.config().hasEncoder());
            assertFalse(e.config().hasDecoder());
            assertEquals(WanVaeTestData.a().channels().length, d.config().levels());
            Tensor z = io.tensor("z"), x = io.tensor("x");
            assertArrayEquals(full.decode(z).toFloatArray(), d.decode(z).toFloatArray(), 0f);
            assertArrayEquals(full.encode(x).toFloatArray(), e.encode(x).toFloatArray(), 0f);
            IllegalStateException ex = assertThrows(IllegalStateException.class, () -> d.encode(x));
            assertTrue(ex.getMessage().contains("no encoder weights"), ex.getMessage());
            assertThrows(IllegalStateException.class, () -> e.decode(z));
        }
    }

    /** BF16 weights and activations (the GPU's working precision) through the same code. */
    @Test void bf16ActivationsStayClose() {
        try (WanVae vae = WanVae.load(ops, resource("b_diffusers"), DType.BF16);
             WeightSource io = WeightSource.open(resource("b_io.safetensors")); Scope scope = Scope.open()) {
            Tensor x = ops.cast(io.tensor("x"), DType.BF16), z = ops.cast(io.tensor("z"), DType.BF16);
            Tensor mean = vae.encodeRaw(x), dec = vae.decode(z);
            assertEquals(DType.BF16, dec.dtype());
            double eMean = relL2(mean.toFloatArray(), io.tensor("mean").toFloatArray());
            double eDec = relL2(dec.toFloatArray(), io.tensor("dec_raw").toFloatArray());
            System.out.printf("wanvae BF16 weights+activations vs diffusers F32: rel-L2 mean %.2e decode %.2e%n", eMean, eDec);
            assertTrue(eMean <= 4e-2 && eDec <= 4e-2, "bf16 rel-L2 " + eMean + " / " + eDec + " > 4e-2");
        }
    }

    // ------------------------------------------------------------------------------------------------ errors

    @Test void missingTensorIsNamed() {
        Path p = rewrite("a_original.safetensors", "missing.safetensors",
                (n, t) -> n.equals("decoder.upsamples.4.shortcut.weight") ? null : t);
        String m = loadError(p);
        assertTrue(m.contains("lacks tensor 'decoder.upsamples.4.shortcut.weight'") && m.contains("missing.safetensors")
                && m.contains("expected shape [8, 4, 1, 1, 1]"), m);
    }

    @Test void misshapenTensorIsNamedWithBothShapes() {
        Path p = rewrite("a_diffusers/diffusion_pytorch_model.safetensors", "shape.safetensors",
                (n, t) -> n.equals("decoder.mid_block.attentions.0.to_qkv.bias") ? Tensor.zeros(DType.F32, 23) : t);
        String m = loadError(p);
        assertTrue(m.contains("'decoder.mid_block.attentions.0.to_qkv.bias' (canonical 'decoder.middle.1.to_qkv.bias')")
                && m.contains("shape.safetensors") && m.contains("has shape [23], expected [24]"), m);
    }

    @Test void leftOverTensorsAreRefused() {
        Path p = rewrite("a_original.safetensors", "extra.safetensors", (n, t) -> t,
                Map.of("decoder.upsamples.99.residual.0.gamma", Tensor.zeros(DType.F32, 2, 1, 1, 1)));
        String m = loadError(p);
        assertTrue(m.contains("decoder.upsamples.99.residual.0.gamma") && m.contains("leaves out"), m);
    }

    @Test void integerTensorsAreRefused() {
        Path p = rewrite("a_original.safetensors", "int.safetensors",
                (n, t) -> n.equals("conv2.bias") ? Tensor.zeros(DType.I32, 16) : t);
        String m = loadError(p);
        assertTrue(m.contains("'conv2.bias'") && m.contains("stored as I32"), m);
    }

    @Test void otherModelsAreRefused() {
        String flux = assertThrows(CheckpointException.class,
                () -> WanVae.load(ops, resource("../vae/flux_tiny_bfl.safetensors"), DType.F32)).getMessage();
        assertTrue(flux.contains("not a Wan VAE"), flux);
        Path wan22 = rewrite("a_original.safetensors", "wan22.safetensors", (n, t) -> t,
                Map.of("encoder.downsamples.0.downsamples.0.residual.0.gamma", Tensor.zeros(DType.F32, 2, 1, 1, 1)));
        String m = loadError(wan22);
        assertTrue(m.contains("Wan2.2") && m.contains("encoder.downsamples.0.downsamples.0.residual.0.gamma"), m);
        Path mixed = rewrite("a_original.safetensors", "mixed.safetensors", (n, t) -> t,
                Map.of("decoder.mid_block.resnets.0.norm1.gamma", Tensor.zeros(DType.F32, 8, 1, 1, 1)));
        assertTrue(loadError(mixed).contains("mixes original and diffusers names"), loadError(mixed));
    }

    @Test void configJsonMustAgreeWithTheWeights() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("vae"));
        Files.copy(resource("a_diffusers/diffusion_pytorch_model.safetensors"), dir.resolve("diffusion_pytorch_model.safetensors"));
        String json = Files.readString(resource("a_diffusers/config.json"));
        Files.writeString(dir.resolve("config.json"), json.replace("\"z_dim\": 16", "\"z_dim\": 8"));
        String m = assertThrows(CheckpointException.class, () -> WanVae.load(ops, dir, DType.F32)).getMessage();
        assertTrue(m.contains("z_dim = 8") && m.contains("16") && m.contains("config.json"), m);
        Files.writeString(dir.resolve("config.json"), json.replace("\"is_residual\": false", "\"is_residual\": true"));
        m = assertThrows(CheckpointException.class, () -> WanVae.load(ops, dir, DType.F32)).getMessage();
        assertTrue(m.contains("Wan2.2"), m);
        Files.writeString(dir.resolve("config.json"), json.replace("\"temperal_downsample\": [\n    false,\n    true,\n    true",
                "\"temperal_downsample\": [\n    true,\n    true,\n    false"));
        m = assertThrows(CheckpointException.class, () -> WanVae.load(ops, dir, DType.F32)).getMessage();
        assertTrue(m.contains("temperal_downsample"), m);
    }

    @Test void badInputsAreNamed() {
        try (WanVae vae = WanVae.load(ops, resource("b_diffusers"), DType.F32); Scope scope = Scope.open()) {
            String m = assertThrows(IllegalArgumentException.class, () -> vae.decode(Tensor.zeros(DType.F32, 1, 16, 2, 4, 4)))
                    .getMessage();
            assertTrue(m.contains("[N, 4, F, h, w]") && m.contains("[1, 16, 2, 4, 4]"), m);
            m = assertThrows(IllegalArgumentException.class, () -> vae.encode(Tensor.zeros(DType.F32, 1, 4, 5, 16, 16))).getMessage();
            assertTrue(m.contains("[N, 3, T, H, W]") && m.contains("[1, 4, 5, 16, 16]"), m);
            assertThrows(IllegalArgumentException.class, () -> vae.decodeRaw(Tensor.zeros(DType.F32, 1, 4, 2, 4, 4), 0));
        }
    }

    // ------------------------------------------------------------------------------------------------ helpers

    private String loadError(Path p) {
        return assertThrows(CheckpointException.class, () -> WanVae.load(ops, p, DType.F32)).getMessage();
    }

    private Path rewrite(String from, String to, BiFunction<String, Tensor, Tensor> edit) {
        return rewrite(from, to, edit, Map.of());
    }

    /** A copy of resource {@code from} in the temp folder, each tensor through {@code edit} (null drops it), plus {@code extra}. */
    private Path rewrite(String from, String to, BiFunction<String, Tensor, Tensor> edit, Map<String, Tensor> extra) {
        Path out = tmp.resolve(to);
        try (WeightSource src = WeightSource.open(resource(from))) {
            Map<String, Tensor> m = new LinkedHashMap<>();
            for (String n : src.names()) {
                Tensor t = edit.apply(n, src.tensor(n));
                if (t != null) m.put(n, t);
            }
            m.putAll(extra);
            SafeTensorsWriter.write(out, m, Map.of());
        }
        return out;
    }
}
