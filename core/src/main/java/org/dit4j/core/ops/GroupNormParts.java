package org.dit4j.core.ops;

import java.util.Arrays;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * Backend-independent implementations of {@link Ops#groupStats} and {@link Ops#groupNormWithStats}, composed of other
 * ops so that they run on the backend's device (plus one small host step, see below), and the argument checks every
 * implementation shares. Arithmetic is in F32: a BF16/F16 x is cast once at the start (the result cast back once).
 *
 * <ul>
 *   <li>groupStats: the per-(n, group) sums are two matrix-vector products with vectors of ones (over the last dim,
 *       then over the rest of the group), so the ones vectors stay as short as one image row.</li>
 *   <li>groupNormWithStats: y = (x − mean)·a + b with a[n, c] = w[c]/√(var[n, g] + eps); the [N, groups] reciprocal
 *       square roots are computed on the host in double, because {@link Ops} has no element-wise rsqrt.</li>
 * </ul>
 */
public final class GroupNormParts {
    private GroupNormParts() {}

    /** {@link Ops#groupStats} from other ops. */
    public static Tensor groupStats(Ops ops, Tensor x, int groups, Tensor center) {
        long[] ncs = checkGroups("groupStats", x, groups);
        long n = ncs[0], c = ncs[1], s = ncs[2], cg = c / groups;
        checkStats("groupStats", "center", center, n, groups, true);
        if (x.numel() == 0) return ops.zeros(DType.F32, Shape.of(n, groups, 2));
        long last = x.rank() > 2 ? x.dim(x.rank() - 1) : 1;        // sum one row first: short ones vectors
        try (Scope scope = Scope.open()) {
            Tensor xf = x.dtype() == DType.F32 ? x : ops.cast(x, DType.F32);
            Tensor d = xf.view(n, groups, cg * s);
            if (center != null) d = ops.sub(d, center.view(n, groups, 1));
            Tensor s1 = sums(ops, d, n * groups, cg * s / last, last);
            Tensor sq = ops.mul(d, d);
            if (d != xf) d.close();
            if (xf != x) xf.close();
            Tensor s2 = sums(ops, sq, n * groups, cg * s / last, last);
            sq.close();
            return scope.keep(ops.concat(2, s1.view(n, groups, 1), s2.view(n, groups, 1)));
        }
    }

    /** Σ over the last two factors of t viewed as [rows, a, b] (F32): ones-vector products over b, then over a → [rows, 1]. */
    private static Tensor sums(Ops ops, Tensor t, long rows, long a, long b) {
        Tensor inner = ops.linear(t.view(rows * a, b), ones(ops, b), null);       // [rows·a, 1]
        Tensor outer = ops.linear(inner.view(rows, a), ones(ops, a), null);       // [rows, 1]
        inner.close();
        return outer;
    }

    private static Tensor ones(Ops ops, long k) {
        float[] v = new float[Math.toIntExact(k)];
        Arrays.fill(v, 1f);
        return ops.upload(Tensor.of(v, 1, k));
    }

    /** {@link Ops#groupNormWithStats} from other ops (the 1/√(var + eps) of the [N, groups] variances on the host). */
    public static Tensor groupNormWithStats(Ops ops, Tensor x, int groups, Tensor mean, Tensor var, Tensor weight, Tensor bias,
                                           float eps) {
        long[] ncs = checkGroups("groupNormWithStats", x, groups);
        long n = ncs[0], c = ncs[1], s = ncs[2], cg = c / groups;
        checkStats("groupNormWithStats", "mean", mean, n, groups, false);
        checkStats("groupNormWithStats", "var", var, n, groups, false);
        checkAffine("groupNormWithStats", "weight", weight, c);
        checkAffine("groupNormWithStats", "bias", bias, c);
        if (x.numel() == 0) return ops.empty(x.dtype(), x.shape());
        long[] perChannel = new long[x.rank()];                              // [n, c, 1, 1, ...]
        Arrays.fill(perChannel, 1);
        perChannel[0] = n;
        perChannel[1] = c;
        try (Scope scope = Scope.open()) {
            float[] v;
            try (Tensor vh = ops.toHost(var)) { v = vh.toFloatArray(); }
            float[] r = new float[v.length];
            for (int i = 0; i < v.length; i++) r[i] = (float) (1.0 / Math.sqrt((double) v[i] + eps));
            Tensor a;                                                          // [n, c] as [n, groups, cg] or broadcast
            if (weight != null) {
                Tensor rstd = ops.upload(Tensor.of(r, n, groups, 1));
                a = ops.mul(rstd, weight.view(groups, cg));
                rstd.close();
            } else {
                float[] full = new float[Math.toIntExact(n * c)];
                for (int i = 0; i < full.length; i++) full[i] = r[(int) (i / c) * groups + (int) (i % c / cg)];
                a = ops.upload(Tensor.of(full, n, c));
            }
            Tensor xf = x.dtype() == DType.F32 ? x : ops.cast(x, DType.F32);
            Tensor d = ops.sub(xf.view(n, groups, cg * s), mean.view(n, groups, 1));
            if (xf != x) xf.close();
            Tensor y = ops.mul(d.view(x.shape()), a.view(perChannel));
            d.close();
            a.close();
            if (bias != null) {
                perChannel[0] = 1;
                Tensor yb = ops.add(y, bias.view(Arrays.copyOfRange(perChannel, 1, perChannel.length)));
                y.close();
                y = yb;
            }
            if (x.dtype() == DType.F32) return scope.keep(y);
            Tensor out = ops.cast(y, x.dtype());
            y.close();
            return scope.keep(out);
        }
    }

    // ------------------------------------------------------------------ checks shared by implementations

    /** Checks x:[N, C, ...] with C divisible by groups; returns {N, C, positions}. */
    public static long[] checkGroups(String op, Tensor x, int groups) {
        if (!x.dtype().isFloating())
            throw new IllegalArgumentException(op + ": x must be a floating tensor (F32, BF16, F16), got " + x.dtype());
        if (x.rank() < 2) throw new IllegalArgumentException(op + ": x must have shape [N, C, ...], got " + x.shape());
        long n = x.dim(0), c = x.dim(1);
        if (groups < 1 || c % groups != 0)
            throw new IllegalArgumentException(op + ": groups (" + groups + ") must divide the " + c + " channels of x " + x.shape());
        return new long[] {n, c, n * c == 0 ? 0 : x.numel() / (n * c)};
    }

    /** Checks a statistics tensor: F32 [N, groups] (null allowed only when {@code optional}). */
    public static void checkStats(String op, String name, Tensor t, long n, int groups, boolean optional) {
        if (t == null) {
            if (optional) return;
            throw new IllegalArgumentException(op + ": " + name + " must be an F32 [" + n + ", " + groups + "] tensor, got null");
        }
        if (t.dtype() != DType.F32 || !t.shape().equals(Shape.of(n, groups)))
            throw new IllegalArgumentException(op + ": " + name + " must be F32 [" + n + ", " + groups + "] (one value per sample "
                    + "and group), got " + t.dtype() + " " + t.shape());
    }

    /** Checks an optional per-channel affine vector [C]. */
    public static void checkAffine(String op, String name, Tensor t, long c) {
        if (t == null) return;
        if (!t.dtype().isFloating() || t.rank() != 1 || t.dim(0) != c)
            throw new IllegalArgumentException(op + ": " + name + " must be a floating [" + c + "] vector, got " + t.dtype() + " "
                    + t.shape());
    }
}
