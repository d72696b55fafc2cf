package org.dit4j.models.text.tokenizer;

import java.util.Arrays;

/**
 * Token ids of one prompt, with special tokens, after truncation and padding, and the attention mask
 * (1 for a real token, 0 for padding), both of the same length.
 */
public record Encoding(int[] ids, int[] attentionMask) {
    public Encoding {
        if (ids.length != attentionMask.length)
            throw new IllegalArgumentException("ids and attentionMask differ in length: " + ids.length + " vs " + attentionMask.length);
    }

    /** Number of real (non-padding) tokens. */
    public int length() {
        int n = 0;
        for (int m : attentionMask) n += m;
        return n;
    }

    /** Builds an encoding from content ids: truncates, then pads on the right with {@code padId} up to {@code maxLength}. */
    static Encoding of(int[] withSpecials, int maxLength, boolean pad, int padId) {
        int n = withSpecials.length;
        int len = pad ? Math.max(maxLength, n) : n;
        int[] ids = Arrays.copyOf(withSpecials, len);
        int[] mask = new int[len];
        Arrays.fill(mask, 0, n, 1);
        if (len > n) Arrays.fill(ids, n, len, padId);
        return new Encoding(ids, mask);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Encoding e && Arrays.equals(ids, e.ids) && Arrays.equals(attentionMask, e.attentionMask);
    }

    @Override
    public int hashCode() { return 31 * Arrays.hashCode(ids) + Arrays.hashCode(attentionMask); }

    @Override
    public String toString() { return "Encoding" + Arrays.toString(ids) + " (" + length() + " real)"; }
}
