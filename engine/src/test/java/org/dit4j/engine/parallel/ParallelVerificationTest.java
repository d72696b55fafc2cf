package org.dit4j.engine.parallel;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;


import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ParallelVerificationTest {

    @Test void reportsMaxAbsAndRelativeL2() {
        var r = ParallelVerification.compare("x", new float[] {1, 2, 3, 4}, new float[] {1, 2, 3, 5});
        assertEquals(4, r.elements());
        assertEquals(1.0, r.maxAbs(), 0);
        assertEquals(1 / Math.sqrt(30), r.relL2(), 1e-15);
        assertTrue(r.within(0.19));
        assertFalse(r.within(0.18));
        assertTrue(r.summary().contains("max |Δ| 1.000e+00") && r.summary().contains("rel-L2 1.826e-01"), r.summary());
        var same = ParallelVerification.compare("y", new float[] {0, -1}, new float[] {0, -1});
        assertEquals(0.0, same.relL2(), 0);
        assertEquals(0.0, same.maxAbs(), 0);
    }

    @Test void nanIsNeverWithinTolerance() {
        var r = ParallelVerification.compare("nan", new float[] {1, 2}, new float[] {1, Float.NaN});
        assertTrue(Double.isNaN(r.relL2()) && Double.isNaN(r.maxAbs()));
        assertFalse(r.within(1e9));
    }

    @Test void shapesMustAgree() {
        var e = assertThrows(IllegalArgumentException.class, () -> ParallelVerification.compare("len", new float[3], new float[4]));
        assertTrue(e.getMessage().contains("4 values") && e.getMessage().contains("3"), e.getMessage());
        try (CpuBackend cpu = new CpuBackend(1); Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[6], 2, 3), b = Tensor.of(new float[6], 3, 2);
            assertThrows(IllegalArgumentException.class, () -> ParallelVerification.compare("shape", cpu, a, b));
            Tensor c = Tensor.of(DType.BF16, new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            assertEquals(0.0, ParallelVerification.compare("bf16", cpu, c, cpu.copy(c)).relL2(), 0);
        }
    }

    /** A mesh task whose rank 1 is off: the verification names it as the worst and check() fails with the summary. */
    @Test void verifyComparesEveryRankAndChecksTheWorst() {
        float[] ref = {1, 2, 3};
        var v = ParallelVerification.verifyLocal("sum", () -> ref, ParallelConfig.ring(2),
                comms -> comms.rank() == 1 ? new float[] {1, 2, 3.003f} : ref.clone());
        assertEquals(2, v.perRank().size());
        assertEquals(0.0, v.perRank().get(0).relL2(), 0);
        assertEquals("sum rank 1", v.worst().label());
        assertEquals(0.003 / Math.sqrt(14), v.worst().relL2(), 1e-7);
        assertTrue(v.within(1e-3));
        var e = assertThrows(IllegalStateException.class, () -> v.check(1e-5));
        assertTrue(e.getMessage().contains("sum rank 1: max |Δ|"), e.getMessage());
        assertEquals(1e-5, ParallelVerification.tolerance(DType.F32));
        assertEquals(1e-2, ParallelVerification.tolerance(DType.BF16));
    }
}
