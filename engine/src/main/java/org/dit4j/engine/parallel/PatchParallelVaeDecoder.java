package org.dit4j.engine.parallel;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.parallel.Communicator;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.AutoencoderKL;

/**
 * The KL VAE decode spread over the ranks of a group by rows (patch parallelism), equal to the one-rank decode.
 *
 * <p>Every rank holds the whole latent z:[N, L, h, w] (it is small) and the VAE weights. The latent's rows are split
 * by {@link RowSplit#even} — ⌊h/N⌋ rows per rank, one more for the first h mod N ranks, so h need not be divisible by
 * N (but h ≥ N) — and each rank runs the unchanged decoder ({@code AutoencoderKL}) on its rows through
 * {@link SpatialParallelOps}: the 3×3 convolutions receive one halo row from each neighbour (after every upsample the
 * slabs are twice as tall and the halo is exchanged at the new resolution, so it is still one row), the group norms use
 * the whole image's statistics (two all-reduces of per-group sums), and the mid-block attention all-gathers K and V
 * (the whole token sequence at 1/f resolution, f = the VAE's down factor; for Flux at 1024² that is 16 384 tokens × 512
 * channels, 32 MiB each in f32). Rank r's output is image rows [start(r)·f, end(r)·f).
 *
 * <p>Memory: every activation of the decoder lives as a slab of about 1/N of its rows plus two halo rows, so the
 * per-rank activation peak is about 1/N of the one-rank peak (plus the gathered K/V of the mid block, and the whole
 * image if {@link #decode} gathers it; {@link #decodeShard} returns only the slab).
 *
 * <p>Precision: halos and gathers move data bit for bit, and the decoder's arithmetic is the same per element; only the
 * group-norm statistics are summed in another order (per slab in double, rounded to f32, then across ranks in f32), so
 * the result differs from the one-rank decode by f32 rounding (the CI test bounds the rel-L2 at 1e-5 in f32).
 *
 * <p>In a mesh, the ranks holding the same final latent — all ranks of one request, i.e. one data-parallel group's
 * cfg × ring × ulysses ranks — can decode together: {@link #requestGroup} splits that group off the world.
 */
public final class PatchParallelVaeDecoder {
    private final Ops local;
    private final AutoencoderKL vae;
    private final Communicator group;

    /**
     * @param local the rank's backend (the one {@code vae}'s weights live on)
     * @param vae   the rank's VAE; it stays owned by the caller
     * @param group the ranks decoding together, in row order
     */
    public PatchParallelVaeDecoder(Ops local, AutoencoderKL vae, Communicator group) {
        if (!vae.config().hasDecoder())
            throw new IllegalArgumentException("patch-parallel decode needs the VAE's decoder weights; this VAE has only an encoder");
        this.local = local;
        this.vae = vae;
        this.group = group;
    }

    /**
     * The group of the ranks that run one request of a mesh: the world ranks sharing {@code comms}' data-parallel
     * coordinate, in world-rank order. Collective over the world; the caller closes the returned communicator.
     */
    public static Communicator requestGroup(MeshComms comms) {
        return comms.world().split(comms.coord().dp(), comms.rank());
    }

    public Communicator group() { return group; }

    /** How a latent of {@code latentHeight} rows is split over the group. */
    public RowSplit split(long latentHeight) { return RowSplit.even(latentHeight, group.size()); }

    /**
     * This rank's rows of the decoded image (collective): scaled latent z:[N, L, h, w] (the whole latent, equal on every
     * rank) → [N, out, rows(r)·f, w·f].
     */
    public Tensor decodeShard(Tensor z) { return shard(z, true); }

    /** {@link #decodeShard} of a raw (unscaled) latent. */
    public Tensor decodeRawShard(Tensor z) { return shard(z, false); }

    /** The whole decoded image on every rank (collective): scaled z:[N, L, h, w] → [N, out, h·f, w·f]. */
    public Tensor decode(Tensor z) { return whole(z, true); }

    /** {@link #decode} of a raw (unscaled) latent. */
    public Tensor decodeRaw(Tensor z) { return whole(z, false); }

    /** Every rank's slab from {@link #decodeShard} in row order, on every rank (collective). */
    public Tensor gather(Tensor shard, RowSplit split) { return new SpatialParallelOps(local, group, split).gatherRows(shard, 2); }

    private Tensor whole(Tensor z, boolean scaled) {
        try (Scope s = Scope.open()) {
            Tensor slab = shard(z, scaled);
            return s.keep(gather(slab, split(z.dim(2))));
        }
    }

    private Tensor shard(Tensor z, boolean scaled) {
        int lat = vae.config().latentChannels();
        if (z.rank() != 4 || z.dim(1) != lat)
            throw new IllegalArgumentException("patch-parallel VAE decode: latent must have shape [N, " + lat + ", h, w], got "
                    + z.shape());
        RowSplit split = split(z.dim(2));
        int r = group.rank();
        // The unchanged model on the decorator, over the same weights. This view must never be closed: closing an
        // AutoencoderKL releases its weights, which belong to `vae`.
        AutoencoderKL onSlab = new AutoencoderKL(new SpatialParallelOps(local, group, split), vae.weights());
        try (Scope s = Scope.open()) {
            Tensor rows = local.slice(z, 2, split.start(r), split.end(r));
            Tensor out = scaled ? onSlab.decode(rows) : onSlab.decodeRaw(rows);
            return s.keep(out);
        }
    }
}
