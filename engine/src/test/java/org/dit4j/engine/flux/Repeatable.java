package org.dit4j.engine.flux;

/**
 * Bit-for-bit checks on the CPU backend, given up to three attempts. The backend's float dot products end in a Vector
 * API {@code reduceLanes(ADD)}, whose summation order is unspecified and differs between the interpreted/C1 code and
 * the C2 intrinsic, so a JIT compilation that lands between the two runs being compared can change last bits (observed:
 * one of ~25 consecutive generations differs, then never again). A real difference fails every attempt; the first
 * failure is rethrown.
 */
public final class Repeatable {
    private Repeatable() {}

    public static void check(Runnable attempt) {
        AssertionError first = null;
        for (int i = 0; i < 3; i++) {
            try {
                attempt.run();
                return;
            } catch (AssertionError e) {
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        throw first;
    }
}
