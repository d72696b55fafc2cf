package org.dit4j.core.io;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;

/** "Did you mean" suggestions for missing tensor names. */
final class Names {
    private Names() {}

    /**
     * Up to {@code k} names from {@code candidates} closest to {@code missing}: names that equal it up to a
     * prefix (e.g. "model.diffusion_model.") come first, then the smallest edit distances.
     */
    static List<String> closest(String missing, Collection<String> candidates, int k) {
        record Scored(String name, int score) {}
        List<Scored> scored = new ArrayList<>();
        String m = clip(missing);
        for (String c : candidates) {
            int score;
            if (c.endsWith("." + missing) || missing.endsWith("." + c)) score = -1;
            else score = editDistance(m, clip(c));
            scored.add(new Scored(c, score));
        }
        scored.sort(Comparator.comparingInt(Scored::score).thenComparing(Scored::name));
        int limit = Math.max(3, missing.length() / 2);
        List<String> out = new ArrayList<>();
        for (Scored s : scored) {
            if (out.size() == k || s.score > limit) break;
            out.add(s.name);
        }
        return out;
    }

    /** " Similar names: a, b." or "" when nothing is close. */
    static String suggestion(String missing, Collection<String> candidates) {
        List<String> near = closest(missing, candidates, 3);
        if (near.isEmpty()) return "";
        StringBuilder b = new StringBuilder(" Similar names: ");
        for (int i = 0; i < near.size(); i++) b.append(i == 0 ? "" : ", ").append(Json.quote(near.get(i)));
        return b.append('.').toString();
    }

    private static String clip(String s) { return s.length() <= 200 ? s : s.substring(0, 200); }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int sub = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(sub, Math.min(prev[j], cur[j - 1]) + 1);
            }
            int[] t = prev; prev = cur; cur = t;
        }
        return prev[b.length()];
    }
}
