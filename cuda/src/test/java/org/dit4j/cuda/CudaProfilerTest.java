package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.dit4j.cuda.CudaTestSupport.dev;
import static org.dit4j.cuda.CudaTestSupport.requireCuda;
import static org.dit4j.cuda.HostRef.randn;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The launch profiler: one span per launch with its category, label and FLOPs; off by default; refused in capture. */
class CudaProfilerTest {
    static CudaBackend ops;

    @BeforeAll static void open() {
        requireCuda();
        ops = new CudaBackend();
    }

    @AfterAll static void close() {
        if (ops != null) ops.close();
    }

    @Test void timesEveryLaunchByCategory() {
        try (Scope s = Scope.open()) {
            Tensor x = dev(ops, DType.BF16, randn(1, 256 * 128), 1, 256, 128);
            Tensor w = dev(ops, DType.BF16, randn(2, 192 * 128), 192, 128);
            Tensor q = dev(ops, DType.BF16, randn(3, 256 * 2 * 64), 1, 256, 2, 64);
            ops.linear(x, w, null);                       // warm: kernels compiled, plans built outside the profile
            ops.attention(q, q, q, null, 0.125f);
            ops.add(x, x);
            ops.synchronize();
            assertFalse(ops.isProfiling());
            ops.startProfile();
            ops.linear(x, w, null);
            ops.attention(q, q, q, null, 0.125f);
            ops.add(x, x);
            ops.slice(x, 2, 0, 64);
            List<CudaProfiler.Span> spans = ops.stopProfile();
            assertFalse(ops.isProfiling());
            assertEquals(4, spans.size(), "one span per launch: " + spans);
            assertEquals(CudaProfiler.Category.GEMM, spans.get(0).category());
            assertEquals(2.0 * 256 * 192 * 128, spans.get(0).flops(), "GEMM FLOPs = 2·M·N·K");
            assertTrue(spans.get(0).label().contains("256x192x128"), spans.get(0).label());
            assertEquals(CudaProfiler.Category.ATTENTION, spans.get(1).category());
            assertEquals(4.0 * 2 * 256 * 256 * 64, spans.get(1).flops(), "attention FLOPs = 4·H·Lq·Lk·d");
            assertEquals(CudaProfiler.Category.OTHER, spans.get(2).category());
            assertTrue(spans.get(3).label().contains("slice"), spans.get(3).label());
            for (CudaProfiler.Span sp : spans) assertTrue(sp.ms() > 0 && sp.ms() < 1000, "device time of " + sp);
            Map<CudaProfiler.Category, Double> t = CudaProfiler.totals(spans);
            assertEquals(spans.stream().mapToDouble(CudaProfiler.Span::ms).sum(), t.values().stream().mapToDouble(Double::doubleValue).sum(), 1e-9);
            assertEquals(4, CudaProfiler.group(spans).size());
            // a second profile starts empty
            ops.startProfile();
            ops.add(x, x);
            assertEquals(1, ops.stopProfile().size());
        }
    }

    @Test void isOffByDefaultAndRefusedDuringCapture() {
        assertThrows(IllegalStateException.class, () -> ops.stopProfile());
        ops.startProfile();
        try {
            assertThrows(IllegalStateException.class, () -> CudaGraph.capture(ops, () -> {}));
        } finally {
            ops.stopProfile();
        }
    }
}
