package org.dit4j.cuda.cudnn;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.CudaDriver;

/**
 * Random bf16/f16 q, k, v for one attention shape, on the host and the device, with a float64 CPU reference
 * for any output row. Inputs are uniform with unit variance, so softmax(q·kᵀ/√d) is neither flat nor one-hot.
 */
final class AttentionCase implements AutoCloseable {
    final CudnnSdpa.Shape shape;
    final MemorySegment q, k, v;          // host, in shape.layout()
    final long dq, dk, dv, dout;          // device
    private final CudaDriver cuda;
    private final Arena arena = Arena.ofShared();

    AttentionCase(CudaDriver cuda, CudnnSdpa.Shape shape, long seed) {
        this.cuda = cuda;
        this.shape = shape;
        q = random(shape.qBytes(), seed);
        k = random(shape.kvBytes(), seed + 1);
        v = random(shape.kvBytes(), seed + 2);
        dq = cuda.memAlloc(shape.qBytes());
        dk = cuda.memAlloc(shape.kvBytes());
        dv = cuda.memAlloc(shape.kvBytes());
        dout = cuda.memAlloc(shape.qBytes());
        upload(dq, q);
        upload(dk, k);
        upload(dv, v);
    }

    private MemorySegment random(long bytes, long seed) {
        MemorySegment m = arena.allocate(bytes, 16);
        long n = bytes / 2;
        int chunks = 64;
        long per = (n + chunks - 1) / chunks;
        boolean bf16 = shape.dtype() == DType.BF16;
        IntStream.range(0, chunks).parallel().forEach(c -> {
            SplittableRandom r = new SplittableRandom(seed * 1_000_003L + c);
            long end = Math.min(n, (c + 1) * per);
            for (long i = c * per; i < end; i++) {
                float x = (float) ((r.nextDouble() * 2 - 1) * Math.sqrt(3));
                m.setAtIndex(ValueLayout.JAVA_SHORT, i, bf16 ? DType.floatToBf16(x) : DType.floatToF16(x));
            }
        });
        return m;
    }

    /** Synchronous host-to-device copy of a whole segment. */
    void upload(long dst, MemorySegment src) {
        cuda.memcpyHtoDAsync(dst, src, src.byteSize(), 0);
        cuda.contextSynchronize();
    }

    float at(MemorySegment m, long i) {
        short s = m.getAtIndex(ValueLayout.JAVA_SHORT, i);
        return shape.dtype() == DType.BF16 ? DType.bf16ToFloat(s) : DType.f16ToFloat(s);
    }

    /** Flat element index of (b, position s, head h, channel c) in a tensor of sequence length len. */
    long index(int b, int s, int h, int c, int len) {
        int H = shape.heads(), d = shape.headDim();
        return shape.layout() == CudnnSdpa.Layout.BSHD
                ? (((long) b * len + s) * H + h) * d + c
                : (((long) b * H + h) * len + s) * d + c;
    }

    /** Reference output row (b, query i, head h) in float64 from the rounded inputs. */
    double[] referenceRow(int b, int i, int h) {
        int d = shape.headDim(), lk = shape.seqKv(), lq = shape.seqQ();
        double[] qi = new double[d];
        for (int c = 0; c < d; c++) qi[c] = at(q, index(b, i, h, c, lq));
        double[] s = new double[lk];
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < lk; j++) {
            double acc = 0;
            long base = index(b, j, h, 0, lk);
            for (int c = 0; c < d; c++) acc += qi[c] * at(k, base + c);
            s[j] = acc * shape.scale();
            max = Math.max(max, s[j]);
        }
        double sum = 0;
        for (int j = 0; j < lk; j++) {
            s[j] = Math.exp(s[j] - max);
            sum += s[j];
        }
        double[] out = new double[d];
        for (int j = 0; j < lk; j++) {
            double p = s[j] / sum;
            long base = index(b, j, h, 0, lk);
            for (int c = 0; c < d; c++) out[c] += p * at(v, base + c);
        }
        return out;
    }

    /** Copies the device output back. */
    MemorySegment output() {
        MemorySegment o = arena.allocate(shape.qBytes(), 16);
        cuda.contextSynchronize();
        cuda.memcpyDtoHAsync(o, dout, o.byteSize(), 0);
        cuda.contextSynchronize();
        return o;
    }

    /** Number of non-finite elements of an output (a NaN-poisoned output that was not fully written shows here). */
    long nonFinite(MemorySegment o) {
        long n = o.byteSize() / 2;
        return IntStream.range(0, 64).parallel().mapToLong(c -> {
            long per = (n + 63) / 64, bad = 0;
            for (long i = c * per; i < Math.min(n, (c + 1) * per); i++) if (!Float.isFinite(at(o, i))) bad++;
            return bad;
        }).sum();
    }

    /** rel-L2 = ‖out − ref‖ / ‖ref‖ over the given rows {b, i, h}. */
    double relL2(MemorySegment o, int[][] rows) {
        double[] errRef = IntStream.range(0, rows.length).parallel().mapToObj(r -> {
            int[] row = rows[r];
            double[] ref = referenceRow(row[0], row[1], row[2]);
            double e = 0, n = 0;
            for (int c = 0; c < ref.length; c++) {
                double got = at(o, index(row[0], row[1], row[2], c, shape.seqQ()));
                e += (got - ref[c]) * (got - ref[c]);
                n += ref[c] * ref[c];
            }
            return new double[] {e, n};
        }).reduce(new double[2], (a, b) -> new double[] {a[0] + b[0], a[1] + b[1]});
        return Math.sqrt(errRef[0] / errRef[1]);
    }

    int[][] allRows() {
        int[][] rows = new int[shape.batch() * shape.seqQ() * shape.heads()][];
        int n = 0;
        for (int b = 0; b < shape.batch(); b++)
            for (int i = 0; i < shape.seqQ(); i++)
                for (int h = 0; h < shape.heads(); h++) rows[n++] = new int[] {b, i, h};
        return rows;
    }

    int[][] randomRows(int count, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[][] rows = new int[count][];
        for (int n = 0; n < count; n++)
            rows[n] = new int[] {r.nextInt(shape.batch()), r.nextInt(shape.seqQ()), r.nextInt(shape.heads())};
        rows[0] = new int[] {0, 0, 0};
        rows[count - 1] = new int[] {shape.batch() - 1, shape.seqQ() - 1, shape.heads() - 1};
        return rows;
    }

    /** Poison the output with NaN so unwritten elements are caught. */
    void poisonOutput() {
        int nan2 = shape.dtype() == DType.BF16 ? 0x7FC07FC0 : 0x7E007E00;   // two 16-bit NaNs
        cuda.memsetD32Async(dout, nan2, shape.qBytes() / 4, 0);
        cuda.contextSynchronize();
    }

    @Override
    public void close() {
        cuda.memFree(dq);
        cuda.memFree(dk);
        cuda.memFree(dv);
        cuda.memFree(dout);
        arena.close();
    }
}
