package org.dit4j.models.vae.wan;

import static org.dit4j.models.vae.wan.WanVaeTestData.relL2;
import static org.dit4j.models.vae.wan.WanVaeTestData.resource;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.random.TorchGenerator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVaeBlocks.CausalCache;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The time chunking: any split of the clip into chunks gives the one-pass (whole-clip) result, which is the
 * reference's chunked result; the streaming state stays at ≤ 2 frames per causal conv; nothing leaks.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class WanVaeStreamingTest {
    /**
     * Different chunkings change only how many output positions the convolutions see at once. Config b gives
     * bit-identical results; config a's decoder input conv sums 16·27 = 432 > 256 products per output, and the CPU
     * GEMM rounds the partial sums of its edge tiles (9·t positions of a 3×3 latent) differently from full tiles:
     * measured rel-L2 ≤ 1e-5 between chunkings, amplified by a's 2-channel RMS norms (diffusers' own float32 decode of
     * a is 9.4e-6 from its float64 decode).
     */
    static final double SAME = 1e-4;

    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @Test void decodeInAnyChunksEqualsTheReference() {
        try (WanVae vae = WanVae.load(ops, resource("a_diffusers"), DType.F32);
             WeightSource io = WeightSource.open(resource("a_io.safetensors")); Scope scope = Scope.open()) {
            Tensor raw = vae.denormalize(io.tensor("z"));                            // 3 latent frames
            float[] ref = io.tensor("dec_raw").toFloatArray();
            Tensor perFrame = vae.decodeRaw(raw, 1);                                  // the reference's chunking
            int[][] expectedFrames = {{1, 4, 4}, {5, 4}, {9}};
            for (int k = 1; k <= 3; k++) {
                List<Integer> frames = new ArrayList<>();
                List<Tensor> parts = new ArrayList<>();
                vae.decodeRaw(raw, k, chunk -> {
                    frames.add(chunk.shape().dimInt(2));
                    parts.add(Scope.detach(chunk));                                    // ours now
                });
                assertEquals(toList(expectedFrames[k - 1]), frames, "video frames per chunk of " + k + " latent frames");
                Tensor whole = ops.concat(2, parts.toArray(Tensor[]::new));
                for (Tensor p : parts) p.close();
                double vsRef = relL2(whole.toFloatArray(), ref), vsPerFrame = relL2(whole.toFloatArray(), perFrame.toFloatArray());
                System.out.printf("wanvae decode in chunks of %d latent frame(s): rel-L2 vs diffusers %.2e, vs chunks of 1 %.2e%n",
                        k, vsRef, vsPerFrame);
                assertTrue(vsRef <= WanVaeReferenceTest.TOLERANCE, "chunks of " + k + " vs diffusers: " + vsRef);
                assertTrue(vsPerFrame <= SAME, "chunks of " + k + " vs chunks of 1: " + vsPerFrame);
            }
        }
    }

    @Test void encodeInAnyChunksEqualsTheReference() {
        try (WanVae vae = WanVae.load(ops, resource("a_diffusers"), DType.F32);
             WeightSource io = WeightSource.open(resource("a_io.safetensors")); Scope scope = Scope.open()) {
            Tensor x = io.tensor("x");                                                // 9 frames
            float[] ref = io.tensor("mean").toFloatArray();
            float[] reference = ops.slice(vae.encodeMoments(x, 4), 1, 0, 16).toFloatArray();
            float[] whole = ops.slice(vae.encodeMoments(x, 8), 1, 0, 16).toFloatArray();
            double a = relL2(reference, ref), b = relL2(whole, ref), ab = relL2(whole, reference);
            System.out.printf("wanvae encode 1+4+4 frames: rel-L2 vs diffusers %.2e; whole clip in one pass %.2e; between %.2e%n",
                    a, b, ab);
            assertTrue(a <= WanVaeReferenceTest.TOLERANCE && b <= WanVaeReferenceTest.TOLERANCE, a + " / " + b);
            assertTrue(ab <= SAME, "one pass vs chunks: " + ab);
            assertThrows(IllegalArgumentException.class, () -> vae.encodeMoments(x, 6), "framesPerChunk must be a multiple of 4");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> vae.encode(ops.slice(x, 2, 0, 7)));
            assertTrue(e.getMessage().contains("1 + 4k frames") && e.getMessage().contains("got 7"), e.getMessage());
        }
    }

    /** A long clip through the streaming decoder and encoder of config b: bounded state, any chunking equal. */
    @Test void longClipsKeepAtMostTwoFramesPerConv() {
        try (WanVae vae = WanVae.load(ops, resource("b_diffusers"), DType.F32); Scope scope = Scope.open()) {
            TorchGenerator gen = new TorchGenerator(11);
            Tensor raw = gen.randn(1, 4, 8, 4, 4);                                    // 8 latent frames → 15 frames
            WanVaeDecoder dec = new WanVaeDecoder(vae.weights());
            List<Tensor> chunks = new ArrayList<>();
            try (CausalCache cache = dec.newCache()) {
                Tensor x = dec.postQuant(ops, raw);
                for (int f = 0; f < 8; f++) {
                    chunks.add(dec.forward(ops, ops.slice(x, 2, f, f + 1), cache));
                    assertTrue(cache.maxFrames() <= 2, "decoder state after latent frame " + f + ": " + cache.maxFrames() + " frames");
                }
            }
            Tensor streamed = ops.concat(2, chunks.toArray(Tensor[]::new));
            assertEquals(15, streamed.dim(2));
            Tensor onePass = vae.decodeRaw(raw, 8);
            double d = relL2(streamed.toFloatArray(), onePass.toFloatArray());
            assertTrue(d <= SAME, "8 latent frames one at a time vs one pass: " + d);

            Tensor video = ops.scale(gen.randn(1, 3, 21, 16, 16), 0.5f);              // 21 frames → 1 + 20/2 = 11 latent frames
            WanVaeEncoder enc = new WanVaeEncoder(vae.weights());
            List<Tensor> parts = new ArrayList<>();
            try (CausalCache cache = enc.newCache()) {
                parts.add(enc.forward(ops, ops.slice(video, 2, 0, 1), cache));
                for (int s = 1; s < 21; s += 4) {
                    parts.add(enc.forward(ops, ops.slice(video, 2, s, s + 4), cache));
                    assertTrue(cache.maxFrames() <= 2, "encoder state after frame " + (s + 3) + ": " + cache.maxFrames() + " frames");
                }
            }
            Tensor streamedMoments = enc.moments(ops, ops.concat(2, parts.toArray(Tensor[]::new)));
            assertEquals(11, streamedMoments.dim(2));
            double e = relL2(streamedMoments.toFloatArray(), vae.encodeMoments(video, 20).toFloatArray());
            assertTrue(e <= SAME, "21 frames in chunks of 4 vs one pass: " + e);
            System.out.printf("wanvae long clips: decode 8 latent frames one at a time vs one pass %.2e, encode 21 frames %.2e%n", d, e);
        }
    }

    /** decode and encode leave exactly their result in the caller's scope: intermediates and the state are released. */
    @Test void nothingLeaksIntoTheCallersScope() {
        try (WanVae vae = WanVae.load(ops, resource("b_diffusers"), DType.F32);
             WeightSource io = WeightSource.open(resource("b_io.safetensors"))) {
            Tensor z = io.tensor("z"), x = io.tensor("x");
            for (int k : new int[] {1, 2}) {
                try (Scope s = Scope.open()) {
                    Tensor out = vae.decode(z, k);
                    assertEquals(1, s.size(), "tensors left by decode in chunks of " + k);
                    assertEquals(5, out.dim(2));
                }
            }
            try (Scope s = Scope.open()) {
                vae.encode(x);
                assertEquals(1, s.size(), "tensors left by encode");
            }
        }
    }

    private static List<Integer> toList(int[] a) {
        List<Integer> l = new ArrayList<>();
        for (int v : a) l.add(v);
        return l;
    }
}
