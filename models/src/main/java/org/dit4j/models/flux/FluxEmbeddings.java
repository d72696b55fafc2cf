package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Linear;
import org.dit4j.models.nn.MlpEmbedder;
import org.dit4j.models.nn.Timesteps;

/**
 * Input embeddings of Flux (models.md §1.3–1.4): img_in and txt_in project the token streams to D; the conditioning
 * vector is vec = time_in(sin_emb(1000·t)) + guidance_in(sin_emb(1000·g)) + vector_in(y).
 */
public record FluxEmbeddings(Linear imgIn, Linear txtIn, MlpEmbedder timeIn, MlpEmbedder guidanceIn, MlpEmbedder vectorIn) {

    /** Width of the sinusoidal timestep/guidance embedding. */
    public static final int TIME_DIM = 256;

    /** Flux's timesteps are in [0,1]; the embedding sees 1000·t. */
    public static final float TIME_FACTOR = 1000f;

    public static FluxEmbeddings from(FluxWeights w) {
        FluxConfig c = w.config();
        return new FluxEmbeddings(w.linear("img_in"), w.linear("txt_in"), mlp(w, "time_in"),
                c.guidanceEmbed() ? mlp(w, "guidance_in") : null, mlp(w, "vector_in"));
    }

    private static MlpEmbedder mlp(FluxWeights w, String name) {
        return new MlpEmbedder(w.linear(name + ".in_layer"), w.linear(name + ".out_layer"));
    }

    /**
     * vec:[B, D] from timesteps t[B] (flow time in [0,1]), guidance g[B] (null when the model has no guidance
     * embedder; ignored when it has none) and the pooled text vector y:[B, vecDim]. The sinusoidal embeddings are
     * computed on the host and uploaded in y's dtype.
     */
    public Tensor vec(Ops ops, float[] t, float[] g, Tensor y) {
        if (y.rank() != 2 || y.dim(0) != t.length)
            throw new IllegalArgumentException("y must be [B, " + vectorIn.in().in() + "] with B = " + t.length
                    + " (one timestep per batch element), got " + y.shape());
        if (guidanceIn != null && g == null)
            throw new IllegalArgumentException("this Flux model embeds guidance (dev/Kontext): pass one guidance value per "
                    + "batch element, e.g. 3.5");
        if (g != null && g.length != t.length)
            throw new IllegalArgumentException("guidance has " + g.length + " values, expected one per batch element (" + t.length + ")");
        try (Scope scope = Scope.open()) {
            Tensor tSin = sinEmb(ops, t, y.dtype());
            Tensor gSin = guidanceIn == null ? null : sinEmb(ops, g, y.dtype());
            return scope.keep(vec(ops, tSin, gSin, y));
        }
    }

    /**
     * vec:[B, D] from already embedded timesteps tSin:[B, 256] and guidance gSin:[B, 256] (null without a guidance
     * embedder) on the device: device work only, so it can be captured in a CUDA graph.
     */
    public Tensor vec(Ops ops, Tensor tSin, Tensor gSin, Tensor y) {
        try (Scope scope = Scope.open()) {
            Tensor v = timeIn.forward(ops, tSin);                                                  // [B, D]
            if (guidanceIn != null) v = ops.add(v, guidanceIn.forward(ops, gSin));
            return scope.keep(ops.add(v, vectorIn.forward(ops, y)));
        }
    }

    /** Whether {@link #vec} needs a guidance embedding. */
    public boolean embedsGuidance() { return guidanceIn != null; }

    /** sin_emb(1000·t, 256) computed on the host, uploaded as {@code dtype}: [B, 256]. */
    public static Tensor sinEmb(Ops ops, float[] t, DType dtype) {
        Tensor host = Timesteps.embedding(t, TIME_DIM, TIME_FACTOR);
        Tensor dev = ops.upload(host);
        host.close();
        if (dev.dtype() == dtype) return dev;
        Tensor out = ops.cast(dev, dtype);
        dev.close();
        return out;
    }
}
