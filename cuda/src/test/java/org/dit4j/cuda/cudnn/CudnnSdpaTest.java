package org.dit4j.cuda.cudnn;

import java.lang.foreign.MemorySegment;
import java.util.stream.Stream;

import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.cuda.cudnn.CudnnSdpa.Implementation;
import org.dit4j.cuda.cudnn.CudnnSdpa.Layout;
import org.dit4j.cuda.cudnn.CudnnSdpa.Shape;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** cuDNN fused attention vs a float64 CPU reference. GPU tests skip themselves (saying why) without a GPU or cuDNN. */
class CudnnSdpaTest {
    /** bf16 inputs, fp32 accumulation, bf16 output: expected rel-L2 ~3e-3; 1e-2 is the project's bf16 bound. */
    static final double TOLERANCE = 1e-2;

    static CudaDriver gpu() {
        String why = Gpu.unavailableReason();
        Assumptions.assumeTrue(why == null, () -> "skipped: " + why);
        return Gpu.driver();
    }

    static long alloc(CudaDriver cuda, long bytes) { return bytes > 0 ? cuda.memAlloc(bytes) : 0; }

    static void free(CudaDriver cuda, long ptr) { if (ptr != 0) cuda.memFree(ptr); }

    static Stream<Arguments> cases() {
        Shape[] shapes = {
            Shape.bshd(2, 3, 256, 256, 128, DType.BF16),
            Shape.bshd(1, 2, 200, 136, 64, DType.BF16),                 // lengths not multiples of 64
            new Shape(1, 4, 128, 128, 128, DType.BF16, 0.0883883f, Layout.BHSD),
            Shape.bshd(1, 2, 192, 192, 128, DType.F16),
            Shape.bshd(1, 2, 128, 384, 128, DType.BF16),                 // cross attention, Lq != Lk
            new Shape(1, 2, 160, 160, 128, DType.BF16, 0.25f, Layout.BSHD), // non-default scale
        };
        Stream.Builder<Arguments> b = Stream.builder();
        for (Implementation impl : Implementation.values()) for (Shape s : shapes) b.add(Arguments.of(impl, s));
        return b.build();
    }

    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("cases")
    void matchesFloat64Reference(Implementation impl, Shape shape) {
        CudaDriver cuda = gpu();
        try (CudnnSdpa sdpa = new CudnnSdpa(); AttentionCase c = new AttentionCase(cuda, shape, 42)) {
            CudnnSdpa.Plan plan;
            if (impl == Implementation.AUTO) {
                plan = sdpa.plan(shape);
            } else {
                try {
                    plan = sdpa.candidates(shape, impl, 1).getFirst();
                } catch (CudnnException e) {
                    // The dedicated SDPA operation is newer and may not cover every shape; the composite graph must.
                    Assumptions.assumeTrue(impl == Implementation.UNIFIED && e.notSupported(),
                            () -> "unexpected failure: " + e.getMessage());
                    Assumptions.abort("UNIFIED not supported here: " + e.getMessage());
                    return;
                }
            }
            long ws = alloc(cuda, plan.workspaceSize());
            long stream = cuda.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
            c.poisonOutput();
            plan.execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
            cuda.streamSynchronize(stream);
            MemorySegment o = c.output();
            assertEquals(0, c.nonFinite(o), "every output element written and finite (" + plan + ")");
            double err = c.relL2(o, c.allRows());
            assertTrue(err <= TOLERANCE, "rel-L2 " + err + " > " + TOLERANCE + " for " + shape + " with " + plan);
            free(cuda, ws);
            cuda.streamDestroy(stream);
        }
    }

    @Test
    void planIsCachedAndRebindsPointers() {
        CudaDriver cuda = gpu();
        Shape shape = Shape.bshd(1, 2, 128, 128, 128, DType.BF16);
        try (CudnnSdpa sdpa = new CudnnSdpa();
             AttentionCase a = new AttentionCase(cuda, shape, 7);
             AttentionCase b = new AttentionCase(cuda, shape, 8)) {
            CudnnSdpa.Plan plan = sdpa.plan(shape);
            assertSame(plan, sdpa.plan(shape), "second plan() call returns the cached plan");
            long ws = alloc(cuda, plan.workspaceSize());
            long stream = cuda.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
            for (AttentionCase c : new AttentionCase[] {a, b, a}) {
                c.poisonOutput();
                sdpa.execute(shape, c.dq, c.dk, c.dv, c.dout, ws, stream);
                cuda.streamSynchronize(stream);
                MemorySegment o = c.output();
                assertEquals(0, c.nonFinite(o));
                double err = c.relL2(o, c.allRows());
                assertTrue(err <= TOLERANCE, "rel-L2 " + err + " after rebinding pointers");
            }
            free(cuda, ws);
            cuda.streamDestroy(stream);
        }
    }

