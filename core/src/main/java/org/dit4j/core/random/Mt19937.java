package org.dit4j.core.random;

/**
 * The 32-bit Mersenne Twister MT19937 (Matsumoto &amp; Nishimura 1998), seeded like PyTorch's {@code at::mt19937}:
 * the state is initialised from the low 32 bits of the seed with the standard recurrence
 * {@code s[i] = 1812433253 * (s[i-1] ^ (s[i-1] >>> 30)) + i}, and the first draw regenerates the whole state block.
 * The output sequence is therefore that of C++ {@code std::mt19937(seed & 0xffffffff)}.
 *
 * <p>Not thread-safe.
 */
public final class Mt19937 {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER = 0x80000000;
    private static final int LOWER = 0x7fffffff;

    private final int[] state = new int[N];
    private int next;

    /** Seeds with the low 32 bits of {@code seed} (as PyTorch does with its 64-bit seed). */
    public Mt19937(long seed) {
        state[0] = (int) seed;
        for (int i = 1; i < N; i++) {
            int prev = state[i - 1];
            state[i] = 1812433253 * (prev ^ (prev >>> 30)) + i;
        }
        next = N; // the first draw twists the whole block
    }

    /** Next 32 random bits; read them as unsigned ({@code Integer.toUnsignedLong}). */
    public int nextInt() {
        if (next == N) twist();
        int y = state[next++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    private void twist() {
        int[] s = state;
        int k = 0;
        for (; k < N - M; k++) s[k] = s[k + M] ^ mix(s[k], s[k + 1]);
        for (; k < N - 1; k++) s[k] = s[k + M - N] ^ mix(s[k], s[k + 1]);
        s[N - 1] = s[M - 1] ^ mix(s[N - 1], s[0]);
        next = 0;
    }

    private static int mix(int u, int v) {
        int y = (u & UPPER) | (v & LOWER);
        return (y >>> 1) ^ ((v & 1) != 0 ? MATRIX_A : 0);
    }
}
