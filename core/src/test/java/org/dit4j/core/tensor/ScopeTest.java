package org.dit4j.core.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Scope ownership: release at close, keep to the enclosing scope, detach to the caller. */
class ScopeTest {

    @Test void closeReleasesWhatTheScopeOwns() {
        Tensor t;
        try (Scope s = Scope.open()) {
            t = Tensor.zeros(DType.F32, 4);
            assertEquals(1, s.size());
        }
        assertTrue(t.isReleased());
    }

    @Test void keepHandsATensorToTheEnclosingScope() {
        try (Scope outer = Scope.open()) {
            Tensor t;
            try (Scope inner = Scope.open()) {
                t = inner.keep(Tensor.zeros(DType.F32, 4));
                assertEquals(0, inner.size());
            }
            assertFalse(t.isReleased());
            assertEquals(1, outer.size());
        }
    }

    @Test void detachTakesATensorOutOfEveryScope() {
        Tensor t;
        try (Scope outer = Scope.open()) {
            try (Scope inner = Scope.open()) {
                t = Tensor.zeros(DType.F32, 4);
                assertSame(t, Scope.detach(t));
                assertEquals(0, inner.size());
            }
            assertEquals(0, outer.size());
        }
        assertFalse(t.isReleased(), "a detached tensor outlives the scopes it was made in");
        t.close();
        assertTrue(t.isReleased(), "its new owner releases it");
    }
}
