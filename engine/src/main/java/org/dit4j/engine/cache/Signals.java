package org.dit4j.engine.cache;

/**
 * What a pipeline measured for one transformer call, for the policies that decide from a measurement.
 * <p>
 * Everything here is a plain sum plus an element count, so that a sequence-parallel run can add the per-rank
 * partial sums (one all-reduce) and every rank then feeds the identical numbers to its own policy instance: the
 * decision is the same on every rank by construction, and the mean is the mean over the whole sequence, not an
 * average of per-shard means.
 */
public sealed interface Signals permits Signals.None, Signals.RelL1 {

    /** No measurement: the policy needs none at this step, or there is no previous value to compare with yet. */
    None NONE = new None();

    /** The no-measurement value; use {@link #NONE}. */
    record None() implements Signals {}

    /**
     * Sums for a relative L1 distance {@code mean|x − ref| / mean|ref|} between the current value {@code x} of a
     * signal tensor and its reference {@code ref} (the value stored at an earlier step).
     * TeaCache: {@code x} = this step's block-0 modulated input (or the model's time embedding), {@code ref} = the
     * previous step's. First-Block Cache: {@code x} = block 0's residual now, {@code ref} = at the last computed step.
     *
     * @param absDiffSum Σ|x − ref| over the elements measured (this rank's shard, or all shards after reduction)
     * @param diffCount  how many elements {@code absDiffSum} covers
     * @param absRefSum  Σ|ref| over the elements measured
     * @param refCount   how many elements {@code absRefSum} covers
     */
    record RelL1(double absDiffSum, long diffCount, double absRefSum, long refCount) implements Signals {
        public RelL1 {
            if (diffCount <= 0 || refCount <= 0)
                throw new IllegalArgumentException("relative-L1 signal needs positive element counts, got diffCount="
                        + diffCount + ", refCount=" + refCount + " (was the signal tensor empty?)");
            if (absDiffSum < 0 || absRefSum < 0)
                throw new IllegalArgumentException("relative-L1 sums are sums of absolute values and cannot be negative, got absDiffSum="
                        + absDiffSum + ", absRefSum=" + absRefSum);
        }

        /** The sums of two disjoint shards of the same tensors (what an all-reduce of the four numbers gives). */
        public RelL1 plus(RelL1 other) {
            return new RelL1(absDiffSum + other.absDiffSum, diffCount + other.diffCount,
                    absRefSum + other.absRefSum, refCount + other.refCount);
        }

        /**
         * {@code mean|x − ref| / mean|ref|}, each mean and the quotient rounded as {@code rounding} says.
         * Infinite or NaN when the reference is all zeros (the reference implementations then compute the step).
         */
        public double value(ScalarRounding rounding) {
            double meanDiff = rounding.round(absDiffSum / diffCount);
            double meanRef = rounding.round(absRefSum / refCount);
            return rounding.round(meanDiff / meanRef);
        }

        /** The sums of two host arrays of equal length (the reference a backend's reduction is tested against). */
        public static RelL1 ofHost(float[] current, float[] reference) {
            if (current.length != reference.length)
                throw new IllegalArgumentException("current and reference signals must have the same length, got "
                        + current.length + " and " + reference.length);
            double d = 0, r = 0;
            for (int i = 0; i < current.length; i++) {
                d += Math.abs((double) current[i] - reference[i]);
                r += Math.abs((double) reference[i]);
            }
            return new RelL1(d, current.length, r, reference.length);
        }
    }

    /** Shorthand for a {@link RelL1}. */
    static RelL1 relL1(double absDiffSum, long diffCount, double absRefSum, long refCount) {
        return new RelL1(absDiffSum, diffCount, absRefSum, refCount);
    }
}
