package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;

import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.FirstBlockCache;
import org.dit4j.engine.cache.MagCache;
import org.dit4j.engine.cache.MagCacheCalibration;
import org.dit4j.engine.cache.NoCache;
import org.dit4j.engine.cache.TeaCache;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CacheOptionTest {
    @TempDir Path tmp;

    @Test void policiesWithFluxDefaultsAndGivenValues() {
        assertEquals(CacheOption.NONE, CacheOption.parse(null, null));
        TeaCache t = assertInstanceOf(TeaCache.class, CacheOption.parse("teacache", null).policy());
        assertEquals(0.4, t.config().threshold());
        assertEquals(0.6, ((TeaCache) CacheOption.parse("teacache:0.6", null).policy()).config().threshold());
        MagCache m = assertInstanceOf(MagCache.class, CacheOption.parse("magcache:0.12,4,0.2", null).policy());
        assertEquals(0.12, m.config().threshold());
        assertEquals(4, m.config().k());
        assertEquals(0.2, m.config().retentionRatio());
        assertEquals(0.08, ((FirstBlockCache) CacheOption.parse("fbcache", null).policy()).config().threshold());
        assertFalse(CacheOption.parse("fbcache:0.1", null).calibrate());
        assertThrows(IllegalArgumentException.class, () -> CacheOption.parse("teacache:x", null));
    }

    @Test void calibrationModeAndItsOutputFile() {
        CacheOption c = CacheOption.parse("magcache-calibrate", null);
        assertTrue(c.calibrate());
        assertEquals(NoCache.INSTANCE, c.policy());
        assertEquals(tmp.resolve("magcache-flux-dev-20.json"), c.calibrationFile(tmp.resolve("out.png"), "flux-dev-20"));
        CacheOption named = CacheOption.parse("magcache-calibrate=gamma.json", null);
        assertEquals(Path.of("gamma.json"), named.calibrationFile(tmp.resolve("out.png"), "flux-dev-20"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CacheOption.parse("magcache-calibrateX", null));
        assertTrue(e.getMessage().contains("magcache-calibrate=OUT.json"), e.getMessage());
    }

    @Test void magRatiosReplaceTheTableOfMagCacheOnly() throws Exception {
        MagCacheCalibration cal = new MagCacheCalibration("flux-dev-3", 3, 1);
        cal.record(1, Branch.COND, new MagCacheCalibration.StepNorms(2.2, 5, 0.1, 2));
        cal.record(2, Branch.COND, new MagCacheCalibration.StepNorms(1.8, 4, 0.1, 2));
        Path json = tmp.resolve("g.json");
        cal.writeJson(json);
        MagCache m = (MagCache) CacheOption.parse("magcache:0.3", json).policy();
        assertEquals("flux-dev-3", m.config().table().id());
        assertEquals(3, m.config().table().steps());
        assertEquals(0.3, m.config().threshold());
        assertEquals(0, m.config().forcedCalibratedSteps().length, "Flux's forced step 11 belongs to the published 28-step table");
        assertEquals(5, m.config().k());
        assertThrows(IllegalArgumentException.class, () -> CacheOption.parse("teacache", json));
        assertThrows(IllegalArgumentException.class, () -> CacheOption.parse(null, json));
        Files.writeString(tmp.resolve("bad.json"), "{\"mag_ratios\": \"no\"}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CacheOption.parse("magcache", tmp.resolve("bad.json")));
        assertTrue(e.getMessage().contains("bad.json"), e.getMessage());
    }
}
