package org.dit4j.models.nn;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** Host tables of {@link Rope} and {@link Timesteps} against their formulas (models.md §0). */
@SuppressWarnings("try")   // scopes opened only to free what the test allocates
class RopeAndTimestepsTest {

    @Test void ropeTablesConcatenateAxisPairBlocks() {
        try (Scope s = Scope.open()) {
            int[] axes = {4, 6, 6};                                    // 2 + 3 + 3 pairs
            float[][] pos = {{0, 0, 0}, {1, 2, 5}};
            Rope.Tables t = Rope.tables(pos, axes, 10000);
            assertArrayEquals(new long[] {2, 8}, t.cos().shape().dims());
            float[] cos = t.cos().toFloatArray(), sin = t.sin().toFloatArray();
            for (int c = 0; c < 8; c++) {                              // position 0: identity rotation
                assertEquals(1f, cos[c]);
                assertEquals(0f, sin[c]);
            }
            double[] want = {
                1 * 1.0, 1 * Math.pow(10000, -2.0 / 4),                  // axis 0, pairs j = 0, 1 of width 4
                2 * 1.0, 2 * Math.pow(10000, -2.0 / 6), 2 * Math.pow(10000, -4.0 / 6),
                5 * 1.0, 5 * Math.pow(10000, -2.0 / 6), 5 * Math.pow(10000, -4.0 / 6)};
            for (int c = 0; c < 8; c++) {
                assertEquals((float) Math.cos(want[c]), cos[8 + c], 0f, "cos pair " + c);
                assertEquals((float) Math.sin(want[c]), sin[8 + c], 0f, "sin pair " + c);
            }
            assertThrows(IllegalArgumentException.class, () -> Rope.tables(pos, new int[] {3, 6, 6}, 10000));
        }
    }

    @Test void timestepEmbeddingIsCosFirst() {
        try (Scope s = Scope.open()) {
            float[] e = Timesteps.embedding(new float[] {0f, 0.5f}, 8, 1000f).toFloatArray();
            assertArrayEquals(new float[] {1, 1, 1, 1, 0, 0, 0, 0}, java.util.Arrays.copyOf(e, 8), 0f);
            for (int j = 0; j < 4; j++) {
                double a = 500.0 * Math.exp(-Math.log(10000) * j / 4);
                assertEquals(Math.cos(a), e[8 + j], 2e-4, "cos " + j);   // float32 angle as in PyTorch: |Δa| ≤ ulp(500)
                assertEquals(Math.sin(a), e[12 + j], 2e-4, "sin " + j);
            }
        }
    }
}
