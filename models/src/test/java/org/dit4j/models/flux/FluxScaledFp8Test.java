package org.dit4j.models.flux;

import static org.dit4j.models.flux.FluxTestData.relL2;
import static org.dit4j.models.flux.FluxTestData.resource;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * ComfyUI "scaled fp8" checkpoints: the tiny dev weights quantized here (per-tensor scale = max|W|/448, saturating
 * e4m3 cast), written with ComfyUI's key names, must load to exactly the dequantized weights W = fp8·scale.
 * Older files: {@code <layer>.scale_weight} plus a {@code scaled_fp8} marker, under {@code model.diffusion_model.};
 * newer files: {@code <layer>.weight_scale} plus a {@code <layer>.comfy_quant} U8 JSON tag.
 */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class FluxScaledFp8Test {
    static Ops ops;

    @BeforeAll static void setUp() { ops = new CpuBackend(); }

    @AfterAll static void tearDown() { ops.close(); }

    @TempDir Path tmp;
    Path legacy, current, dequantized;

    /** A stored tensor: safetensors dtype name, shape, raw little-endian bytes. */
    record Raw(String dtype, long[] shape, byte[] bytes) {}

    @BeforeEach void writeFiles() throws IOException {
        Map<String, Raw> old = new LinkedHashMap<>(), cur = new LinkedHashMap<>(), deq = new LinkedHashMap<>();
        old.put(FluxWeights.BFL_PREFIX + "scaled_fp8", new Raw("F8_E4M3", new long[] {0}, new byte[0]));
        try (WeightSource w = WeightSource.open(resource("flux_dev_bfl.safetensors"))) {
            for (String n : w.names()) {
                Tensor t = w.tensor(n);
                float[] v = t.toFloatArray();
                long[] shape = t.shape().dims();
                boolean quantize = shape.length == 2 && n.contains("blocks.");   // block linears, as ComfyUI's files do
                if (!quantize) {
                    old.put(FluxWeights.BFL_PREFIX + n, f32(shape, v));
                    cur.put(n, f32(shape, v));
                    deq.put(n, f32(shape, v));
                    continue;
                }
                float amax = 0;
                for (float x : v) amax = Math.max(amax, Math.abs(x));
                float scale = amax / 448f;
                byte[] q = new byte[v.length];
                float[] back = new float[v.length];
                for (int i = 0; i < v.length; i++) {
                    q[i] = DType.F8_E4M3.fromFloatSaturating(v[i] / scale);
                    back[i] = DType.e4m3ToFloat(q[i]) * scale;
                }
                String layer = n.substring(0, n.length() - ".weight".length());
                old.put(FluxWeights.BFL_PREFIX + n, new Raw("F8_E4M3", shape, q));
                old.put(FluxWeights.BFL_PREFIX + layer + ".scale_weight", f32(new long[0], new float[] {scale}));
                cur.put(n, new Raw("F8_E4M3", shape, q));
                cur.put(layer + ".weight_scale", f32(new long[0], new float[] {scale}));
                byte[] tag = "{\"format\": \"float8_e4m3fn\"}".getBytes(StandardCharsets.UTF_8);
                cur.put(layer + ".comfy_quant", new Raw("U8", new long[] {tag.length}, tag));
                deq.put(n, f32(shape, back));
            }
        }
        legacy = write("flux_dev_fp8_scaled_legacy.safetensors", old);
        current = write("flux_dev_fp8_scaled.safetensors", cur);
        dequantized = write("flux_dev_dequantized.safetensors", deq);
    }

    @Test void scaledFp8LoadsAsDequantizedWeights() {
        try (WeightSource io = WeightSource.open(resource("flux_dev_io.safetensors"));
             WeightSource d = WeightSource.open(dequantized);
             FluxWeights wd = FluxWeights.load(ops, d, FluxTestData.tinyDev(), DType.F32);
             Scope scope = Scope.open()) {
            float[] want = ops.toHost(FluxTestData.forward(ops, new FluxTransformer(ops, wd), io)).toFloatArray();
            // quantization changes the model only a little (sanity: still the reference model)
            double vsDiffusers = relL2(want, io.tensor("out").toFloatArray());
            assertTrue(vsDiffusers < 0.1, "fp8 weights moved the output by rel-L2 " + vsDiffusers);
            for (Path p : new Path[] {legacy, current}) {
                try (WeightSource w = WeightSource.open(p)) {
                    assertEquals(FluxTestData.tinyDev(), FluxConfig.detect(w));
                    try (FluxWeights fw = FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F32)) {
                        for (String n : fw.names())
                            assertEquals(0.0, relL2(ops.toHost(fw.tensor(n)).toFloatArray(), ops.toHost(wd.tensor(n)).toFloatArray()), 0.0, n);
                        float[] got = ops.toHost(FluxTestData.forward(ops, new FluxTransformer(ops, fw), io)).toFloatArray();
                        double err = relL2(got, want);
                        assertTrue(err <= 1e-5, p.getFileName() + ": rel-L2 " + err + " vs the dequantized weights");
                    }
                }
            }
        }
    }

    @Test void scaledFp8CannotStayFp8() {
        try (WeightSource w = WeightSource.open(current)) {
            var e = assertThrows(IllegalArgumentException.class, () -> FluxWeights.load(ops, w, FluxTestData.tinyDev(), DType.F8_E4M3));
            assertTrue(e.getMessage().contains("double_blocks.0.img_mod.lin.weight") && e.getMessage().contains("BF16"), e.getMessage());
        }
    }

    private static Raw f32(long[] shape, float[] v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : v) b.putFloat(x);
        return new Raw("F32", shape, b.array());
    }

    /** A safetensors file with arbitrary dtype names (DType has no U8), written by hand. */
    private Path write(String name, Map<String, Raw> tensors) throws IOException {
        StringBuilder h = new StringBuilder("{");
        long off = 0;
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        for (var e : tensors.entrySet()) {
            Raw r = e.getValue();
            if (h.length() > 1) h.append(',');
            h.append('"').append(e.getKey()).append("\":{\"dtype\":\"").append(r.dtype).append("\",\"shape\":[");
            for (int i = 0; i < r.shape.length; i++) h.append(i > 0 ? "," : "").append(r.shape[i]);
            h.append("],\"data_offsets\":[").append(off).append(',').append(off + r.bytes.length).append("]}");
            off += r.bytes.length;
            data.write(r.bytes);
        }
        h.append('}');
        while (h.length() % 8 != 0) h.append(' ');
        byte[] hb = h.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(hb.length);
        Path p = tmp.resolve(name);
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        all.write(len.array());
        all.write(hb);
        data.writeTo(all);
        Files.write(p, all.toByteArray());
        return p;
    }
}
