package org.dit4j.models.nn;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class ChunksTest {
    @Test void chunksEqualSlicesForOneAndSeveralBatches() {
        try (CpuBackend ops = new CpuBackend(); Scope s = Scope.open()) {
            for (int b : new int[] {1, 3}) {
                float[] v = new float[b * 12];
                for (int i = 0; i < v.length; i++) v[i] = i * 0.5f - 3;
                Tensor m = Tensor.of(v, b, 12);
                for (int i = 0; i < 3; i++) {
                    Tensor c = Chunks.chunk(ops, m, i, 3);
                    assertEquals(Shape.of(b, 4), c.shape());
                    assertArrayEquals(ops.slice(m, 1, 4L * i, 4L * (i + 1)).toFloatArray(), c.toFloatArray(), "chunk " + i + " of B=" + b);
                }
            }
            Tensor bad = Tensor.of(new float[10], 1, 10);
            assertThrows(IllegalArgumentException.class, () -> Chunks.chunk(ops, bad, 0, 3));
            assertThrows(IllegalArgumentException.class, () -> Chunks.chunk(ops, bad, 2, 2));
        }
    }
}
