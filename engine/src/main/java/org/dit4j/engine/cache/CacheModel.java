package org.dit4j.engine.cache;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * The models whose step-cache constants are published, with the defaults the {@code --cache} option uses. The
 * pipeline maps its model to one of these.
 */
public enum CacheModel {
    FLUX_DEV("flux-dev", TeaCache.FLUX, null, MagCache.FLUX_DEV, FirstBlockCache.FLUX_THRESHOLD),
    WAN21_T2V_1_3B("wan2.1-t2v-1.3b", TeaCache.WAN21_T2V_1_3B, TeaCache.WAN21_T2V_1_3B_RET, MagCache.WAN21_T2V_1_3B, Double.NaN),
    WAN21_T2V_14B("wan2.1-t2v-14b", TeaCache.WAN21_T2V_14B, TeaCache.WAN21_T2V_14B_RET, MagCache.WAN21_T2V_14B, Double.NaN),
    COGVIDEOX_5B("cogvideox-5b", TeaCache.COGVIDEOX_5B, null, null, Double.NaN);

    private final String id;
    private final TeaCache.Preset teaCache;
    private final TeaCache.Preset teaCacheRet;
    private final MagCache.Preset magCache;
    private final double fbCacheThreshold;

    CacheModel(String id, TeaCache.Preset teaCache, TeaCache.Preset teaCacheRet, MagCache.Preset magCache, double fbCacheThreshold) {
        this.id = id;
        this.teaCache = teaCache;
        this.teaCacheRet = teaCacheRet;
        this.magCache = magCache;
        this.fbCacheThreshold = fbCacheThreshold;
    }

    public String id() { return id; }

    /** The TeaCache preset (the model's reference script). */
    public TeaCache.Preset teaCache() { return teaCache; }

    /** The TeaCache "ret mode" preset, or null when none is published. */
    public TeaCache.Preset teaCacheRet() { return teaCacheRet; }

    /** The MagCache preset, or null when no γ table is published. */
    public MagCache.Preset magCache() { return magCache; }

    /** The published First-Block Cache threshold, or NaN when none is published. */
    public double fbCacheThreshold() { return fbCacheThreshold; }

    /** The model with this id (case-insensitive). */
    public static CacheModel byId(String id) {
        for (CacheModel m : values()) if (m.id.equals(id.toLowerCase(Locale.ROOT))) return m;
        throw new IllegalArgumentException("unknown model '" + id + "' for step caches; expected one of "
                + Arrays.stream(values()).map(CacheModel::id).collect(Collectors.joining(", ")));
    }

    @Override public String toString() { return id; }
}
