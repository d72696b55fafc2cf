package org.dit4j.core.tensor;

import java.util.Arrays;

/** An immutable list of dimension sizes, row-major (last dimension contiguous). */
public final class Shape {
    private final long[] dims;

    private Shape(long[] dims) {
        for (long d : dims) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(dims));
        }
        this.dims = dims;
    }

    public static Shape of(long... dims) { return new Shape(dims.clone()); }

    public static Shape of(int... dims) { return new Shape(Arrays.stream(dims).asLongStream().toArray()); }

    public int rank() { return dims.length; }

    /** Size of dimension {@code i}; negative i counts from the end (-1 = last). */
    public long dim(int i) { return dims[i < 0 ? dims.length + i : i]; }

    /** Size of dimension {@code i} as an int, failing clearly when it does not fit. */
    public int dimInt(int i) { return Math.toIntExact(dim(i)); }

    public long[] dims() { return dims.clone(); }

    public long numel() {
        long n = 1;
        for (long d : dims) n = Math.multiplyExact(n, d);
        return n;
    }

    /** Row-major strides, in elements. */
    public long[] strides() {
        long[] s = new long[dims.length];
        long acc = 1;
        for (int i = dims.length - 1; i >= 0; i--) { s[i] = acc; acc *= dims[i]; }
        return s;
    }

    /** Product of all dimensions but the last (rows of a [..., n] matrix view). */
    public long rows() { return dims.length == 0 ? 1 : numel() / Math.max(1, dims[dims.length - 1]); }

    /** This shape with dimension i replaced. */
    public Shape with(int i, long size) {
        long[] d = dims.clone();
        d[i < 0 ? d.length + i : i] = size;
        return new Shape(d);
    }

    /** Resolves one -1 entry against this shape's element count (like torch.reshape). */
    public Shape reshape(long... newDims) {
        long[] d = newDims.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < d.length; i++) {
            if (d[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one -1 allowed in reshape " + Arrays.toString(newDims));
                infer = i;
            } else known *= d[i];
        }
        if (infer >= 0) {
            if (known == 0 || numel() % known != 0)
                throw new IllegalArgumentException("cannot reshape " + this + " to " + Arrays.toString(newDims));
            d[infer] = numel() / known;
        }
        Shape s = new Shape(d);
        if (s.numel() != numel())
            throw new IllegalArgumentException("cannot reshape " + this + " (" + numel() + " elements) to " + s);
        return s;
    }

    @Override public boolean equals(Object o) { return o instanceof Shape s && Arrays.equals(dims, s.dims); }

    @Override public int hashCode() { return Arrays.hashCode(dims); }

    @Override public String toString() { return Arrays.toString(dims); }
}
