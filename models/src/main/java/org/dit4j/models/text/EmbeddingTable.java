package org.dit4j.models.text;

import org.dit4j.core.tensor.Tensor;

/**
 * A token (or position) embedding table kept on the host in its stored dtype; rows are gathered there and only the
 * gathered [B, L, D] activations go to the device. {@code rowScale}: ComfyUI weight scale per row, or null.
 */
record EmbeddingTable(String what, Tensor table, float[] rowScale) {

    int rows() { return table.shape().dimInt(0); }

    int cols() { return table.shape().dimInt(1); }

    /** Adds row {@code id} (scaled, in f32) into {@code out} at {@code offset}. */
    void addRow(int id, float[] out, int offset, String where) {
        int rows = rows(), d = cols();
        if (id < 0 || id >= rows)
            throw new IllegalArgumentException("token id " + id + " at " + where + " is outside the " + rows + " rows of " + what
                    + "; the ids come from another tokenizer than this model's");
        long base = (long) id * d;
        float s = rowScale == null ? 1f : rowScale[id];
        for (int j = 0; j < d; j++) out[offset + j] += table.getFloat(base + j) * s;
    }
}
