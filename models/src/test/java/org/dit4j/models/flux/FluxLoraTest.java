package org.dit4j.models.flux;

import static org.dit4j.models.flux.FluxTestData.relL2;
import static org.dit4j.models.flux.FluxTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.flux.lora.FluxLoras;
import org.dit4j.models.flux.lora.LoraFile;
import org.dit4j.models.flux.lora.LoraSpec;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * LoRA merging into Flux weights ({@link FluxLoras}): against diffusers' own LoRA loading and fusion
 * (scripts/reference/flux_lora_reference.py), against ΔW = s·alpha/r·B·A computed here for every key style, and the
 * errors for files that do not fit.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxLoraTest {
    /**
     * Fused weights: both sides add a float32 ΔW to float32 weights; they differ only in the order of the rank-sized
     * sums and of the alpha scaling (diffusers' kohya path pre-scales A), a few float32 ulps of |W| ≤ 2.
     */
    static final double WEIGHT_TOL = 1e-6;
    /** Forward output of the LoRA-merged model vs the same transformer run on diffusers' fused weights. */
    static final double OUT_TOL = 1e-5;
    /**
     * Forward output vs diffusers' fused model: the transformers' own float32 disagreement (6.5e-6 unpatched on these
     * inputs, FluxTransformerTest allows 1e-4), which grows with the LoRA-enlarged weights.
     */
    static final double DIFFUSERS_OUT_TOL = 5e-5;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @TempDir Path tmp;

    static final FluxConfig CFG = FluxTestData.tinyDev();
    static final int D = 32, MLP = 128;

    // ------------------------------------------------------------------------------------------------ vs diffusers

    @ParameterizedTest(name = "{0}: {1}")
    @CsvSource({"peft, peft:0.8", "rslora, rslora:1", "alphas, alphas:1", "kohya, kohya:0.7", "comfy, comfy:1.3", "xlabs, xlabs:1",
                "peft_kohya, peft:0.8 kohya:0.7"})
    void matchesDiffusersFusion(String fusedName, String loras) {
        List<LoraSpec> specs = new ArrayList<>();
        for (String s : loras.split(" ")) {
            String[] p = s.split(":");
            specs.add(new LoraSpec(resource("lora/lora_" + p[0] + ".safetensors"), Float.parseFloat(p[1])));
        }
        Path expectedFile = tmp.resolve("expected.safetensors");
        try (WeightSource base = WeightSource.open(resource("flux_dev_diffusers"));
             WeightSource fused = WeightSource.open(resource("lora/fused_" + fusedName + ".safetensors"));
             WeightSource io = WeightSource.open(resource("flux_dev_io.safetensors"));
             Scope scope = Scope.open()) {
            // diffusers' fused model = the base checkpoint with the tensors the fusion changed replaced
            Map<String, Tensor> all = new TreeMap<>();
            for (String n : base.names()) all.put(n, base.tensor(n));
            for (String n : fused.names()) {
                if (n.equals("out")) continue;
                assertTrue(all.containsKey(n), "fused tensor " + n + " is not a base tensor");
                all.put(n, fused.tensor(n));
            }
            SafeTensorsWriter.write(expectedFile, all, Map.of());
            try (WeightSource exp = WeightSource.open(expectedFile);
                 FluxLoras patch = FluxLoras.open(specs, CFG, false);
                 FluxWeights got = FluxWeights.load(ops, base, CFG, DType.F32, patch);
                 FluxWeights want = FluxWeights.load(ops, exp, CFG, DType.F32);
                 FluxWeights plain = FluxWeights.load(ops, base, CFG, DType.F32)) {
                double worst = 0;
                String worstName = null;
                int changed = 0;
                for (String name : want.names()) {
                    float[] g = host(got.tensor(name)), w = host(want.tensor(name)), b = host(plain.tensor(name));
                    boolean differs = false;
                    for (int i = 0; i < w.length; i++) {
                        double d = Math.abs(g[i] - w[i]);
                        if (d > worst) {
                            worst = d;
                            worstName = name;
                        }
                        differs |= w[i] != b[i];
                    }
                    if (!differs) assertArrayEquals(b, g, name + " is not patched by diffusers and must stay bit-identical");
                    if (differs) changed++;
                    assertEquals(differs, patch.names().contains(name), name + ": patched by one side only");
                }
                float[] out = ops.toHost(FluxTestData.forward(ops, new FluxTransformer(ops, got), io)).toFloatArray();
                float[] outFused = ops.toHost(FluxTestData.forward(ops, new FluxTransformer(ops, want), io)).toFloatArray();
                double err = relL2(out, outFused), errDiffusers = relL2(out, fused.tensor("out").toFloatArray());
                double moved = relL2(io.tensor("out").toFloatArray(), fused.tensor("out").toFloatArray());
                System.out.printf("lora %-11s %2d canonical tensors changed, max|dit4j - diffusers| %.3e%s, output rel-L2 %.3e "
                        + "vs the fused weights, %.3e vs diffusers (the LoRA moved it by %.3f)%n", fusedName, changed, worst,
                        worstName == null ? "" : " (" + worstName + ")", err, errDiffusers, moved);
                assertTrue(changed > 0);
                assertTrue(worst <= WEIGHT_TOL, "max weight difference " + worst + " at " + worstName);
                assertTrue(err <= OUT_TOL, "output rel-L2 vs the fused weights " + err);
                assertTrue(errDiffusers <= DIFFUSERS_OUT_TOL, "output rel-L2 vs diffusers " + errDiffusers);
                assertTrue(moved > 0.01, "the LoRA should change the output visibly, got " + moved);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ vs ΔW here

    /** A module of the tiny model: canonical weight, the rows it covers, its input width. */
    record Mod(String bfl, String diffusers, long row0, long rows, long cols, boolean swap) {}

    /** One module of each kind, incl. split parts; (bfl name, diffusers name, row0, rows, cols, swap). */
    static final List<Mod> MODS = List.of(
            new Mod("double_blocks.0.img_attn.qkv", null, 0, 3 * D, D, false),
            new Mod("double_blocks.1.txt_attn.qkv", "transformer_blocks.1.attn.add_k_proj", D, D, D, false),
            new Mod("double_blocks.0.img_attn.qkv", "transformer_blocks.0.attn.to_v", 2 * D, D, D, false),
            new Mod("single_blocks.1.linear1", "single_transformer_blocks.1.proj_mlp", 3 * D, MLP, D, false),
            new Mod("single_blocks.0.linear1", "single_transformer_blocks.0.attn.to_q", 0, D, D, false),
            new Mod("single_blocks.0.linear2", "single_transformer_blocks.0.proj_out", 0, D, D + MLP, false),
            new Mod("double_blocks.1.txt_mlp.2", "transformer_blocks.1.ff_context.net.2", 0, D, MLP, false),
            new Mod("double_blocks.0.img_mod.lin", "transformer_blocks.0.norm1.linear", 0, 6 * D, D, false),
            new Mod("final_layer.adaLN_modulation.1", "norm_out.linear", 0, 2 * D, D, true),
            new Mod("final_layer.linear", "proj_out", 0, 64, D, false),
            new Mod("guidance_in.in_layer", "time_text_embed.guidance_embedder.linear_1", 0, D, 256, false),
            new Mod("vector_in.out_layer", "time_text_embed.text_embedder.linear_2", 0, D, D, false));

    enum Naming {
        BFL_BARE, BFL_DIFFUSION_MODEL, BFL_MODEL_DIFFUSION_MODEL, KOHYA, DIFFUSERS, DIFFUSERS_BARE, ONETRAINER, LYCORIS;

        /** The module name, or null when this naming cannot express the module. */
        String name(Mod m) {
            boolean bfl = ordinal() <= KOHYA.ordinal();
            if (bfl && m.diffusers() != null && (m.row0() != 0 || m.rows() != rowsOf(m.bfl()))) return null;  // a split part
            if (!bfl && m.diffusers() == null) return null;
            return switch (this) {
                case BFL_BARE -> m.bfl();
                case BFL_DIFFUSION_MODEL -> "diffusion_model." + m.bfl();
                case BFL_MODEL_DIFFUSION_MODEL -> "model.diffusion_model." + m.bfl();
                case KOHYA -> "lora_unet_" + m.bfl().replace('.', '_');
                case DIFFUSERS -> "transformer." + m.diffusers();
                case DIFFUSERS_BARE -> m.diffusers();
                case ONETRAINER -> "lora_transformer_" + m.diffusers().replace('.', '_');
                case LYCORIS -> "lycoris_" + m.diffusers().replace('.', '_');
            };
        }

        /** Whether rows come in diffusers' order (the final modulation's halves swapped). */
        boolean diffusersOrder() { return ordinal() > KOHYA.ordinal(); }
    }

    static long rowsOf(String bfl) { return FluxWeights.expectedShapes(CFG).get(bfl + ".weight").dim(0); }

    @ParameterizedTest
    @CsvSource({"BFL_BARE, .lora_A.weight, .lora_B.weight", "BFL_DIFFUSION_MODEL, .lora_down.weight, .lora_up.weight",
                "BFL_MODEL_DIFFUSION_MODEL, .lora.down.weight, .lora.up.weight", "KOHYA, .lora_down.weight, .lora_up.weight",
                "DIFFUSERS, .lora_A.weight, .lora_B.weight", "DIFFUSERS_BARE, .lora_A.default.weight, .lora_B.default.weight",
                "ONETRAINER, .lora_down.weight, .lora_up.weight", "LYCORIS, .lora_down.weight, .lora_up.weight"})
    void mergesIndependentlyComputedDeltas(Naming naming, String downSuffix, String upSuffix) {
        Random rnd = new Random(naming.ordinal() * 31L + 7);
        float strength = 0.75f;
        Map<String, Tensor> file = new LinkedHashMap<>();
        Map<String, double[]> expectedDelta = new LinkedHashMap<>();    // canonical weight -> ΔW [rows × cols]
        Path lora = tmp.resolve("lora.safetensors");
        try (Scope scope = Scope.open()) {
            int n = 0;
            for (Mod m : MODS) {
                String name = naming.name(m);
                if (name == null) continue;
                int rank = 1 + (n % 4);
                Float alpha = n % 3 == 0 ? null : (float) (n % 5 + 1);
                DType dt = n % 2 == 0 ? DType.BF16 : DType.F32;
                Tensor a = random(rnd, dt, 1 / Math.sqrt(m.cols()), rank, m.cols());
                Tensor b = random(rnd, dt, 0.3, m.rows(), rank);
                file.put(name + downSuffix, a);
                file.put(name + upSuffix, b);
                if (alpha != null) file.put(name + ".alpha", Tensor.of(new float[] {alpha}));
                double scale = strength * (alpha == null ? 1 : alpha / rank);
                double[] d = times(b, a);
                if (m.swap() && naming.diffusersOrder()) d = swapHalves(d, m.rows(), m.cols());
                long total = rowsOf(m.bfl());
                double[] full = expectedDelta.computeIfAbsent(m.bfl() + ".weight", k -> new double[(int) (total * m.cols())]);
                for (int i = 0; i < d.length; i++) full[(int) (m.row0() * m.cols()) + i] += scale * d[i];
                n++;
            }
            SafeTensorsWriter.write(lora, file, Map.of());
        }
        try (WeightSource base = WeightSource.open(resource("flux_dev_diffusers"));
             FluxLoras patch = FluxLoras.open(List.of(new LoraSpec(lora, strength)), CFG, false);
             FluxWeights got = FluxWeights.load(ops, base, CFG, DType.F32, patch);
             FluxWeights plain = FluxWeights.load(ops, base, CFG, DType.F32)) {
            assertEquals(expectedDelta.keySet(), patch.names());
            double worst = 0;
            for (String name : plain.names()) {
                float[] g = host(got.tensor(name)), b = host(plain.tensor(name));
                double[] d = expectedDelta.get(name);
                if (d == null) {
                    assertArrayEquals(b, g, name);
                    continue;
                }
                for (int i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - (b[i] + d[i])));
            }
            LoraFile f = patch.files().get(0);
            System.out.printf("lora %-26s %-50s max|merged - (W + ΔW)| %.3e%n", naming, f.summary(), worst);
            assertTrue(worst <= WEIGHT_TOL, naming + ": " + worst);
            assertEquals(1, f.styles().size());
        }
    }

    /** ComfyUI's BFL names with the kohya-style suffixes, the PEFT suffixes, with and without prefix: the same merge. */
    @Test void bflNamingVariantsMergeIdentically() {
        try (WeightSource src = WeightSource.open(resource("lora/lora_comfy.safetensors")); Scope scope = Scope.open()) {
            Map<String, Tensor> peft = new TreeMap<>(), bare = new TreeMap<>();
            for (String k : src.names()) {
                String p = k.replace(".lora_down.weight", ".lora_A.weight").replace(".lora_up.weight", ".lora_B.weight");
                peft.put("model." + p, src.tensor(k));
                bare.put(p.substring("diffusion_model.".length()), src.tensor(k));
            }
            SafeTensorsWriter.write(tmp.resolve("peft.safetensors"), peft, Map.of());
            SafeTensorsWriter.write(tmp.resolve("bare.safetensors"), bare, Map.of());
        }
        try (WeightSource base = WeightSource.open(resource("flux_dev_bfl.safetensors"));
             FluxLoras a = FluxLoras.open(List.of(new LoraSpec(resource("lora/lora_comfy.safetensors"), 1.3f)), CFG, false);
             FluxLoras b = FluxLoras.open(List.of(new LoraSpec(tmp.resolve("peft.safetensors"), 1.3f)), CFG, false);
             FluxLoras c = FluxLoras.open(List.of(new LoraSpec(tmp.resolve("bare.safetensors"), 1.3f)), CFG, false);
             FluxWeights wa = FluxWeights.load(ops, base, CFG, DType.F32, a);
             FluxWeights wb = FluxWeights.load(ops, base, CFG, DType.F32, b);
             FluxWeights wc = FluxWeights.load(ops, base, CFG, DType.F32, c)) {
            assertEquals(a.names(), b.names());
            assertEquals(a.names(), c.names());
            for (String n : wa.names()) {
                assertArrayEquals(host(wa.tensor(n)), host(wb.tensor(n)), n);
                assertArrayEquals(host(wa.tensor(n)), host(wc.tensor(n)), n);
            }
        }
    }

    /** PEFT lora_B.bias, ComfyUI .diff / .diff_b, several LoRAs on one tensor, negative strength. */
    @Test void biasesDiffsAndSeveralLoras() {
        Random rnd = new Random(5);
        Path f1 = tmp.resolve("one.safetensors"), f2 = tmp.resolve("two.safetensors");
        double[] dq, dqBias, diff, diffB, dk;
        try (Scope scope = Scope.open()) {
            Tensor a = random(rnd, DType.F32, 0.2, 2, D), b = random(rnd, DType.F32, 0.3, D, 2), bb = random(rnd, DType.F32, 0.1, D);
            Tensor df = random(rnd, DType.F16, 0.05, D, D + MLP), dfb = random(rnd, DType.F32, 0.05, 2 * D);
            Map<String, Tensor> one = new LinkedHashMap<>();
            one.put("transformer.transformer_blocks.1.attn.to_q.lora_A.weight", a);
            one.put("transformer.transformer_blocks.1.attn.to_q.lora_B.weight", b);
            one.put("transformer.transformer_blocks.1.attn.to_q.lora_B.bias", bb);
            one.put("transformer.transformer_blocks.1.attn.to_q.alpha", Tensor.of(new float[] {4f}));
            one.put("diffusion_model.single_blocks.1.linear2.diff", df);
            one.put("transformer.norm_out.linear.diff_b", dfb);
            SafeTensorsWriter.write(f1, one, Map.of());
            dq = scaled(times(b, a), 2.0);                     // alpha 4 / rank 2
            dqBias = scaled(doubles(bb), 2.0);
            diff = doubles(df);
            diffB = swapHalves(doubles(dfb), 2 * D, 1);       // diffusers (scale, shift) → BFL (shift, scale)
            Tensor a2 = random(rnd, DType.BF16, 0.2, 3, D), b2 = random(rnd, DType.BF16, 0.3, 3 * D, 3);
            SafeTensorsWriter.write(f2, Map.of("lora_unet_double_blocks_1_img_attn_qkv.lora_down.weight", a2,
                    "lora_unet_double_blocks_1_img_attn_qkv.lora_up.weight", b2), Map.of());
            dk = times(b2, a2);
        }
        float s1 = 0.5f, s2 = -1.25f;
        try (WeightSource base = WeightSource.open(resource("flux_dev_diffusers"));
             FluxLoras patch = FluxLoras.open(List.of(new LoraSpec(f1, s1), new LoraSpec(f2, s2)), CFG, false);
             FluxWeights got = FluxWeights.load(ops, base, CFG, DType.F32, patch);
             FluxWeights plain = FluxWeights.load(ops, base, CFG, DType.F32)) {
            assertEquals(Set.of("double_blocks.1.img_attn.qkv.weight", "double_blocks.1.img_attn.qkv.bias", "single_blocks.1.linear2.weight",
                    "final_layer.adaLN_modulation.1.bias"), patch.names());
            double[] qkv = scaled(dk, s2);
            for (int i = 0; i < D * D; i++) qkv[i] += s1 * dq[i];
            double[] qkvBias = new double[3 * D];
            for (int i = 0; i < D; i++) qkvBias[i] = s1 * dqBias[i];
            check(got, plain, "double_blocks.1.img_attn.qkv.weight", qkv);
            check(got, plain, "double_blocks.1.img_attn.qkv.bias", qkvBias);
            check(got, plain, "single_blocks.1.linear2.weight", scaled(diff, s1));
            check(got, plain, "final_layer.adaLN_modulation.1.bias", scaled(diffB, s1));
        }
    }

    /** BF16 weights: the merge happens in F32 and is rounded once; fp8 weights: dequantized, merged, kept as BF16. */
    @Test void roundsOnceAndKeepsMergedFp8AsBf16() {
        Path lora = resource("lora/lora_kohya.safetensors"), fp8 = tmp.resolve("fp8.safetensors");
        try (WeightSource bf = WeightSource.open(resource("flux_dev_bfl.safetensors")); Scope scope = Scope.open()) {
            Map<String, Tensor> t = new TreeMap<>();
            for (String n : bf.names()) {
                Tensor x = bf.tensor(n);
                t.put(n, x.rank() == 2 ? ops.toHost(ops.cast(ops.upload(x), DType.F8_E4M3)) : x);
            }
            SafeTensorsWriter.write(fp8, t, Map.of());
        }
        for (String file : new String[] {"bf16", "fp8"}) {
            Path weights = file.equals("bf16") ? resource("flux_dev_bfl.safetensors") : fp8;
            DType dtype = file.equals("bf16") ? DType.BF16 : DType.F8_E4M3;
            try (WeightSource base = WeightSource.open(weights);
                 FluxLoras patch = FluxLoras.open(List.of(new LoraSpec(lora, 0.7f)), CFG, false);
                 FluxWeights low = FluxWeights.load(ops, base, CFG, dtype, patch);
                 FluxWeights f32 = FluxWeights.load(ops, base, CFG, DType.F32, patch);
                 FluxWeights plain = FluxWeights.load(ops, base, CFG, dtype);
                 Scope scope = Scope.open()) {
                for (String n : low.names()) {
                    Tensor got = low.tensor(n);
                    if (patch.names().contains(n)) {
                        assertEquals(DType.BF16, got.dtype(), n);
                        Tensor once = ops.toHost(ops.cast(f32.tensor(n), DType.BF16));
                        assertArrayEquals(once.toFloatArray(), host(got), file + " " + n + ": not the F32 merge rounded once");
                    } else {
                        assertEquals(plain.tensor(n).dtype(), got.dtype(), n);
                        assertArrayEquals(host(plain.tensor(n)), host(got), n);
                    }
                }
                assertEquals(15, patch.names().size());
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ errors

    @Test void unknownKeysAreAnErrorUnlessIgnored() {
        Path f = tmp.resolve("mixed.safetensors");
        try (Scope scope = Scope.open()) {
            Random rnd = new Random(1);
            Map<String, Tensor> t = new LinkedHashMap<>();
            t.put("lora_unet_double_blocks_0_img_attn_proj.lora_down.weight", random(rnd, DType.F32, 0.1, 2, D));
            t.put("lora_unet_double_blocks_0_img_attn_proj.lora_up.weight", random(rnd, DType.F32, 0.1, D, 2));
            t.put("lora_unet_double_blocks_0_img_attn_norm_query_norm.lora_down.weight", random(rnd, DType.F32, 0.1, 2, D));
            t.put("lora_unet_double_blocks_0_img_attn_norm_query_norm.lora_up.weight", random(rnd, DType.F32, 0.1, D, 2));
            t.put("lora_unet_single_blocks_7_linear2.lora_down.weight", random(rnd, DType.F32, 0.1, 2, D + MLP));
            t.put("lora_unet_single_blocks_7_linear2.lora_up.weight", random(rnd, DType.F32, 0.1, D, 2));
            t.put("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", random(rnd, DType.F32, 0.1, 2, 8));
            t.put("lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", random(rnd, DType.F32, 0.1, 8, 2));
            SafeTensorsWriter.write(f, t, Map.of());
        }
        CheckpointException e = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(f, 1f)), CFG, false));
        assertTrue(e.getMessage().contains("lora_unet_double_blocks_0_img_attn_norm_query_norm.lora_down.weight (unknown)"), e.getMessage());
        assertTrue(e.getMessage().contains("targets single block 7, the model has 2"), e.getMessage());
        assertTrue(e.getMessage().contains("text-encoder tensors"), e.getMessage());
        assertTrue(e.getMessage().contains("--lora-ignore-unknown"), e.getMessage());
        try (FluxLoras l = FluxLoras.open(List.of(new LoraSpec(f, 1f)), CFG, true)) {
            assertEquals(Set.of("double_blocks.0.img_attn.proj.weight"), l.names());
            assertEquals(1, l.notes().size());
            assertTrue(l.notes().get(0).contains("4 tensor groups not applied"), l.notes().get(0));
        }
    }

    @Test void otherModelFamiliesAndAdaptersAreNamed() {
        Path sdxl = tmp.resolve("sdxl.safetensors"), dora = tmp.resolve("dora.safetensors"), wide = tmp.resolve("wide.safetensors");
        Path schnellOnly = tmp.resolve("guidance.safetensors"), zeroTe = tmp.resolve("zerote.safetensors"), half = tmp.resolve("half.safetensors");
        try (Scope scope = Scope.open()) {
            Random rnd = new Random(2);
            SafeTensorsWriter.write(sdxl, Map.of(
                    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k.lora_down.weight", random(rnd, DType.F32, 0.1, 2, 8),
                    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k.lora_up.weight", random(rnd, DType.F32, 0.1, 8, 2),
                    "lora_unet_down_blocks_1_attentions_0_proj_in.alpha", Tensor.of(new float[] {1f})), Map.of());
            SafeTensorsWriter.write(dora, Map.of(
                    "transformer.proj_out.lora_A.weight", random(rnd, DType.F32, 0.1, 2, D),
                    "transformer.proj_out.lora_B.weight", random(rnd, DType.F32, 0.1, 64, 2),
                    "transformer.proj_out.lora_magnitude_vector", random(rnd, DType.F32, 0.1, 64)), Map.of());
            SafeTensorsWriter.write(wide, Map.of(   // a LoRA of a 3072-wide Flux on the 32-wide test model
                    "lora_unet_double_blocks_0_img_attn_proj.lora_down.weight", random(rnd, DType.F32, 0.1, 2, 3072),
                    "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight", random(rnd, DType.F32, 0.1, 3072, 2)), Map.of());
            SafeTensorsWriter.write(schnellOnly, Map.of(
                    "lora_unet_guidance_in_in_layer.lora_down.weight", random(rnd, DType.F32, 0.1, 2, 256),
                    "lora_unet_guidance_in_in_layer.lora_up.weight", random(rnd, DType.F32, 0.1, D, 2)), Map.of());
            SafeTensorsWriter.write(zeroTe, Map.of(
                    "lora_unet_final_layer_linear.lora_down.weight", random(rnd, DType.F32, 0.1, 2, D),
                    "lora_unet_final_layer_linear.lora_up.weight", random(rnd, DType.F32, 0.1, 64, 2),
                    "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", random(rnd, DType.F32, 0.1, 2, 8),
                    "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", Tensor.zeros(DType.BF16, 8, 2)), Map.of());
            SafeTensorsWriter.write(half, Map.of(
                    "transformer.proj_out.lora_A.weight", random(rnd, DType.F32, 0.1, 2, D)), Map.of());
        }
        Path control = tmp.resolve("control.safetensors");
        try (Scope scope = Scope.open()) {     // BFL's FLUX.1-Depth-dev-lora layout: img_in widened to 128 inputs, norm scales set
            Random rnd = new Random(3);
            SafeTensorsWriter.write(control, Map.of(
                    "img_in.lora_A.weight", random(rnd, DType.BF16, 0.1, 2, 128), "img_in.lora_B.weight", random(rnd, DType.BF16, 0.1, D, 2),
                    "double_blocks.0.img_attn.norm.query_norm.scale", random(rnd, DType.BF16, 0.1, 16)), Map.of());
        }
        String m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(control, 1f)), CFG, true)).getMessage();
        assertTrue(m.contains("Flux Control LoRA") && m.contains("128 inputs"), m);
        m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(sdxl, 1f)), CFG, true)).getMessage();
        assertTrue(m.contains("no tensor for a Flux.1 transformer") && m.contains("Stable Diffusion 1.x/2.x/XL (UNet)"), m);
        m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(dora, 1f)), CFG, true)).getMessage();
        assertTrue(m.contains("DoRA") && m.contains("lora_magnitude_vector"), m);
        m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(wide, 1f)), CFG, true)).getMessage();
        assertTrue(m.contains("[2, 3072]") && m.contains("trained for another model"), m);
        FluxConfig schnell = CFG.withGuidanceEmbed(false);
        m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(schnellOnly, 1f)), schnell, true)).getMessage();
        assertTrue(m.contains("guidance embedder"), m);
        m = assertThrows(CheckpointException.class, () -> FluxLoras.open(List.of(new LoraSpec(half, 1f)), CFG, true)).getMessage();
        assertTrue(m.contains("'transformer.proj_out.lora_A.weight' has no matching up (B) tensor"), m);
        try (FluxLoras off = FluxLoras.open(List.of(new LoraSpec(zeroTe, 0f)), CFG, false)) {   // strength 0: checked, nothing patched
            assertTrue(off.names().isEmpty());
        }
        try (FluxLoras l = FluxLoras.open(List.of(new LoraSpec(zeroTe, 1f)), CFG, false)) {      // an all-zero text-encoder part is no loss
            assertEquals(Set.of("final_layer.linear.weight"), l.names());
            assertTrue(l.notes().isEmpty());
            assertTrue(l.describe().get(0).contains("kohya, 1 low-rank pair (rank 2), 2 text-encoder tensors (all zero); changes 1 weight tensors"),
                    l.describe().get(0));
        }
    }

    @Test void styleDetectionOfTheReferenceFiles() {
        String[][] cases = {{"peft", "diffusers/PEFT", "17 low-rank pairs (rank 2/4/6, alpha 2/3/8)"}, {"kohya", "kohya", "15 low-rank pairs"},
                            {"comfy", "BFL/ComfyUI", "8 low-rank pairs"}, {"xlabs", "XLabs", "6 low-rank pairs (rank 2/4)"},
                            {"alphas", "diffusers/PEFT", "10 low-rank pairs (rank 2/3/4, alpha 1/2/4/8)"}};
        for (String[] c : cases) {
            try (WeightSource w = WeightSource.open(resource("lora/lora_" + c[0] + ".safetensors"))) {
                LoraFile f = LoraFile.read(w);
                assertTrue(LoraFile.looksLikeLora(w));
                assertTrue(f.summary().startsWith(c[1] + ", " + c[2]), c[0] + ": " + f.summary());
                assertTrue(f.unknownKeys().isEmpty(), c[0] + ": " + f.unknownKeys());
            }
        }
        try (WeightSource w = WeightSource.open(resource("lora/lora_peft.safetensors"))) {
            // PEFT metadata: lora_alpha 8, alpha_pattern {transformer_blocks.0.attn.to_k: 2, ^norm_out.linear: 3}
            Map<String, Double> scale = new TreeMap<>();
            for (LoraFile.Entry e : LoraFile.read(w).entries()) scale.put(e.module(), e.scale());
            assertEquals(2.0, scale.get("transformer.transformer_blocks.0.attn.to_q"));
            assertEquals(0.5, scale.get("transformer.transformer_blocks.0.attn.to_k"));
            assertEquals(0.75, scale.get("transformer.norm_out.linear"));
            assertEquals(4.0, scale.get("transformer.proj_out"));                      // rank 2 (rank_pattern)
            assertEquals(8.0 / 6, scale.get("transformer.single_transformer_blocks.1.proj_mlp"), 1e-12);
        }
        assertEquals(EnumSet.of(LoraFile.Style.XLABS), styles("xlabs"));
    }

    @Test void parsesLoraArguments() {
        assertEquals(new LoraSpec(Path.of("a/b.safetensors"), 0.8f), LoraSpec.parse("a/b.safetensors:0.8"));
        assertEquals(new LoraSpec(Path.of("b.safetensors"), 1f), LoraSpec.parse("b.safetensors"));
        assertEquals(new LoraSpec(Path.of("b.safetensors"), -0.5f), LoraSpec.parse("b.safetensors:-0.5"));
        assertEquals(new LoraSpec(Path.of("b.safetensors"), 1.5e-1f), LoraSpec.parse("b.safetensors:1.5e-1"));
        assertEquals(new LoraSpec(Path.of("C:\\loras\\x.safetensors"), 1f), LoraSpec.parse("C:\\loras\\x.safetensors"));
        assertEquals(new LoraSpec(Path.of("C:\\x.safetensors"), 2f), LoraSpec.parse("C:\\x.safetensors:2"));
        assertThrows(IllegalArgumentException.class, () -> LoraSpec.parse(" "));
        assertThrows(IllegalArgumentException.class, () -> new LoraSpec(Path.of("x"), Float.NaN));
    }

    // ------------------------------------------------------------------------------------------------ helpers

    static Set<LoraFile.Style> styles(String name) {
        try (WeightSource w = WeightSource.open(resource("lora/lora_" + name + ".safetensors"))) {
            return LoraFile.read(w).styles();
        }
    }

    static void check(FluxWeights got, FluxWeights plain, String name, double[] delta) {
        float[] g = host(got.tensor(name)), b = host(plain.tensor(name));
        assertEquals(delta.length, g.length, name);
        double worst = 0;
        for (int i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - (b[i] + delta[i])));
        assertTrue(worst <= WEIGHT_TOL, name + ": " + worst);
    }

    static float[] host(Tensor t) { return ops.toHost(t).toFloatArray(); }

    static Tensor random(Random rnd, DType dt, double std, long... dims) {
        long n = 1;
        for (long d : dims) n *= d;
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * std);
        return Tensor.of(dt, v, dims);
    }

    /** b [m, r] · a [r, n] in double from the stored values. */
    static double[] times(Tensor b, Tensor a) {
        int m = (int) b.dim(0), r = (int) b.dim(1), n = (int) a.dim(1);
        float[] bv = b.toFloatArray(), av = a.toFloatArray();
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int k = 0; k < r; k++)
                for (int j = 0; j < n; j++) out[i * n + j] += (double) bv[i * r + k] * av[k * n + j];
        return out;
    }

    static double[] doubles(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    static double[] scaled(double[] x, double s) {
        double[] o = new double[x.length];
        for (int i = 0; i < x.length; i++) o[i] = s * x[i];
        return o;
    }

    static double[] swapHalves(double[] x, long rows, long cols) {
        double[] o = new double[x.length];
        int half = (int) (rows / 2 * cols);
        System.arraycopy(x, half, o, 0, half);
        System.arraycopy(x, 0, o, half, half);
        return o;
    }
}
