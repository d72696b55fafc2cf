package org.dit4j.engine.parallel;

import java.util.Arrays;

/**
 * How the rows of an image (or latent) are spread over the ranks of a group: rank r holds the contiguous rows
 * [start(r), start(r) + rows(r)), in rank order. {@link #even} gives every rank ⌊H/N⌋ rows and the first H mod N ranks one
 * more (as {@code torch.tensor_split}), so heights need not be divisible by the rank count; every rank holds at least
 * one row.
 *
 * <p>A split of the latent also describes every activation derived from it by whole-factor upsampling: a tensor with
 * s·rows(r) rows on rank r is this split scaled by s ({@link #scale}).
 */
public record RowSplit(long[] rows) {

    public RowSplit {
        if (rows == null || rows.length == 0) throw new IllegalArgumentException("a row split needs at least one rank");
        rows = rows.clone();
        for (int r = 0; r < rows.length; r++)
            if (rows[r] < 1)
                throw new IllegalArgumentException("every rank of a row split needs at least one row, rank " + r + " has " + rows[r]
                        + " in " + Arrays.toString(rows));
    }

    /** H rows over N ranks: ⌊H/N⌋ each, one more for the first H mod N ranks. Needs H ≥ N. */
    public static RowSplit even(long height, int ranks) {
        if (ranks < 1) throw new IllegalArgumentException("a row split needs at least one rank, got " + ranks);
        if (height < ranks)
            throw new IllegalArgumentException("cannot split " + height + " rows over " + ranks + " ranks: every rank needs at least "
                    + "one row; use at most " + height + " ranks for this height, or a larger image");
        long[] r = new long[ranks];
        for (int i = 0; i < ranks; i++) r[i] = height / ranks + (i < height % ranks ? 1 : 0);
        return new RowSplit(r);
    }

    @Override public long[] rows() { return rows.clone(); }

    public int ranks() { return rows.length; }

    /** Rows of rank r. */
    public long rows(int r) { return rows[r]; }

    /** First row of rank r. */
    public long start(int r) {
        long s = 0;
        for (int i = 0; i < r; i++) s += rows[i];
        return s;
    }

    /** One past the last row of rank r. */
    public long end(int r) { return start(r) + rows[r]; }

    public long total() { return Arrays.stream(rows).sum(); }

    public long max() { return Arrays.stream(rows).max().orElseThrow(); }

    public long min() { return Arrays.stream(rows).min().orElseThrow(); }

    /** Whether all ranks hold the same number of rows. */
    public boolean isEven() { return max() == min(); }

    /**
     * The factor s by which a tensor with {@code extent} rows (or tokens, or any unit proportional to rows) on rank r is this
     * split scaled; fails when extent is not a whole multiple of rows(r).
     */
    public long scale(int rank, long extent, String what) {
        if (extent % rows[rank] != 0 || extent == 0)
            throw new IllegalArgumentException(what + ": rank " + rank + " holds " + extent + ", which is not a whole multiple of its "
                    + rows[rank] + " rows of the split " + Arrays.toString(rows) + "; the tensor does not follow the row split");
        return extent / rows[rank];
    }

    @Override public boolean equals(Object o) { return o instanceof RowSplit s && Arrays.equals(rows, s.rows); }

    @Override public int hashCode() { return Arrays.hashCode(rows); }

    @Override public String toString() { return "RowSplit" + Arrays.toString(rows); }
}