    /** The engine must be capturable into a CUDA graph (how dit4j "compiles" a forward) and replay exactly. */
    @Test
    void capturesIntoCudaGraphAndReplaysExactly() {
        CudaDriver cuda = gpu();
        Shape shape = Shape.bshd(1, 3, 320, 320, 128, DType.BF16);
        try (CudnnSdpa sdpa = new CudnnSdpa();
             AttentionCase a = new AttentionCase(cuda, shape, 11);
             AttentionCase b = new AttentionCase(cuda, shape, 12)) {
            CudnnSdpa.Plan plan = sdpa.plan(shape);
            long ws = alloc(cuda, plan.workspaceSize());
            long stream = cuda.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
            plan.execute(a.dq, a.dk, a.dv, a.dout, ws, stream);
            cuda.streamSynchronize(stream);
            MemorySegment eager = a.output();
            a.poisonOutput();
            cuda.streamSynchronize(stream);
            cuda.streamBeginCapture(stream, CudaDriver.CAPTURE_MODE_GLOBAL);   // strictest mode
            plan.execute(a.dq, a.dk, a.dv, a.dout, ws, stream);
            long captured = cuda.streamEndCapture(stream);
            long graph = cuda.graphInstantiate(captured);
            cuda.graphDestroy(captured);
            cuda.graphLaunch(graph, stream);
            cuda.streamSynchronize(stream);
            MemorySegment replayed = a.output();
            assertEquals(-1L, eager.mismatch(replayed), "graph replay output bit-identical to eager output");
            // Replays read the buffers' current contents: new inputs in the same buffers give their attention.
            a.upload(a.dq, b.q);
            a.upload(a.dk, b.k);
            a.upload(a.dv, b.v);
            a.poisonOutput();
            cuda.graphLaunch(graph, stream);
            cuda.streamSynchronize(stream);
            MemorySegment o = a.output();
            assertEquals(0, b.nonFinite(o));
            double err = b.relL2(o, b.allRows());
            assertTrue(err <= TOLERANCE, "rel-L2 " + err + " after replay with new inputs");
            cuda.graphExecDestroy(graph);
            free(cuda, ws);
            cuda.streamDestroy(stream);
        }
    }

    /** Autotuning picks among real kernel configurations and the chosen plan still computes attention. */
    @Test
    void tunedPlanMatchesReference() {
        CudaDriver cuda = gpu();
        Shape shape = Shape.bshd(1, 4, 512, 512, 64, DType.BF16);
        try (CudnnSdpa sdpa = new CudnnSdpa(); AttentionCase c = new AttentionCase(cuda, shape, 21)) {
            long stream = cuda.streamCreate(CudaDriver.STREAM_NON_BLOCKING);
            CudnnSdpa.Tuning t = sdpa.tune(shape, c.dq, c.dk, c.dv, c.dout, stream, 8);
            assertTrue(t.candidates().size() >= 1 && t.candidates().getFirst().accepted(), "the heuristic plan is a candidate");
            assertSame(t.best(), sdpa.plan(shape), "the tuned plan is now the cached plan");
            long ws = alloc(cuda, t.best().workspaceSize());
            c.poisonOutput();
            t.best().execute(c.dq, c.dk, c.dv, c.dout, ws, stream);
            cuda.streamSynchronize(stream);
            MemorySegment o = c.output();
            assertEquals(0, c.nonFinite(o));
            double err = c.relL2(o, c.allRows());
            assertTrue(err <= TOLERANCE, "rel-L2 " + err + " of tuned plan " + t.best());
            free(cuda, ws);
            cuda.streamDestroy(stream);
        }
    }

    @Test
    void shapeValidationNamesTheProblem() {
        var e1 = assertThrows(IllegalArgumentException.class, () -> Shape.bshd(1, 24, 4608, 4608, 100, DType.BF16));
        assertTrue(e1.getMessage().contains("multiple of 8") && e1.getMessage().contains("100"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> Shape.bshd(1, 24, 4608, 4608, 128, DType.F32));
        assertTrue(e2.getMessage().contains("F32"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class, () -> Shape.bshd(1, 0, 4608, 4608, 128, DType.BF16));
        assertTrue(e3.getMessage().contains("H=0"), e3.getMessage());
        Shape flux = Shape.bshd(1, 24, 4608, 4608, 128, DType.BF16);
        assertEquals(4.0 * 24 * 4608 * 4608 * 128, flux.flops(), 0.0);
        assertEquals(1.0 / Math.sqrt(128), flux.scale(), 1e-7);
        assertEquals(4608L * 24 * 128 * 2, flux.qBytes());
    }
}
