package org.dit4j.server.nodes;

import org.dit4j.server.engine.Conditioning;
import org.dit4j.server.engine.ModelRef;

import java.util.Arrays;
import java.util.Objects;

/** The small link values of the custom-sampling nodes (NOISE, GUIDER, SAMPLER, SIGMAS). */
public final class Values {

    private Values() {}

    /** NOISE: RandomNoise (seeded Gaussian) or DisableNoise. */
    public record Noise(long seed, boolean enabled) {
        @Override public String toString() { return enabled ? "<NOISE seed=" + Long.toUnsignedString(seed) + ">" : "<NOISE disabled>"; }
    }

    /** GUIDER: BasicGuider (negative null, cfg 1) or CFGGuider. */
    public record Guider(ModelRef model, Conditioning positive, Conditioning negative, double cfg) {
        public Guider {
            Objects.requireNonNull(model, "model");
            Objects.requireNonNull(positive, "positive");
        }

        @Override public String toString() { return "<GUIDER cfg=" + cfg + (negative == null ? " basic" : "") + ">"; }
    }

    /** SAMPLER: a sampler name (KSamplerSelect). */
    public record SamplerChoice(String name) {
        @Override public String toString() { return "<SAMPLER " + name + ">"; }
    }

    /** SIGMAS: a float32 schedule (BasicScheduler). */
    public record Sigmas(float[] values) {
        public Sigmas { values = values.clone(); }

        @Override public float[] values() { return values.clone(); }

        @Override public boolean equals(Object o) { return o instanceof Sigmas s && Arrays.equals(values, s.values); }

        @Override public int hashCode() { return Arrays.hashCode(values); }

        @Override public String toString() { return "<SIGMAS " + Arrays.toString(values) + ">"; }
    }
}
