package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxTransformer;
import org.dit4j.models.flux.FluxWeights;

/**
 * Flux on a sequence-parallel group (ring × ulysses ranks), with the model code unchanged.
 *
 * <p><b>How the joint sequence is split.</b> Text and image tokens are <em>both split</em>, each into S = ring·ulysses
 * equal contiguous shards: the rank with sequence index s holds text rows [s·Ntxt/S, (s+1)·Ntxt/S) and image rows
 * [s·Nimg/S, (s+1)·Nimg/S), and runs the model on [txt_s ‖ img_s] exactly as a one-rank model runs on [txt ‖ img].
 * Every op except attention works per token, and attention (through {@link SequenceParallelOps}) sees all ranks'
 * tokens; the gathered key order [txt_0 img_0 txt_1 img_1 …] differs from [txt ‖ img], which attention without a mask
 * does not notice. The RoPE tables are built from the rank's own rows of the position ids, so every token keeps its
 * position. Splitting the text too (rather than replicating it) keeps every rank's work equal and needs no special case
 * in the blocks; the price is that Ntxt and Nimg must both be divisible by S (checked, not padded): Flux's T5 lengths
 * (512, 256) are for every power of two up to 256, and an image of W×H pixels has (W/16)·(H/16) tokens, e.g. 4096 at
 * 1024², divisible by 2, 4 and 8.
 *
 * <p>A pipeline keeps the packed latent sharded across all steps ({@link #shard}), computes the velocity on its shard,
 * applies the scheduler step to the shard, and gathers once at the end ({@link #gather}).
 */
public final class FluxSequenceParallel {
    private final SequenceShards shards;
    private final ParallelConfig config;

    /**
     * @param sequence the rank's sequence group (ring × ulysses ranks, ordered by sequence index)
     * @param config   the mesh degrees (for checks and messages)
     */
    public FluxSequenceParallel(Communicator sequence, ParallelConfig config) {
        this.shards = new SequenceShards(sequence, config);
        this.config = config;
    }

    public static FluxSequenceParallel of(MeshComms comms) { return new FluxSequenceParallel(comms.sequence(), comms.config()); }

    /** The transformer for this rank: the unchanged model on the sequence-parallel decorator of the local backend. */
    public static FluxTransformer model(Ops local, MeshComms comms, FluxWeights weights) {
        comms.config().checkHeads("this Flux model", weights.config().numHeads());
        return new FluxTransformer(SequenceParallelOps.of(local, comms), weights);
    }

    /** {@link #model(Ops, MeshComms, FluxWeights)} with explicit overlap of the exchanges (e.g. to compare settings). */
    public static FluxTransformer model(Ops local, MeshComms comms, FluxWeights weights, SequenceParallelOps.Overlap overlap) {
        comms.config().checkHeads("this Flux model", weights.config().numHeads());
        return new FluxTransformer(SequenceParallelOps.of(local, comms, overlap), weights);
    }

    /** Checks that a forward with these sizes can be split; the message names what to change. */
    public void check(FluxConfig cfg, long nTxt, long nImg) {
        config.checkHeads("this Flux model", cfg.numHeads());
        config.checkSequence("the text (T5) sequence", nTxt);
        config.checkSequence("the image token sequence (packed latent, incl. any Kontext reference)", nImg);
    }

    /** This rank's rows [start, end) of a sequence of {@code n} tokens. */
    public long[] rows(long n) { return shards.rows(n); }

    /** This rank's rows of x along {@code dim} (a device copy); x holds the full sequence there. */
    public Tensor shard(Ops ops, Tensor x, int dim) { return shards.shard(ops, x, dim); }

    /** This rank's rows of host position ids [N, 3] (a view). */
    public Tensor shardIds(Tensor ids) { return shards.shardOuter(ids); }

    /** The rank's Conditioning: time/guidance embeddings and the RoPE tables of its own text and image rows. */
    public FluxTransformer.Conditioning prepare(FluxTransformer model, float[] timesteps, float[] guidance, Tensor imgIds,
                                                Tensor txtIds, DType activation) {
        check(model.config(), txtIds.dim(0), imgIds.dim(0));
        return model.prepare(timesteps, guidance, shardIds(imgIds), shardIds(txtIds), activation);
    }

    /** Every rank's shard of x along {@code dim}, concatenated in sequence order (the full tensor, on every rank). */
    public Tensor gather(Tensor shard, int dim) { return shards.gather(shard, dim); }

    /**
     * One whole forward from full-sequence inputs: shards img [B, Nimg, C] and txt [B, Ntxt, ctx] (device tensors),
     * runs the model on the shard and gathers the velocity [B, Nimg, out] on every rank of the group.
     */
    public Tensor forward(Ops ops, FluxTransformer model, Tensor img, Tensor txt, Tensor y, float[] timesteps, float[] guidance,
                          Tensor imgIds, Tensor txtIds) {
        try (Scope s = Scope.open();
             FluxTransformer.Conditioning c = prepare(model, timesteps, guidance, imgIds, txtIds, img.dtype())) {
            Tensor v = model.forward(shard(ops, img, 1), shard(ops, txt, 1), y, c);
            return s.keep(gather(v, 1));
        }
    }
}
