package org.dit4j.engine.cache;

import java.util.Objects;
import java.util.OptionalDouble;
import java.util.OptionalInt;

/**
 * The value of the CLI's {@code --cache} option:
 * <pre>
 * none
 * teacache[:thresh]                   TeaCache, the model's reference preset
 * teacache-ret[:thresh]               TeaCache "ret mode" (Wan2.1 only)
 * magcache[:thresh[,K[,retention]]]   MagCache; empty fields keep the default, e.g. magcache:,4
 * fbcache[:thresh]                    First-Block Cache
 * </pre>
 * Omitted values take the model's published defaults ({@link CacheModel}); {@link #build} says which value is
 * missing where nothing is published.
 */
public record CacheSpec(Kind kind, OptionalDouble threshold, OptionalInt k, OptionalDouble retention) {

    public static final String SYNTAX = "none | teacache[:thresh] | teacache-ret[:thresh] | magcache[:thresh,K,retention] | fbcache[:thresh]";

    /** The cache kinds of the option. */
    public enum Kind {
        NONE("none", 0), TEACACHE("teacache", 1), TEACACHE_RET("teacache-ret", 1), MAGCACHE("magcache", 3), FBCACHE("fbcache", 1);

        private final String word;
        private final int maxValues;

        Kind(String word, int maxValues) {
            this.word = word;
            this.maxValues = maxValues;
        }

        public String word() { return word; }
    }

    public CacheSpec {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(threshold, "threshold");
        Objects.requireNonNull(k, "k");
        Objects.requireNonNull(retention, "retention");
    }

    /** No cache. */
    public static final CacheSpec NONE = new CacheSpec(Kind.NONE, OptionalDouble.empty(), OptionalInt.empty(), OptionalDouble.empty());

    /** Parses an option value; errors quote the value, say what was expected and show the syntax. */
    public static CacheSpec parse(String text) {
        if (text == null || text.isBlank()) throw error(text, "the value is empty");
        String t = text.strip();
        int colon = t.indexOf(':');
        String word = (colon < 0 ? t : t.substring(0, colon)).strip().toLowerCase(java.util.Locale.ROOT);
        Kind kind = null;
        for (Kind k : Kind.values()) if (k.word.equals(word)) kind = k;
        if (kind == null) throw error(text, "unknown cache '" + word + "'");
        if (colon < 0) return new CacheSpec(kind, OptionalDouble.empty(), OptionalInt.empty(), OptionalDouble.empty());
        String rest = t.substring(colon + 1);
        if (kind == Kind.NONE) throw error(text, "'none' takes no values");
        String[] fields = rest.split(",", -1);
        if (fields.length > kind.maxValues)
            throw error(text, kind.word + " takes at most " + kind.maxValues + (kind.maxValues == 1 ? " value (thresh)" : " values (thresh,K,retention)")
                    + ", got " + fields.length);
        if (kind != Kind.MAGCACHE && fields[0].isBlank()) throw error(text, "the threshold after ':' is empty");
        OptionalDouble thresh = fields[0].isBlank() ? OptionalDouble.empty() : OptionalDouble.of(number(text, "threshold", fields[0]));
        if (thresh.isPresent() && (thresh.getAsDouble() < 0 || !Double.isFinite(thresh.getAsDouble())))
            throw error(text, "the threshold must be a finite number ≥ 0 (0 turns caching off), got " + fields[0].strip());
        OptionalInt k = OptionalInt.empty();
        if (fields.length > 1 && !fields[1].isBlank()) {
            double v = number(text, "K", fields[1]);
            if (v < 0 || v != Math.rint(v) || v > Integer.MAX_VALUE)
                throw error(text, "K (most consecutive skipped steps) must be a whole number ≥ 0, got " + fields[1].strip());
            k = OptionalInt.of((int) v);
        }
        OptionalDouble retention = OptionalDouble.empty();
        if (fields.length > 2 && !fields[2].isBlank()) {
            double v = number(text, "retention", fields[2]);
            if (!(v >= 0 && v <= 1))
                throw error(text, "retention (fraction of leading steps always computed) must lie in [0, 1], got " + fields[2].strip());
            retention = OptionalDouble.of(v);
        }
        return new CacheSpec(kind, thresh, k, retention);
    }

    /**
     * The policy this spec selects for a model, with the model's published defaults for omitted values.
     * Throws {@link IllegalArgumentException} when the model has no published constants for the kind and the spec
     * does not supply them.
     */
    public StepCache build(CacheModel model) {
        Objects.requireNonNull(model, "model");
        return switch (kind) {
            case NONE -> NoCache.INSTANCE;
            case TEACACHE -> teaCache(model.teaCache());
            case TEACACHE_RET -> {
                if (model.teaCacheRet() == null)
                    throw new IllegalArgumentException("--cache " + this + ": TeaCache ret mode has published coefficients for Wan2.1 "
                            + "only, not for " + model.id() + "; use teacache[:thresh]");
                yield teaCache(model.teaCacheRet());
            }
            case MAGCACHE -> {
                MagCache.Preset p = model.magCache();
                if (p == null)
                    throw new IllegalArgumentException("--cache " + this + ": no MagCache γ table is published for " + model.id()
                            + "; record one with MagCacheCalibration and build MagCache with MagCache.Config.withTable(...)");
                MagCache.Config c = MagCache.Config.reference(p);
                if (threshold.isPresent()) c = c.withThreshold(threshold.getAsDouble());
                if (k.isPresent()) c = c.withK(k.getAsInt());
                if (retention.isPresent()) c = c.withRetentionRatio(retention.getAsDouble());
                yield new MagCache(c);
            }
            case FBCACHE -> {
                double t = threshold.orElse(model.fbCacheThreshold());
                if (Double.isNaN(t))
                    throw new IllegalArgumentException("--cache " + this + ": no First-Block Cache threshold is published for "
                            + model.id() + "; give one, e.g. fbcache:" + FirstBlockCache.FLUX_THRESHOLD
                            + " (ParaAttention's Flux default)");
                yield FirstBlockCache.of(t);
            }
        };
    }

    private TeaCache teaCache(TeaCache.Preset preset) {
        TeaCache.Config c = TeaCache.Config.reference(preset);
        if (threshold.isPresent()) c = c.withThreshold(threshold.getAsDouble());
        return new TeaCache(c);
    }

    /** The option value this spec was parsed from, normalised. */
    @Override public String toString() {
        StringBuilder sb = new StringBuilder(kind.word);
        if (threshold.isEmpty() && k.isEmpty() && retention.isEmpty()) return sb.toString();
        sb.append(':');
        if (threshold.isPresent()) sb.append(threshold.getAsDouble());
        if (k.isPresent() || retention.isPresent()) {
            sb.append(',');
            if (k.isPresent()) sb.append(k.getAsInt());
            if (retention.isPresent()) sb.append(',').append(retention.getAsDouble());
        }
        return sb.toString();
    }

    private static double number(String text, String what, String field) {
        String f = field.strip();
        try {
            if (!f.matches("[+]?(\\d+\\.?\\d*|\\.\\d+)([eE][+-]?\\d+)?"))
                throw new NumberFormatException();
            return Double.parseDouble(f);
        } catch (NumberFormatException e) {
            throw error(text, what + " '" + f + "' is not a non-negative decimal number");
        }
    }

    private static IllegalArgumentException error(String text, String what) {
        return new IllegalArgumentException("--cache " + (text == null ? "" : "'" + text + "'") + ": " + what
                + "; expected " + SYNTAX);
    }
}
