package org.dit4j.core.ops;

import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * A host array of doubles with a shape: the value type of {@link ReferenceOps}. Row-major, like every tensor.
 */
public record DoubleTensor(Shape shape, double[] data) {

    public DoubleTensor {
        if (shape.numel() != data.length)
            throw new IllegalArgumentException("shape " + shape + " needs " + shape.numel() + " values, got " + data.length);
    }

    /** The exact values of a host tensor of any dtype (bf16/f16/fp8 are widened, not re-rounded). */
    public static DoubleTensor of(Tensor host) {
        double[] d = new double[Math.toIntExact(host.numel())];
        for (int i = 0; i < d.length; i++) d[i] = host.getFloat(i);
        return new DoubleTensor(host.shape(), d);
    }

    public static DoubleTensor zeros(long... dims) {
        Shape s = Shape.of(dims);
        return new DoubleTensor(s, new double[Math.toIntExact(s.numel())]);
    }

    public int numel() { return data.length; }

    public int rank() { return shape.rank(); }

    public int dim(int i) { return shape.dimInt(i); }

    /** Flat row-major index of a full multi-index. */
    public int index(int... idx) {
        if (idx.length != shape.rank()) throw new IllegalArgumentException("index " + java.util.Arrays.toString(idx) + " for shape " + shape);
        int flat = 0;
        for (int i = 0; i < idx.length; i++) {
            int d = shape.dimInt(i);
            if (idx[i] < 0 || idx[i] >= d) throw new IndexOutOfBoundsException(java.util.Arrays.toString(idx) + " outside " + shape);
            flat = flat * d + idx[i];
        }
        return flat;
    }

    public double get(int... idx) { return data[index(idx)]; }

    public void set(double v, int... idx) { data[index(idx)] = v; }

    /** Multi-index of flat position {@code flat}. */
    public int[] unravel(int flat) {
        int[] idx = new int[shape.rank()];
        for (int i = idx.length - 1; i >= 0; i--) {
            int d = shape.dimInt(i);
            idx[i] = d == 0 ? 0 : flat % d;
            flat = d == 0 ? 0 : flat / d;
        }
        return idx;
    }

    /**
     * The element that broadcasts (numpy rules: right-aligned, size-1 dims repeat) to position {@code idx} of a
     * larger shape.
     */
    public double broadcastGet(int[] idx) {
        int shift = idx.length - shape.rank();
        int flat = 0;
        for (int i = 0; i < shape.rank(); i++) {
            int d = shape.dimInt(i);
            flat = flat * d + (d == 1 ? 0 : idx[i + shift]);
        }
        return data[flat];
    }
}
