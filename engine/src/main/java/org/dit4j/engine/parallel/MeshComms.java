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

    private static Communicator split(Communicator world, Mesh mesh, Mesh.Axis axis, int rank) {
        Communicator c = world.split(mesh.color(axis, rank), mesh.key(axis, rank));
        if (c.rank() != mesh.key(axis, rank))
            throw new IllegalStateException("internal: " + axis + " group rank " + c.rank() + " != mesh key " + mesh.key(axis, rank));
        return c;
    }

    public ParallelConfig config() { return mesh.config(); }

    public int rank() { return world.rank(); }

    /** Closes the axis groups (not the world, which its creator owns). */
    @Override public void close() {
        dp.close();
        cfg.close();
        ring.close();
        ulysses.close();
        sequence.close();
    }
}
