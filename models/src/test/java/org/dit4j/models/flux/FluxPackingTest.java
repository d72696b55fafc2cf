package org.dit4j.models.flux;

import static org.dit4j.models.flux.FluxTestData.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** 2×2 packing and ids against models.md §1.2/§1.8 and against diffusers' FluxPipeline packing of the reference inputs. */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxPackingTest {
    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @Test void tokenAndFeatureOrder() {
        try (Scope s = Scope.open()) {
            int b = 2, c = 3, hh = 4, ww = 6;
            float[] v = new float[b * c * hh * ww];
            for (int n = 0; n < b; n++) for (int ch = 0; ch < c; ch++) for (int y = 0; y < hh; y++) for (int x = 0; x < ww; x++)
                v[((n * c + ch) * hh + y) * ww + x] = n * 1e6f + ch * 1e4f + y * 100 + x;
            Tensor z = ops.upload(Tensor.of(v, b, c, hh, ww));
            Tensor p = ops.toHost(FluxPacking.pack(ops, z));
            assertArrayEquals(new long[] {b, (hh / 2) * (ww / 2), 4 * c}, p.shape().dims());
            float[] pv = p.toFloatArray();
            for (int n = 0; n < b; n++) for (int hi = 0; hi < hh / 2; hi++) for (int wi = 0; wi < ww / 2; wi++)
                for (int ch = 0; ch < c; ch++) for (int ph = 0; ph < 2; ph++) for (int pw = 0; pw < 2; pw++) {
                    int token = hi * (ww / 2) + wi, f = ch * 4 + ph * 2 + pw;
                    float want = n * 1e6f + ch * 1e4f + (2 * hi + ph) * 100 + (2 * wi + pw);
                    assertEquals(want, pv[(n * (hh / 2) * (ww / 2) + token) * 4 * c + f], 0f);
                }
            assertArrayEquals(v, ops.toHost(FluxPacking.unpack(ops, ops.upload(p), hh, ww)).toFloatArray(), 0f);
        }
    }

    @Test void matchesDiffusersPackingAndKontextIds() {
        try (WeightSource io = WeightSource.open(resource("flux_dev_io.safetensors")); Scope s = Scope.open()) {
            Tensor img = io.tensor("img");                       // [2, 6 + 4, 64]: target tokens then reference tokens
            Tensor target = ops.toHost(FluxPacking.pack(ops, ops.upload(io.tensor("latent"))));      // latent [2,16,4,6]
            Tensor ref = ops.toHost(FluxPacking.pack(ops, ops.upload(io.tensor("ref_latent"))));     // [2,16,4,4]
            Tensor joined = ops.toHost(ops.concat(1, ops.upload(target), ops.upload(ref)));
            assertArrayEquals(img.toFloatArray(), joined.toFloatArray(), 0f);
            Tensor ids = ops.toHost(ops.concat(0, FluxPacking.imageIds(4, 6), FluxPacking.kontextIds(4, 4)));
            assertArrayEquals(io.tensor("img_ids").toFloatArray(), ids.toFloatArray(), 0f);
            assertArrayEquals(io.tensor("txt_ids").toFloatArray(), FluxPacking.textIds(5).toFloatArray(), 0f);
        }
    }
}
