package org.dit4j.engine.parallel;

import org.dit4j.core.ops.ForwardingOps;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.PartialAttention;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * Patch (row) parallelism as an {@link Ops} decorator: a convolutional model runs unchanged on its rank's slab of rows
 * of an image [N, C, H, W] — rank r holds the rows of a {@link RowSplit} (of the input, scaled by any whole-factor
 * upsampling since) — and the three kinds of op that look across rows talk to the other ranks of {@code group}:
 * <ul>
 *   <li><b>conv2d</b> with a kernel of height 2p+1, stride 1 and padding p along H (the 3×3 "same" convolutions):
 *       each rank receives the p rows above its slab from rank r−1 and the p rows below from rank r+1 (zeros beyond
 *       the image's top and bottom, as the zero padding), and convolves [above ‖ slab ‖ below] with no padding along
 *       H: exactly the rows the kernel needs, at the resolution the convolution runs at (after an upsample, the
 *       upsampled rows). Kernels of height 1 (1×1 convs) run locally.</li>
 *   <li><b>groupNorm</b>: the statistics of the whole image, computed like {@code groupNorm} does (two passes): the
 *       per-group sums of every slab ({@link Ops#groupStats}) are all-reduced into the mean, then the sums of squared
 *       deviations from that mean into the (biased) variance, and {@link Ops#groupNormWithStats} normalises the slab.
 *       Two all-reduces of [N, groups, 2] F32 per norm.</li>
 *   <li><b>attention</b> over the image's tokens (rows in row-major order, rank r's tokens are its rows): K and V are
 *       all-gathered in rank order — the whole sequence — and the rank's queries attend over it. Memory for K and V is
 *       that of the whole sequence; the VAE runs its attention at the coarsest resolution, where this is small.</li>
 * </ul>
 * Everything else (element-wise ops, 1×1 convs, per-token linears, nearest upsampling, which copies rows within the
 * slab) is the local backend's. So this is exact for models whose only cross-row operations are those three — the KL
 * VAE decoder; it refuses convolutions it cannot split (stride along H, non-"same" padding), {@code conv3d} and
 * {@code attentionWithLse}.
 *
 * <p>Uneven splits: halos are the same p rows on every rank, so uneven slabs need nothing special there; all-gathers
 * pad every rank's part to the largest one and drop the padding afterwards ({@link #gatherRows}).
 */
public final class SpatialParallelOps extends ForwardingOps {
    private final Communicator group;
    private final RowSplit split;

    /**
     * @param local the rank's backend
     * @param group the ranks sharing the image, in row order (rank r holds the r-th slab)
     * @param split the rows of the model's input per rank
     */
    public SpatialParallelOps(Ops local, Communicator group, RowSplit split) {
        super(local);
        if (split.ranks() != group.size())
            throw new IllegalArgumentException("row split " + split + " has " + split.ranks() + " parts but the group has "
                    + group.size() + " ranks");
        this.group = group;
        this.split = split;
    }

    public RowSplit split() { return split; }

    public Communicator group() { return group; }

    @Override public String name() { return delegate.name() + " + patch parallel (" + group.size() + " row slabs)"; }

    // ------------------------------------------------------------------ convolution with halo exchange

    @Override public Tensor conv2d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding, int groups) {
        if (group.size() == 1) return delegate.conv2d(x, w, bias, stride, padding, groups);
        if (x.rank() != 4 || w.rank() != 4)
            throw new IllegalArgumentException("patch-parallel conv2d: x must be [N, C, H, W] and w [O, C, kh, kw], got " + x.shape()
                    + ", " + w.shape());
        long kh = w.dim(2);
        int p = padding[0];
        if (kh == 1 && p == 0 && stride[0] == 1) return delegate.conv2d(x, w, bias, stride, padding, groups);
        if (stride[0] != 1 || kh != 2L * p + 1)
            throw new UnsupportedOperationException("patch-parallel conv2d splits only stride-1 convolutions with 'same' padding "
                    + "along H (kernel height 2p+1, padding p); got kernel " + w.shape() + ", stride " + stride[0] + ", padding "
                    + p + " — run this model without patch parallelism");
        long s = split.scale(group.rank(), x.dim(2), "patch-parallel conv2d input " + x.shape());
        if (split.min() * s < p)
            throw new IllegalArgumentException("patch-parallel conv2d: a halo of " + p + " rows is more than the smallest slab ("
                    + split.min() * s + " rows of " + split + " × " + s + "); use fewer ranks or a taller image");
        try (Scope scope = Scope.open()) {
            Tensor[] halo = halos(x, p);
            Tensor padded = delegate.concat(2, halo[0], x, halo[1]);
            halo[0].close();
            halo[1].close();
            Tensor out = delegate.conv2d(padded, w, bias, stride, new int[] {0, padding[1]}, groups);
            padded.close();
            return scope.keep(out);
        }
    }

    /**
     * The p rows above this rank's slab (rank r−1's last rows) and the p rows below it (rank r+1's first rows). Two ring
     * exchanges: every rank sends its first rows up and its last rows down; the ranks at the image's top and bottom send
     * zeros around the ring instead, which arrive exactly where the zero padding belongs.
     */
    private Tensor[] halos(Tensor x, int p) {
        int r = group.rank(), n = group.size();
        long h = x.dim(2);
        Shape haloShape = x.shape().with(2, p);
        Tensor first = r == 0 ? delegate.zeros(x.dtype(), haloShape) : delegate.slice(x, 2, 0, p);
        Tensor below = group.sendRecv(first, (r + n - 1) % n, (r + 1) % n);
        first.close();
        Tensor last = r == n - 1 ? delegate.zeros(x.dtype(), haloShape) : delegate.slice(x, 2, h - p, h);
        Tensor above = group.sendRecv(last, (r + 1) % n, (r + n - 1) % n);
        last.close();
        return new Tensor[] {above, below};
    }

    // ------------------------------------------------------------------ group norm over the whole image

    @Override public Tensor groupNorm(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        if (group.size() == 1) return delegate.groupNorm(x, groups, weight, bias, eps);
        if (x.rank() < 3)
            throw new IllegalArgumentException("patch-parallel groupNorm: x must be [N, C, H, ...] split along H, got " + x.shape());
        long n = x.dim(0), c = x.dim(1), h = x.dim(2);
        if (groups < 1 || c % groups != 0)
            throw new IllegalArgumentException("groupNorm: groups (" + groups + ") must divide the " + c + " channels of x " + x.shape());
        long s = split.scale(group.rank(), h, "patch-parallel groupNorm input " + x.shape());
        long perRow = n * c * h == 0 ? 0 : x.numel() / (n * c * h);
        double count = (double) (c / groups) * perRow * split.total() * s;   // positions of one group in the whole image
        float inv = (float) (1.0 / count);
        try (Scope scope = Scope.open()) {
            Tensor sums = group.allReduce(delegate.groupStats(x, groups, null));                 // [N, G, 2]
            Tensor mean = delegate.scale(delegate.slice(sums, 2, 0, 1), inv).view(n, groups);
            Tensor squares = group.allReduce(delegate.groupStats(x, groups, mean));
            Tensor var = delegate.scale(delegate.slice(squares, 2, 1, 2), inv).view(n, groups);
            return scope.keep(delegate.groupNormWithStats(x, groups, mean, var, weight, bias, eps));
        }
    }

    /** The fused form must not bypass the whole-image statistics: groupNorm above, then SiLU on the slab. */
    @Override public Tensor groupNormSilu(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        if (group.size() == 1) return delegate.groupNormSilu(x, groups, weight, bias, eps);
        try (Scope scope = Scope.open()) {
            return scope.keep(delegate.silu(groupNorm(x, groups, weight, bias, eps)));
        }
    }

    // ------------------------------------------------------------------ attention over all tokens

    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        if (group.size() == 1) return delegate.attention(q, k, v, bias, scale);
        if (bias != null)
            throw new UnsupportedOperationException("patch-parallel attention takes no bias/mask (got " + bias.shape()
                    + "); run this model without patch parallelism");
        if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
            throw new IllegalArgumentException("patch-parallel attention: q, k, v must be [B, L, H, d], got " + q.shape() + ", "
                    + k.shape() + ", " + v.shape());
        try (Scope scope = Scope.open()) {
            Tensor kAll = gatherRows(k, 1), vAll = gatherRows(v, 1);
            return scope.keep(delegate.attention(q, kAll, vAll, null, scale));
        }
    }

    /** Not patch parallel: models call {@link #attention}. */
    @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        throw new UnsupportedOperationException("attentionWithLse is not patch parallel; a model under patch parallelism calls "
                + "attention(...), which gathers K and V over the group itself");
    }

    @Override public Tensor conv3d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding) {
        throw new UnsupportedOperationException("conv3d is not patch parallel (only 2-D images are split into row slabs); run "
                + "this model without patch parallelism");
    }

    // ------------------------------------------------------------------ gathering

    /**
     * Every rank's part of x along {@code dim} concatenated in rank order, on every rank (collective). x's extent along
     * dim is rank r's rows scaled by a whole factor (image rows, or tokens = rows × tokens per row); uneven splits are
     * padded to the largest part for the all-gather and the padding dropped.
     */
    public Tensor gatherRows(Tensor x, int dim) {
        int r = group.rank(), n = group.size();
        long per = split.scale(r, x.dim(dim), "patch-parallel gather of " + x.shape() + " along dim " + dim);
        if (n == 1) return delegate.copy(x);
        if (split.isEven()) return group.allGather(x, dim);
        long max = split.max() * per;
        try (Scope scope = Scope.open()) {
            Tensor part = x;
            if (x.dim(dim) < max) {
                long[] pads = new long[2 * (x.rank() - dim)];
                pads[2 * (x.rank() - 1 - dim) + 1] = max - x.dim(dim);               // (before, after) from the last dim
                part = delegate.pad(x, pads, 0f);
            }
            Tensor all = group.allGather(part, dim);
            if (part != x) part.close();
            Tensor[] pieces = new Tensor[n];
            for (int i = 0; i < n; i++) pieces[i] = delegate.slice(all, dim, i * max, i * max + split.rows(i) * per);
            all.close();
            Tensor out = delegate.concat(dim, pieces);
            for (Tensor t : pieces) t.close();
            return scope.keep(out);
        }
    }
}
