package org.dit4j.engine.cache;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class CacheSpecTest {

    @Test
    void defaultsPerModel() {
        TeaCache flux = (TeaCache) CacheSpec.parse("teacache").build(CacheModel.FLUX_DEV);
        assertEquals(0.4, flux.config().threshold());
        assertSame(TeaCache.FLUX, flux.config().preset());
        assertEquals(0.08, ((TeaCache) CacheSpec.parse("teacache").build(CacheModel.WAN21_T2V_1_3B)).config().threshold());
        assertEquals(0.2, ((TeaCache) CacheSpec.parse("teacache").build(CacheModel.WAN21_T2V_14B)).config().threshold());
        assertEquals(0.3, ((TeaCache) CacheSpec.parse("teacache").build(CacheModel.COGVIDEOX_5B)).config().threshold());
        TeaCache ret = (TeaCache) CacheSpec.parse("teacache-ret").build(CacheModel.WAN21_T2V_14B);
        assertSame(TeaCache.WAN21_T2V_14B_RET, ret.config().preset());
        assertEquals(5, ret.config().forcedLeadingSteps());

        MagCache mf = (MagCache) CacheSpec.parse("magcache").build(CacheModel.FLUX_DEV);
        assertEquals(0.24, mf.config().threshold());
        assertEquals(5, mf.config().k());
        assertEquals(0.1, mf.config().retentionRatio());
        MagCache m13 = (MagCache) CacheSpec.parse("magcache").build(CacheModel.WAN21_T2V_1_3B);
        assertEquals(0.12, m13.config().threshold());
        assertEquals(4, m13.config().k());
        assertEquals(0.2, m13.config().retentionRatio());
        MagCache m14 = (MagCache) CacheSpec.parse("magcache").build(CacheModel.WAN21_T2V_14B);
        assertEquals(0.24, m14.config().threshold());
        assertEquals(6, m14.config().k());

        assertEquals(0.08, ((FirstBlockCache) CacheSpec.parse("fbcache").build(CacheModel.FLUX_DEV)).config().threshold());
        assertSame(NoCache.INSTANCE, CacheSpec.parse("none").build(CacheModel.WAN21_T2V_14B));
    }

    @Test
    void explicitValuesOverrideDefaults() {
        assertEquals(0.25, ((TeaCache) CacheSpec.parse("teacache:0.25").build(CacheModel.FLUX_DEV)).config().threshold());
        MagCache m = (MagCache) CacheSpec.parse("magcache:0.3,2,0.25").build(CacheModel.FLUX_DEV);
        assertEquals(0.3, m.config().threshold());
        assertEquals(2, m.config().k());
        assertEquals(0.25, m.config().retentionRatio());
        MagCache onlyK = (MagCache) CacheSpec.parse("magcache:,3").build(CacheModel.WAN21_T2V_14B);
        assertEquals(0.24, onlyK.config().threshold());
        assertEquals(3, onlyK.config().k());
        assertEquals(0.2, onlyK.config().retentionRatio());
        MagCache onlyR = (MagCache) CacheSpec.parse("magcache:,,0.3").build(CacheModel.WAN21_T2V_14B);
        assertEquals(6, onlyR.config().k());
        assertEquals(0.3, onlyR.config().retentionRatio());
        assertEquals(0.05, ((FirstBlockCache) CacheSpec.parse(" FBCache:0.05 ").build(CacheModel.WAN21_T2V_1_3B)).config().threshold());
        assertEquals(0.0, ((TeaCache) CacheSpec.parse("teacache:0").build(CacheModel.FLUX_DEV)).config().threshold());
        assertEquals(1e-2, ((TeaCache) CacheSpec.parse("teacache:1e-2").build(CacheModel.FLUX_DEV)).config().threshold());
    }

    @Test
    void normalisedText() {
        assertEquals("magcache:0.3,2,0.25", CacheSpec.parse("magcache:0.3,2,0.25").toString());
        assertEquals("magcache:,3", CacheSpec.parse("magcache:,3").toString());
        assertEquals("magcache:,,0.3", CacheSpec.parse("magcache:,,0.3").toString());
        assertEquals("teacache:0.4", CacheSpec.parse("TeaCache:.4").toString());
        assertEquals("fbcache", CacheSpec.parse("fbcache").toString());
        assertEquals(CacheSpec.parse("magcache:0.3,2,0.25"), CacheSpec.parse(CacheSpec.parse("magcache:0.3,2,0.25").toString()));
    }

    @Test
    void clearErrors() {
        assertError("tecache", "unknown cache 'tecache'");
        assertError("", "empty");
        assertError("teacache:abc", "threshold 'abc' is not a non-negative decimal number");
        assertError("teacache:-0.1", "threshold '-0.1'");
        assertError("teacache:", "threshold after ':' is empty");
        assertError("teacache:0.1,2", "teacache takes at most 1 value (thresh), got 2");
        assertError("magcache:0.1,2,0.2,5", "magcache takes at most 3 values (thresh,K,retention), got 4");
        assertError("magcache:0.1,2.5", "K (most consecutive skipped steps) must be a whole number ≥ 0, got 2.5");
        assertError("magcache:0.1,2,1.5", "retention (fraction of leading steps always computed) must lie in [0, 1], got 1.5");
        assertError("none:1", "'none' takes no values");
        assertError("fbcache:nan", "'nan' is not");
        // every parse error shows the syntax
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CacheSpec.parse("x"));
        assertTrue(e.getMessage().contains(CacheSpec.SYNTAX), e.getMessage());

        IllegalArgumentException noTable = assertThrows(IllegalArgumentException.class,
                () -> CacheSpec.parse("magcache").build(CacheModel.COGVIDEOX_5B));
        assertTrue(noTable.getMessage().contains("no MagCache γ table is published for cogvideox-5b"), noTable.getMessage());
        assertTrue(noTable.getMessage().contains("MagCacheCalibration"), noTable.getMessage());
        IllegalArgumentException noFb = assertThrows(IllegalArgumentException.class,
                () -> CacheSpec.parse("fbcache").build(CacheModel.WAN21_T2V_14B));
        assertTrue(noFb.getMessage().contains("give one, e.g. fbcache:0.08"), noFb.getMessage());
        IllegalArgumentException noRet = assertThrows(IllegalArgumentException.class,
                () -> CacheSpec.parse("teacache-ret").build(CacheModel.FLUX_DEV));
        assertTrue(noRet.getMessage().contains("Wan2.1 only"), noRet.getMessage());
        IllegalArgumentException model = assertThrows(IllegalArgumentException.class, () -> CacheModel.byId("sd3"));
        assertTrue(model.getMessage().contains("flux-dev, wan2.1-t2v-1.3b, wan2.1-t2v-14b, cogvideox-5b"), model.getMessage());
        assertSame(CacheModel.WAN21_T2V_14B, CacheModel.byId("Wan2.1-T2V-14B"));
    }

    static void assertError(String spec, String fragment) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CacheSpec.parse(spec), spec);
        assertTrue(e.getMessage().contains(fragment), "'" + spec + "' → " + e.getMessage());
        assertTrue(e.getMessage().startsWith("--cache"), e.getMessage());
    }
}
