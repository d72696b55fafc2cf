package org.dit4j.engine.parallel;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Tensor;

/**
 * {@code --verify-parallel}: run the same request on one rank and on the mesh and report how far apart the results are
 * — the largest absolute difference and the relative L2 error ‖mesh − single‖₂ / ‖single‖₂ (in double) — for every
 * rank's result. A parallel strategy is exact up to rounding, so the expected size is that of the dtype's rounding:
 * {@link #tolerance} gives the project's bounds (f32 1e-5, bf16/f16 1e-2; issue "Multi-GPU runtime").
 */
public final class ParallelVerification {
    private ParallelVerification() {}

    /** One parallel result compared with the single-rank one; a NaN in either makes maxAbs and relL2 NaN. */
    public record Report(String label, long elements, double maxAbs, double relL2) {

        /** Whether the rel-L2 error is at most {@code tolerance} (false for NaN). */
        public boolean within(double tolerance) { return relL2 <= tolerance; }

        /** "label: max |Δ| 1.2e-07, rel-L2 3.4e-08 (n values)". */
        public String summary() {
            return String.format(Locale.ROOT, "%s: max |Δ| %.3e, rel-L2 %.3e (%d values)", label, maxAbs, relL2, elements);
        }
    }

    /** The outcome of {@link #verify}: one report per rank, the worst of them, and the wall times of both runs. */
    public record Verification(String label, List<Report> perRank, double singleSeconds, double meshSeconds) {

        /** The report with the largest rel-L2 (NaN counts as largest). */
        public Report worst() {
            Report w = perRank.getFirst();
            for (Report r : perRank) if (Double.isNaN(r.relL2()) || r.relL2() > w.relL2()) w = r;
            return w;
        }

        public boolean within(double tolerance) { return perRank.stream().allMatch(r -> r.within(tolerance)); }

        /** Lines for a console: the worst rank, then every rank, then timings. */
        public String summary() {
            StringBuilder sb = new StringBuilder();
            Report w = worst();
            sb.append(String.format(Locale.ROOT, "verify-parallel %s: worst %s%n", label, w.summary()));
            for (Report r : perRank) sb.append("  ").append(r.summary()).append(System.lineSeparator());
            sb.append(String.format(Locale.ROOT, "  one rank %.3f s, mesh %.3f s%n", singleSeconds, meshSeconds));
            return sb.toString();
        }

        /** Throws {@link IllegalStateException} with the summary when a rank is beyond {@code tolerance}. */
        public Verification check(double tolerance) {
            if (!within(tolerance))
                throw new IllegalStateException("the parallel result differs from the one-rank result by more than rel-L2 "
                        + tolerance + ":\n" + summary());
            return this;
        }
    }

    /** The project's bound on the rel-L2 between a parallel and a single-rank result computed in {@code dtype}. */
    public static double tolerance(DType dtype) {
        return switch (dtype) {
            case F32 -> 1e-5;
            case BF16, F16 -> 1e-2;
            default -> throw new IllegalArgumentException("no parallel-verification tolerance for " + dtype
                    + "; results are compared as F32, BF16 or F16");
        };
    }

    /** Compares two results of equal length element by element. */
    public static Report compare(String label, float[] reference, float[] actual) {
        if (reference.length != actual.length)
            throw new IllegalArgumentException(label + ": the parallel result has " + actual.length + " values, the one-rank result "
                    + reference.length + "; they must have the same shape");
        double num = 0, den = 0, maxAbs = 0;
        boolean nan = false;
        for (int i = 0; i < reference.length; i++) {
            double d = (double) actual[i] - reference[i];
            if (Double.isNaN(d)) { nan = true; continue; }
            num += d * d;
            den += (double) reference[i] * reference[i];
            maxAbs = Math.max(maxAbs, Math.abs(d));
        }
        double rel = den > 0 ? Math.sqrt(num / den) : (num == 0 ? 0 : Double.POSITIVE_INFINITY);
        if (nan) maxAbs = rel = Double.NaN;
        return new Report(label, reference.length, maxAbs, rel);
    }

    /** Compares two tensors of {@code ops}' device (read back to the host) of equal shape. */
    public static Report compare(String label, Ops ops, Tensor reference, Tensor actual) {
        if (!reference.shape().equals(actual.shape()))
            throw new IllegalArgumentException(label + ": the parallel result has shape " + actual.shape() + ", the one-rank result "
                    + reference.shape());
        return compare(label, hostFloats(ops, reference), hostFloats(ops, actual));
    }

    private static float[] hostFloats(Ops ops, Tensor t) {
        if (t.device().isCpu()) return t.toFloatArray();
        try (Tensor h = ops.toHost(t)) { return h.toFloatArray(); }
    }

    /**
     * Runs {@code single} (the request on one rank), then {@code mesh} (the same request on every rank of the mesh,
     * returning each rank's result in rank order), and compares every rank's result with the single-rank one.
     */
    public static Verification verify(String label, Callable<float[]> single, Callable<List<float[]>> mesh) {
        long t0 = System.nanoTime();
        float[] reference = call(single, label + " (one rank)");
        long t1 = System.nanoTime();
        List<float[]> results = call(mesh, label + " (mesh)");
        long t2 = System.nanoTime();
        if (results.isEmpty()) throw new IllegalArgumentException(label + ": the mesh run returned no results");
        List<Report> reports = new ArrayList<>(results.size());
        for (int r = 0; r < results.size(); r++) reports.add(compare(label + " rank " + r, reference, results.get(r)));
        return new Verification(label, List.copyOf(reports), (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    /** {@link #verify} with the mesh part run in-process: one thread per rank of {@code config} ({@link MeshRunner#local}). */
    public static Verification verifyLocal(String label, Callable<float[]> single, ParallelConfig config,
                                           MeshRunner.RankTask<float[]> rankTask) {
        return verify(label, single, () -> MeshRunner.local(config, rankTask));
    }

    private static <T> T call(Callable<T> c, String what) {
        try {
            return c.call();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(what + " failed: " + e.getMessage(), e);
        }
    }
}
