package org.dit4j.models.wan;

import static org.dit4j.models.wan.WanTestData.relL2;
import static org.dit4j.models.wan.WanTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The Wan transformer on the CPU backend against diffusers' WanTransformer3DModel (float32 reference). */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanTransformerTest {
    /** Both sides compute in float32; the reference's own f32-vs-f64 error is ≈3e-7. */
    static final double TOLERANCE = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @ParameterizedTest(name = "{0} ({1})")
    @CsvSource({
        "wan_a_diffusers,                  diffusers folder F32,   wan_a_io.safetensors",
        "wan_a_original.safetensors,       original BF16,          wan_a_io.safetensors",
        "wan_b_diffusers.safetensors,      diffusers BF16,         wan_b_io.safetensors",
        "wan_b_comfy_prefixed.safetensors, ComfyUI prefixed F32,   wan_b_io.safetensors",
    })
    void matchesDiffusers(String weights, String layout, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             Scope scope = Scope.open()) {
            WanConfig cfg = WanConfig.detect(w, 2);
            try (WanWeights ww = WanWeights.load(ops, w, cfg, DType.F32)) {
                Tensor out = ops.toHost(WanTestData.forward(ops, new WanTransformer(ops, ww), io, DType.F32));
                Tensor ref = io.tensor("out");
                assertEquals(ref.shape(), out.shape());
                double err = relL2(out.toFloatArray(), ref.toFloatArray());
                double err64 = relL2(out.toFloatArray(), io.tensor("out_f64").toFloatArray());
                System.out.printf("wan %-34s %-22s rel-L2 %.3e (vs f64 %.3e)%n", weights, layout, err, err64);
                assertTrue(err <= TOLERANCE, weights + ": rel-L2 " + err + " > " + TOLERANCE);
            }
        }
    }

    /**
     * BF16 weights and activations (F32 time MLP, modulation tables and cross-attention norm, as diffusers keeps them):
     * the error against the float32 reference may be at most twice what diffusers' own bf16 run of the same model gets
     * ("out_bf16", measured on the CPU: 4.9e-3 for a, 6.2e-3 for b).
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"wan_a_original.safetensors, wan_a_io.safetensors", "wan_b_diffusers.safetensors, wan_b_io.safetensors"})
    void bf16ForwardIsAsCloseAsDiffusersBf16(String weights, String ioFile) {
        try (WeightSource w = WeightSource.open(resource(weights)); WeightSource io = WeightSource.open(resource(ioFile));
             WanWeights ww = WanWeights.load(ops, w, WanConfig.detect(w, 2), DType.BF16);
             Scope scope = Scope.open()) {
            Tensor out = WanTestData.forward(ops, new WanTransformer(ops, ww), io, DType.BF16);
            assertEquals(DType.BF16, out.dtype());
            float[] ref = io.tensor("out").toFloatArray();
            double err = relL2(ops.toHost(out).toFloatArray(), ref);
            double diffusersErr = relL2(io.tensor("out_bf16").toFloatArray(), ref);
            System.out.printf("wan %-30s BF16 rel-L2 %.3e (diffusers bf16: %.3e)%n", weights, err, diffusersErr);
            assertTrue(err <= 2 * diffusersErr, "bf16 rel-L2 " + err + " > 2 × diffusers' bf16 rel-L2 " + diffusersErr);
        }
    }

    /** The patch embedding as a linear over flattened patches equals the Conv3d (kernel = stride = patch) it replaces. */
    @Test void patchEmbeddingEqualsConv3d() {
        try (WeightSource w = WeightSource.open(resource("wan_a_original.safetensors"));
             WeightSource io = WeightSource.open(resource("wan_a_io.safetensors"));
             WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyA(), DType.F32);
             Scope scope = Scope.open()) {
            WanTransformer model = new WanTransformer(ops, ww);
            Tensor latent = ops.upload(io.tensor("latent"));                                  // [2, 16, 3, 8, 8]
            Tensor conv = ops.conv3d(latent, ww.tensor("patch_embedding.weight"), ww.tensor("patch_embedding.bias"),
                    new int[] {1, 2, 2}, new int[] {0, 0, 0});                                 // [2, 32, 3, 4, 4]
            Tensor want = ops.permute(ops.reshape(conv, 2, 32, 48), 0, 2, 1);                  // [2, 48, 32]
            Tensor got = ops.linear(model.patchify(latent), ww.tensor("patch_embedding.weight").view(32, 64),
                    ww.tensor("patch_embedding.bias"));
            assertEquals(want.shape(), got.shape());
            double err = relL2(ops.toHost(got).toFloatArray(), ops.toHost(want).toFloatArray());
            assertTrue(err <= 1e-6, "linear-on-patches vs conv3d: rel-L2 " + err);
        }
    }

    /** prepare + embedText + forwardEmbedded (the capturable path) is the same computation as forward. */
    @Test void preparedForwardEqualsForwardAndKeepsOnlyItsOutput() {
        try (WeightSource w = WeightSource.open(resource("wan_b_diffusers.safetensors"));
             WeightSource io = WeightSource.open(resource("wan_b_io.safetensors"));
             WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyB(), DType.F32);
             Scope scope = Scope.open()) {
            WanTransformer model = new WanTransformer(ops, ww);
            Tensor latent = ops.upload(io.tensor("latent")), context = ops.upload(io.tensor("context"));
            int before = scope.size();
            Tensor out = model.forward(latent, io.tensor("timesteps"), context);
            assertEquals(before + 1, scope.size(), "a forward must leave exactly its output in the caller's scope");
            float[] direct = ops.toHost(out).toFloatArray();
            try (WanTransformer.Conditioning c = model.prepare(io.tensor("timesteps").toFloatArray(), 2, 3, 5)) {
                assertEquals(30, c.tokens());
                Tensor text = model.embedText(context);
                float[] prepared = ops.toHost(model.forwardEmbedded(latent, text, c)).toFloatArray();
                assertArrayEquals(direct, prepared, 0f);
                // the conditioning is reusable: a second forward gives the same result
                assertArrayEquals(direct, ops.toHost(model.forwardEmbedded(latent, text, c)).toFloatArray(), 0f);
                Tensor wrong = ops.upload(Tensor.zeros(DType.F32, 1, 4, 2, 6, 12));
                var e = assertThrows(IllegalArgumentException.class, () -> model.forwardEmbedded(wrong, text, c));
                assertTrue(e.getMessage().contains("2×3×5"), e.getMessage());
            }
            assertTrue(!out.isReleased() && !latent.isReleased(), "output and inputs stay alive");
        }
    }

    /**
     * The sequence-parallel hook: forwardRows over every row then unpatchifyTokens is forwardEmbedded bit for bit; the
     * RoPE tables of a row range are those rows of the whole grid's tables; a shard's conditioning is refused where the
     * whole grid is needed.
     */
    @Test void forwardRowsOverTheWholeGridEqualsForwardEmbeddedAndShardTablesAreRowsOfTheGrid() {
        try (WeightSource w = WeightSource.open(resource("wan_b_diffusers.safetensors"));
             WeightSource io = WeightSource.open(resource("wan_b_io.safetensors"));
             WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyB(), DType.F32);
             Scope scope = Scope.open()) {
            WanTransformer model = new WanTransformer(ops, ops, ww);
            Tensor latent = ops.upload(io.tensor("latent")), text = model.embedText(ops.upload(io.tensor("context")));
            float[] t = io.tensor("timesteps").toFloatArray();
            try (WanTransformer.Conditioning c = model.prepare(t, 2, 3, 5);
                 WanTransformer.Conditioning all = model.prepareRows(t, 2, 3, 5, 0, 30);
                 WanTransformer.Conditioning shard = model.prepareRows(t, 2, 3, 5, 12, 18)) {
                float[] want = ops.toHost(model.forwardEmbedded(latent, text, c)).toFloatArray();
                Tensor rows = model.forwardRows(latent, text, all);
                assertEquals(java.util.List.of(1L, 30L, 16L), java.util.List.of(rows.dim(0), rows.dim(1), rows.dim(2)));
                assertArrayEquals(want, ops.toHost(model.unpatchifyTokens(rows, all)).toFloatArray(), 0f);
                assertEquals(6, shard.tokens());
                assertTrue(shard.isShard() && !all.isShard());
                float[] cosAll = c.rope().cos().toFloatArray(), cosShard = shard.rope().cos().toFloatArray();
                int half = (int) c.rope().cos().dim(1);
                assertArrayEquals(java.util.Arrays.copyOfRange(cosAll, 12 * half, 18 * half), cosShard, 0f);
                assertEquals(6, model.forwardRows(latent, text, shard).dim(1));
                var e = assertThrows(IllegalArgumentException.class, () -> model.forwardEmbedded(latent, text, shard));
                assertTrue(e.getMessage().contains("[12, 18)") && e.getMessage().contains("forwardRows"), e.getMessage());
                var bad = assertThrows(IllegalArgumentException.class, () -> model.prepareRows(t, 2, 3, 5, 20, 31));
                assertTrue(bad.getMessage().contains("30 tokens"), bad.getMessage());
            }
        }
    }

    /**
     * With a separate cross-attention Ops (a sequence-parallel rank's local backend), the self-attentions call
     * attention on the model's Ops and the cross-attentions on the other one, one each per block; the result is that
     * of the one-Ops model bit for bit.
     */
    @Test void crossAttentionRunsOnItsOwnOps() {
        final class Counting extends org.dit4j.core.ops.ForwardingOps {
            int calls;
            Counting(Ops d) { super(d); }
            @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
                calls++;
                return delegate.attention(q, k, v, bias, scale);
            }
        }
        try (WeightSource w = WeightSource.open(resource("wan_b_diffusers.safetensors"));
             WeightSource io = WeightSource.open(resource("wan_b_io.safetensors"));
             WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyB(), DType.F32);
             Scope scope = Scope.open()) {
            Counting self = new Counting(ops), cross = new Counting(ops);
            WanTransformer split = new WanTransformer(self, cross, ww), one = new WanTransformer(ops, ww);
            Tensor latent = ops.upload(io.tensor("latent")), context = ops.upload(io.tensor("context"));
            float[] got = split.forward(latent, io.tensor("timesteps"), context).toFloatArray();
            float[] want = one.forward(latent, io.tensor("timesteps"), context).toFloatArray();
            assertArrayEquals(want, got, 0f);
            int layers = WanTestData.tinyB().numLayers();
            assertEquals(layers, self.calls, "one self-attention per block on the model's Ops");
            assertEquals(layers, cross.calls, "one cross-attention per block on the cross-attention Ops");
        }
    }

    @Test void badInputsAreNamed() {
        try (WeightSource w = WeightSource.open(resource("wan_b_diffusers.safetensors"));
             WanWeights ww = WanWeights.load(ops, w, WanTestData.tinyB(), DType.F32);
             Scope scope = Scope.open()) {
            WanTransformer model = new WanTransformer(ops, ww);
            Tensor t = Tensor.of(new float[] {500f}, 1);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> model.forward(Tensor.zeros(DType.F32, 1, 4, 2, 5, 10), t, Tensor.zeros(DType.F32, 1, 7, 24)));
            assertTrue(e.getMessage().contains("latent") && e.getMessage().contains("[1, 4, 2, 5, 10]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> model.forward(Tensor.zeros(DType.F32, 1, 4, 2, 6, 10), t, Tensor.zeros(DType.F32, 1, 7, 32)));
            assertTrue(e.getMessage().contains("context") && e.getMessage().contains("24"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> model.forward(Tensor.zeros(DType.F32, 1, 4, 2, 6, 10),
                    Tensor.of(new float[] {1, 2}, 2), Tensor.zeros(DType.F32, 1, 7, 24)));
            assertTrue(e.getMessage().contains("timesteps"), e.getMessage());
        }
    }

    @Test void flopsOfTheReleasedModels() {
        // Wan2.1-14B, 640×640, 65 frames: latent 17×80×80, patch grid 17×40×40 = 27200 tokens; 512 context rows
        WanTransformer.Flops big = WanTransformer.flops(WanConfig.t2v14B(), 27200, 512);
        assertEquals(652.5e12, big.linear(), 0.05e12);
        assertEquals(617.5e12, big.attention(), 0.05e12);
        assertEquals(1.270e15, big.total(), 0.0005e15);
        assertEquals(40 * (4.0 * 27200 * 27200 * 5120 + 4.0 * 27200 * 512 * 5120), big.attention(), 1.0);
        // Wan2.1-1.3B, 832×480, 81 frames: 21×30×52 = 32760 tokens
        WanTransformer.Flops small = WanTransformer.flops(WanConfig.t2v1_3B(), 32760, 512);
        assertEquals(82.1e12, small.linear(), 0.05e12);
        assertEquals(200.9e12, small.attention(), 0.05e12);
    }
}
