package org.dit4j.cli;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

import org.dit4j.engine.cache.CacheModel;
import org.dit4j.engine.cache.CacheSpec;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.StepCache;

/**
 * The {@code --cache} and {@code --mag-ratios} options of {@code dit4j generate}: a step-cache policy
 * ({@link CacheSpec} syntax), or {@code magcache-calibrate[=OUT.json]} to record a MagCache γ table.
 *
 * @param policy      the policy ({@link NoCache} when calibrating or without {@code --cache})
 * @param calibrate   whether the run records a γ table
 * @param calibration where the table goes (null: next to the image, {@code magcache-<table id>.json})
 */
record CacheOption(StepCache policy, boolean calibrate, Path calibration) {

    static final String CALIBRATE = "magcache-calibrate";

    static final String SYNTAX = CacheSpec.SYNTAX + " | " + CALIBRATE + "[=OUT.json]";

    /** No cache. */
    static final CacheOption NONE = new CacheOption(NoCache.INSTANCE, false, null);

    /**
     * Parses the options (either may be null). {@code magRatios}: a γ table JSON (as written by a calibration run) for
     * {@code --cache magcache}, replacing MagCache4FLUX's 28-step table.
     */
    static CacheOption parse(String value, Path magRatios) { return parse(value, magRatios, CacheModel.FLUX_DEV); }

    /**
     * Parses the options for a model's published constants ({@code teacache-ret} and the Wan γ tables need a Wan2.1
     * model). {@code magRatios} replaces the model's γ table.
     */
    static CacheOption parse(String value, Path magRatios, CacheModel model) {
        if (value == null) {
            if (magRatios != null) throw new IllegalArgumentException("--mag-ratios is used with --cache magcache[:…]; add it");
            return NONE;
        }
        String v = value.strip();
        if (v.toLowerCase(Locale.ROOT).startsWith(CALIBRATE)) {
            String rest = v.substring(CALIBRATE.length());
            if (magRatios != null) throw new IllegalArgumentException("--mag-ratios cannot be combined with --cache " + CALIBRATE);
            if (rest.isEmpty()) return new CacheOption(NoCache.INSTANCE, true, null);
            if (!(rest.startsWith("=") || rest.startsWith(":")) || rest.length() == 1)
                throw new IllegalArgumentException("--cache '" + value + "': expected " + CALIBRATE + " or " + CALIBRATE + "=OUT.json");
            return new CacheOption(NoCache.INSTANCE, true, Path.of(rest.substring(1).strip()));
        }
        StepCache policy = CacheSpec.parse(v).build(model);
        if (magRatios != null) {
            if (!(policy instanceof MagCache m))
                throw new IllegalArgumentException("--mag-ratios is a MagCache γ table; it needs --cache magcache[:…], got --cache " + value);
            MagCache.Table table;
            try {
                table = MagCache.Table.fromJson(Files.readString(magRatios));
            } catch (IOException e) {
                throw new UncheckedIOException("--mag-ratios: cannot read " + magRatios + ": " + e.getMessage(), e);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("--mag-ratios " + magRatios + ": " + e.getMessage(), e);
            }
            // MagCache4FLUX always computes step 11 of its own 28-step table; a recorded table has no such step (Wan: none)
            MagCache.Config c = m.config();
            policy = new MagCache(new MagCache.Config(table, c.threshold(), c.k(), c.retentionRatio(), c.inclusive(), c.retention(),
                    c.interpolation(), new int[0], c.forcedStepResets(), c.float32(), c.startStep(), c.endStep()));
        }
        return new CacheOption(policy, false, null);
    }

    /** Where the calibration of table {@code id} is written for an image written to {@code out}. */
    Path calibrationFile(Path out, String id) {
        if (calibration != null) return calibration;
        Path dir = out.toAbsolutePath().getParent();
        return dir.resolve("magcache-" + id + ".json");
    }
}
