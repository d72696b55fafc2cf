package org.dit4j.engine.parallel;

import org.dit4j.core.parallel.Communicator;

/**
 * One rank's communicators: the world and one group per mesh axis, split from the world
 * ({@link Communicator#split}, i.e. ncclCommSplit on GPUs). {@link #create} is collective: every rank of the world calls
 * it with the same config.
 */
public record MeshComms(Mesh mesh, Mesh.Coord coord, Communicator world, Communicator dp, Communicator cfg, Communicator ring,
                        Communicator ulysses, Communicator sequence) implements AutoCloseable {

    public static MeshComms create(ParallelConfig config, Communicator world) {
        config.checkWorldSize(world.size());
        Mesh mesh = new Mesh(config);
        int r = world.rank();
        Communicator dp = split(world, mesh, Mesh.Axis.DP, r), cfg = split(world, mesh, Mesh.Axis.CFG, r);
        Communicator ring = split(world, mesh, Mesh.Axis.RING, r), ulysses = split(world, mesh, Mesh.Axis.ULYSSES, r);
        Communicator sequence = split(world, mesh, Mesh.Axis.SEQUENCE, r);
        return new MeshComms(mesh, mesh.coord(r), world, dp, cfg, ring, ulysses, sequence);
    }

    /**
     * The axis group of {@code rank}: the world itself when the group is the whole world in world-rank order (e.g.
     * Ulysses and sequence groups of a pure Ulysses mesh), else a split. Every rank takes the same branch (the test
     * depends on the mesh only), so the collective split is entered by all or none. Reusing the world saves an NCCL
     * communicator's buffers per GPU.
     */
    private static Communicator split(Communicator world, Mesh mesh, Mesh.Axis axis, int rank) {
        int[] members = mesh.group(axis, rank);
        boolean whole = members.length == world.size();
        for (int i = 0; whole && i < members.length; i++) whole = members[i] == i;
        if (whole) return world;
        Communicator c = world.split(mesh.color(axis, rank), mesh.key(axis, rank));
        if (c.rank() != mesh.key(axis, rank))
            throw new IllegalStateException("internal: " + axis + " group rank " + c.rank() + " != mesh key " + mesh.key(axis, rank));
        return c;
    }

    public ParallelConfig config() { return mesh.config(); }

    public int rank() { return world.rank(); }

    /** Closes the axis groups split for this rank (not the world, which its creator owns, nor groups that are the world). */
    @Override public void close() {
        for (Communicator c : new Communicator[] {dp, cfg, ring, ulysses, sequence})
            if (c != world) c.close();
    }
}
