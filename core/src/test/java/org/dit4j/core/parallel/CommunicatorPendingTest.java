package org.dit4j.core.parallel;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.dit4j.core.testing.TestTensors.randn;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The started (asynchronous) exchanges of the SPI on the in-process communicator: same results as the synchronous ones. */
class CommunicatorPendingTest {
    static Tensor input(int r, DType t, long... dims) { return randn(new Random(300 + r), t, dims); }

    @Test void startedExchangesEqualSynchronousOnes() {
        for (int n : new int[] {1, 2, 3, 4}) {
            List<List<float[]>> got = Ranks.run(LocalCommunicator.group(n), c -> {
                int r = c.rank();
                Tensor q = input(r, DType.BF16, 2, 3, 2L * n, 4), k = input(r + 10, DType.F32, 2, 3, 2L * n, 4);
                List<float[]> out = new ArrayList<>();
                // several exchanges pending at once, awaited in start order
                Communicator.Pending a = c.startAllToAll(new Tensor[] {q, k}, 2, 1);
                Communicator.Pending p = c.startRingPass(new Tensor[] {q, k});
                Communicator.Pending s = c.startSendRecv(new Tensor[] {k}, (r + n - 1) % n, (r + 1) % n);
                Tensor[] ya = a.await(), yp = p.await(), ys = s.await();
                Tensor[] wa = c.allToAll(new Tensor[] {q, k}, 2, 1), wp = c.ringPass(new Tensor[] {q, k});
                Tensor[] ws = c.sendRecv(new Tensor[] {k}, (r + n - 1) % n, (r + 1) % n);
                assertEquals(2, ya.length);
                assertEquals(2, yp.length);
                assertEquals(1, ys.length);
                for (int i = 0; i < 2; i++) {
                    assertEquals(wa[i].shape(), ya[i].shape());
                    assertEquals(wa[i].dtype(), ya[i].dtype());
                    assertArrayEquals(wa[i].toFloatArray(), ya[i].toFloatArray(), "allToAll #" + i + " rank " + r + " of " + n);
                    assertArrayEquals(wp[i].toFloatArray(), yp[i].toFloatArray(), "ringPass #" + i + " rank " + r + " of " + n);
                }
                assertArrayEquals(ws[0].toFloatArray(), ys[0].toFloatArray(), "sendRecv rank " + r + " of " + n);
                // the ring pass really came from rank − 1
                assertArrayEquals(input((r + n - 1) % n, DType.BF16, 2, 3, 2L * n, 4).toFloatArray(), yp[0].toFloatArray());
                var twice = assertThrows(IllegalStateException.class, a::await);
                assertTrue(twice.getMessage().contains("already awaited"), twice.getMessage());
                out.add(ya[0].toFloatArray());
                return out;
            });
            assertEquals(n, got.size());
        }
    }

    /** The slab all-to-all equals the plain all-to-all of the copied-out slab, for every split/concat pair and slab. */
    @Test void slabAllToAllEqualsAllToAllOfTheSlab() {
        for (int n : new int[] {1, 2, 4}) {
            Ranks.run(LocalCommunicator.group(n), c -> {
                int r = c.rank();
                Tensor q = input(r, DType.BF16, 2, 3, 4L * n, 4), v = input(r + 20, DType.F32, 2, 3, 4L * n, 2);
                for (int[] sc : new int[][] {{2, 1}, {2, 2}, {2, 0}, {2, 3}}) {
                    for (long[] slab : new long[][] {{0, n}, {n, 2L * n}, {3L * n, n}, {0, 4L * n}}) {
                        Tensor[] got = c.startAllToAll(new Tensor[] {q, v}, sc[0], sc[1], slab[0], slab[1]).await();
                        Tensor[] want = c.allToAll(new Tensor[] {slice(q, 2, slab[0], slab[1]), slice(v, 2, slab[0], slab[1])}, sc[0], sc[1]);
                        for (int i = 0; i < 2; i++) {
                            assertEquals(want[i].shape(), got[i].shape());
                            assertArrayEquals(want[i].toFloatArray(), got[i].toFloatArray(),
                                    "slab " + slab[0] + "+" + slab[1] + " split/concat " + sc[0] + "/" + sc[1] + " #" + i + " rank " + r + " of " + n);
                        }
                    }
                }
                if (n > 1) {
                    var e = assertThrows(IllegalArgumentException.class, () -> c.startAllToAll(new Tensor[] {q}, 2, 1, 1, 1L + n));
                    assertTrue(e.getMessage().contains("divisible by the group size"), e.getMessage());
                }
                var out = assertThrows(IllegalArgumentException.class, () -> c.startAllToAll(new Tensor[] {q}, 2, 1, 4L * n, n));
                assertTrue(out.getMessage().contains("must lie inside"), out.getMessage());
                return null;
            });
        }
    }

    /** x[..., start : start+len, ...] along dim, by element copies (independent of the code under test). */
    static Tensor slice(Tensor x, int dim, long start, long len) {
        Tensor out = Tensor.zeros(x.dtype(), x.shape().with(dim, len));
        long[] xs = x.shape().strides(), os = out.shape().strides();
        long[] idx = new long[x.rank()];
        for (long o = 0; o < out.numel(); o++) {
            long rem = o, src = 0;
            for (int d = 0; d < x.rank(); d++) {
                idx[d] = rem / os[d];
                rem %= os[d];
                src += (d == dim ? idx[d] + start : idx[d]) * xs[d];
            }
            out.setFloat(o, x.getFloat(src));
        }
        return out;
    }
}
