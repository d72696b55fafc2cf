package org.dit4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;

import org.dit4j.engine.cache.Branch;
import org.dit4j.engine.cache.CacheModel;
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

    @Test void wanModelsGetTheirPublishedConstants() {
        TeaCache t13 = (TeaCache) CacheOption.parse("teacache", null, CacheModel.WAN21_T2V_1_3B).policy();
        assertEquals(TeaCache.WAN21_T2V_1_3B, t13.config().preset());
        assertEquals(0.08, t13.config().threshold());
        TeaCache ret = (TeaCache) CacheOption.parse("teacache-ret:0.15", null, CacheModel.WAN21_T2V_14B).policy();
        assertEquals(TeaCache.WAN21_T2V_14B_RET, ret.config().preset());
        assertEquals(0.15, ret.config().threshold());
        assertEquals(5, ret.config().forcedLeadingSteps(), "ret mode: first 5 steps computed");
        assertFalse(ret.config().forceLastStep(), "ret mode: cutoff = N, the last step is not forced");
        MagCache m14 = (MagCache) CacheOption.parse("magcache", null, CacheModel.WAN21_T2V_14B).policy();
        assertEquals(MagCache.WAN21_T2V_14B_50, m14.config().table());
        assertEquals(0.24, m14.config().threshold());
        assertEquals(6, m14.config().k());
        assertEquals(0.2, m14.config().retentionRatio());
        MagCache m13 = (MagCache) CacheOption.parse("magcache:0.1,3", null, CacheModel.WAN21_T2V_1_3B).policy();
        assertEquals(MagCache.WAN21_T2V_1_3B_50, m13.config().table());
        assertEquals(0.1, m13.config().threshold());
        assertEquals(3, m13.config().k());
        assertEquals(0.2, m13.config().retentionRatio());
        assertEquals(0.05, ((FirstBlockCache) CacheOption.parse("fbcache:0.05", null, CacheModel.WAN21_T2V_1_3B).policy()).config().threshold());
        IllegalArgumentException noFb = assertThrows(IllegalArgumentException.class,
                () -> CacheOption.parse("fbcache", null, CacheModel.WAN21_T2V_1_3B));
        assertTrue(noFb.getMessage().contains("fbcache:"), noFb.getMessage());
        IllegalArgumentException noRet = assertThrows(IllegalArgumentException.class, () -> CacheOption.parse("teacache-ret", null));
        assertTrue(noRet.getMessage().contains("Wan2.1 only"), "Flux has no ret mode: " + noRet.getMessage());
        assertTrue(CacheOption.parse("magcache-calibrate", null, CacheModel.WAN21_T2V_14B).calibrate());
    }

    @Test void aRecordedWanTableReplacesThePublishedOne() throws Exception {
        MagCacheCalibration cal = new MagCacheCalibration("wan2.1-1.3b-3", 3, 2);
        for (Branch b : Branch.values()) {
            cal.record(1, b, new MagCacheCalibration.StepNorms(2.2, 5, 0.1, 2));
            cal.record(2, b, new MagCacheCalibration.StepNorms(1.8, 4, 0.1, 2));
        }
        Path json = tmp.resolve("wan.json");
        cal.writeJson(json);
        MagCache m = (MagCache) CacheOption.parse("magcache", json, CacheModel.WAN21_T2V_1_3B).policy();
        assertEquals("wan2.1-1.3b-3", m.config().table().id());
        assertEquals(2, m.config().table().branches());
        assertEquals(0.12, m.config().threshold(), "the model's defaults stay");
        assertEquals(MagCache.Retention.INTERLEAVED_FLOOR, m.config().retention());
    }
}
