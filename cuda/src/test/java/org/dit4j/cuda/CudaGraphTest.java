package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.function.Supplier;

import static org.dit4j.cuda.CudaTestSupport.*;
import static org.dit4j.cuda.HostRef.randn;
import static org.junit.jupiter.api.Assertions.*;

/** A captured graph replays bit-identically to eager execution, also after its inputs change. */
class CudaGraphTest {
    static CudaBackend ops;

    @BeforeAll static void open() {
        requireCuda();
        ops = new CudaBackend();
    }

    @AfterAll static void close() {
        if (ops != null) ops.close();
    }

    @Test void pinnedHostCopiesRoundTripEagerlyAndInsideAGraph() {
        float[] v = randn(9, 3000);
        try (Scope outer = Scope.open()) {
            Tensor x = dev(ops, DType.BF16, v, 3, 1000);
            Tensor back = ops.empty(DType.BF16, x.shape());
            try (Tensor pinned = ops.pinnedHost(DType.BF16, x.shape())) {
                ops.copyPinned(pinned, x);
                ops.synchronize();
                assertArrayEquals(host(ops, x), pinned.toFloatArray(), "device → pinned host");
                try (CudaGraph g = CudaGraph.capture(ops, () -> {
                    ops.copyPinned(pinned, ops.scale(x, 2f));
                    ops.copyPinned(back, pinned);
                })) {
                    g.replay();
                    ops.synchronize();
                    float[] want = host(ops, ops.scale(x, 2f));
                    assertArrayEquals(want, pinned.toFloatArray(), "captured device → pinned host");
                    assertArrayEquals(want, host(ops, back), "captured pinned host → device");
                }
                assertThrows(IllegalArgumentException.class, () -> ops.copyPinned(Tensor.zeros(DType.BF16, 3, 1000), x),
                        "pageable host memory must be refused");
            }
        }
    }

    @Test void replayEqualsEager() {
        int b = 1, l = 200, h = 4, d = 64, dim = h * d;
        try (Scope outer = Scope.open()) {
            Tensor x = dev(ops, DType.BF16, randn(1, b * l * dim), b, l, dim);
            Tensor wqkv = dev(ops, DType.BF16, scaled(randn(2, 3 * dim * dim), 0.05f), 3 * dim, dim);
            Tensor bqkv = dev(ops, DType.BF16, randn(3, 3 * dim), 3 * dim);
            Tensor wo = dev(ops, DType.BF16, scaled(randn(4, dim * dim), 0.05f), dim, dim);
            Tensor shift = dev(ops, DType.BF16, randn(5, b * dim), b, dim), scale = dev(ops, DType.BF16, randn(6, b * dim), b, dim);
            Tensor gate = dev(ops, DType.BF16, randn(7, b * dim), b, dim);
            Supplier<Tensor> block = () -> {
                try (Scope s = Scope.open()) {
                    Tensor n = ops.layerNormModulate(x, shift, scale, 1e-6f);
                    Tensor qkv = ops.linear(n, wqkv, bqkv);
                    Tensor q = ops.reshape(ops.slice(qkv, 2, 0, dim), b, l, h, d);
                    Tensor k = ops.reshape(ops.slice(qkv, 2, dim, 2 * dim), b, l, h, d);
                    Tensor v = ops.reshape(ops.slice(qkv, 2, 2 * dim, 3 * dim), b, l, h, d);
                    Tensor a = ops.reshape(ops.attention(q, k, v, null, 0.125f), b, l, dim);
                    Tensor y = ops.linearGelu(a, wo, null, true);
                    return s.keep(ops.gatedResidual(x, gate, y));
                }
            };
            Tensor eager = block.get();
            float[] eagerHost = host(ops, eager);
            long allocsBefore = ops.allocator().driverAllocations();
            Tensor[] captured = new Tensor[1];
            try (CudaGraph g = CudaGraph.capture(ops, () -> captured[0] = block.get())) {
                g.replay();
                assertArrayEquals(eagerHost, host(ops, captured[0]), "graph replay must equal eager output bit for bit");
                // eager work between replays must not disturb the graph's memory
                Tensor noise = ops.scale(ops.add(x, x), 3f);
                g.replay();
                assertArrayEquals(eagerHost, host(ops, captured[0]), "second replay");
                // new input values through the static input tensor
                ops.copyInto(x, noise);
                Tensor eager2 = block.get();
                g.replay();
                assertArrayEquals(host(ops, eager2), host(ops, captured[0]), "replay after copyInto");
                int plans = ops.gemmPlanCount();
                for (int i = 0; i < 3; i++) g.replay();
                assertEquals(plans, ops.gemmPlanCount());
            }
            assertTrue(ops.allocator().driverAllocations() >= allocsBefore);
        }
    }

    @Test void captureFailureLeavesBackendUsable() {
        try (Scope s = Scope.open()) {
            Tensor hostT = Tensor.of(new float[] {1, 2, 3}, 3);
            assertThrows(IllegalStateException.class, () -> CudaGraph.capture(ops, () -> ops.upload(hostT)));
            Tensor d = ops.upload(hostT);
            assertArrayEquals(new float[] {2, 4, 6}, host(ops, ops.scale(d, 2f)));
        }
    }

    private static float[] scaled(float[] a, float s) {
        for (int i = 0; i < a.length; i++) a[i] *= s;
        return a;
    }
}
