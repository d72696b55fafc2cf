package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanTransformer;
import org.dit4j.models.wan.WanWeights;

/**
 * Wan2.1 on a sequence-parallel group (ring × ulysses ranks).
 *
 * <p><b>How the sequence is split.</b> The patchified video tokens, L = F'·H'·W' in (f, h, w) order, are cut into
 * S = ring·ulysses equal contiguous shards ({@link SequenceShards}): the rank with sequence index s runs the model on
 * rows [s·L/S, (s+1)·L/S). Contiguous rows, not whole frames: Wan's latent frame counts are often prime (17 at 65
 * frames, 21 at 81), while L is divisible by 2, 4 and 8 at the usual sizes (27200 at 640×640×65, 32760 at 832×480×81);
 * L must be divisible by S (checked, not padded). Each rank holds the whole latent (patchified locally, then sliced),
 * the time embedding and the whole text context: every op but attention works per token, the self-attention goes
 * through {@link SequenceParallelOps} (Ulysses/Ring/USP over every rank's rows), and the cross-attention to the text
 * stays local ({@link WanTransformer#WanTransformer(Ops, Ops, WanWeights)}: only the queries are split, so each rank's
 * rows attend to the whole context on their own). The RoPE tables are the rank's own rows of the 3-D tables
 * ({@link WanTransformer#prepareRows}). The head's per-token output is gathered over the group in row order and
 * unpatchified on every rank ({@link #velocity}), so each rank ends with the whole velocity and can step the whole
 * latent.
 */
public final class WanSequenceParallel {
    private final SequenceShards shards;

    /**
     * @param sequence the rank's sequence group
     * @param config   the mesh degrees
     */
    public WanSequenceParallel(org.dit4j.core.parallel.Communicator sequence, ParallelConfig config) {
        this.shards = new SequenceShards(sequence, config);
    }

    public static WanSequenceParallel of(MeshComms comms) { return new WanSequenceParallel(comms.sequence(), comms.config()); }

    /**
     * The transformer for this rank: the unchanged model, self-attention on the sequence-parallel decorator of the
     * local backend, cross-attention on the local backend.
     */
    public static WanTransformer model(Ops local, MeshComms comms, WanWeights weights) {
        return model(local, comms, weights, SequenceParallelOps.Overlap.fromSystemProperties());
    }

    /** {@link #model(Ops, MeshComms, WanWeights)} with explicit overlap of the exchanges (all ranks must pass the same). */
    public static WanTransformer model(Ops local, MeshComms comms, WanWeights weights, SequenceParallelOps.Overlap overlap) {
        comms.config().checkHeads("this Wan2.1 model", weights.config().numHeads());
        return new WanTransformer(SequenceParallelOps.of(local, comms, overlap), local, weights);
    }

    /**
     * Fails unless a patch grid of frames×height×width tokens (latent sizes divided by the patch) splits over the mesh;
     * the message names the sizes to change.
     */
    public static void check(ParallelConfig config, WanConfig cfg, long frames, long height, long width) {
        config.checkHeads("this Wan2.1 model", cfg.numHeads());
        config.checkSequence("the video's patch grid (" + frames + " latent frames × " + height + " × " + width
                + "; change the frames or the width/height)", frames * height * width);
    }

    /** This rank's token rows [start, end) of a patch grid of {@code tokens} tokens. */
    public long[] rows(long tokens) { return shards.rows(tokens); }

    /**
     * The rank's conditioning: time embedding and the RoPE tables of its own rows of the frames×height×width patch
     * grid (caller-owned).
     */
    public WanTransformer.Conditioning prepare(WanTransformer model, float[] timesteps, long frames, long height, long width) {
        check(shards.config(), model.config(), frames, height, width);
        long[] r = rows(frames * height * width);
        return model.prepareRows(timesteps, frames, height, width, r[0], r[1]);
    }

    /**
     * The whole velocity [B, C, F, H, W] on every rank of the group from the rank's head output rows
     * ({@link WanTransformer#forwardRows}): all-gather along the tokens, then unpatchify.
     */
    public Tensor velocity(WanTransformer model, Tensor rows, WanTransformer.Conditioning c) {
        try (Scope s = Scope.open()) {
            return s.keep(model.unpatchifyTokens(shards.gather(rows, 1), c));
        }
    }

    /** One whole forward: the rank's rows of the latent [B, C, F, H, W] through the model, gathered to the velocity. */
    public Tensor forward(WanTransformer model, Tensor latent, Tensor text, WanTransformer.Conditioning c) {
        try (Scope s = Scope.open()) {
            return s.keep(velocity(model, model.forwardRows(latent, text, c), c));
        }
    }
}
