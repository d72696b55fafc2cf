package org.dit4j.engine.parallel;

import java.util.Arrays;

/**
 * The rank layout of a {@link ParallelConfig}: rank = ((dp·C + cfg)·R + ring)·U + ulysses. A rank's groups along an
 * axis are the ranks that differ from it only in that axis; the sequence group is ring × ulysses together, ordered by
 * {@link #sequenceIndex} (ring-major), which is the order of the sequence shards.
 */
public final class Mesh {

    /** Coordinates of one rank. */
    public record Coord(int dp, int cfg, int ring, int ulysses) {}

    /** A direction in the mesh. SEQUENCE is ring × ulysses. */
    public enum Axis { DP, CFG, RING, ULYSSES, SEQUENCE }

    private final ParallelConfig config;

    public Mesh(ParallelConfig config) { this.config = config; }

    public ParallelConfig config() { return config; }

    public int size() { return config.worldSize(); }

    public Coord coord(int rank) {
        if (rank < 0 || rank >= size()) throw new IllegalArgumentException("rank " + rank + " is outside the mesh " + config + " of " + size() + " ranks");
        int u = rank % config.ulysses(), rest = rank / config.ulysses();
        int r = rest % config.ring();
        rest /= config.ring();
        int c = rest % config.cfg();
        return new Coord(rest / config.cfg(), c, r, u);
    }

    public int rank(Coord c) {
        return ((c.dp() * config.cfg() + c.cfg()) * config.ring() + c.ring()) * config.ulysses() + c.ulysses();
    }

    /** Index of a rank's shard in its sequence group: ring·U + ulysses. */
    public int sequenceIndex(int rank) {
        Coord c = coord(rank);
        return c.ring() * config.ulysses() + c.ulysses();
    }

    /** Position of {@code rank} inside its group along {@code axis}. */
    public int key(Axis axis, int rank) {
        Coord c = coord(rank);
        return switch (axis) {
            case DP -> c.dp();
            case CFG -> c.cfg();
            case RING -> c.ring();
            case ULYSSES -> c.ulysses();
            case SEQUENCE -> sequenceIndex(rank);
        };
    }

    /** Identifies the group of {@code rank} along {@code axis}: equal for exactly the ranks of one group. */
    public int color(Axis axis, int rank) {
        Coord c = coord(rank);
        Coord zero = switch (axis) {
            case DP -> new Coord(0, c.cfg(), c.ring(), c.ulysses());
            case CFG -> new Coord(c.dp(), 0, c.ring(), c.ulysses());
            case RING -> new Coord(c.dp(), c.cfg(), 0, c.ulysses());
            case ULYSSES -> new Coord(c.dp(), c.cfg(), c.ring(), 0);
            case SEQUENCE -> new Coord(c.dp(), c.cfg(), 0, 0);
        };
        return rank(zero);
    }

    /** The world ranks of {@code rank}'s group along {@code axis}, in group order. */
    public int[] group(Axis axis, int rank) {
        int color = color(axis, rank);
        return java.util.stream.IntStream.range(0, size()).filter(r -> color(axis, r) == color).boxed()
                .sorted(java.util.Comparator.comparingInt(r -> key(axis, r))).mapToInt(Integer::intValue).toArray();
    }

    /** One line per rank: coordinates and groups, for logs and dry runs. */
    public String describe() {
        StringBuilder sb = new StringBuilder("mesh " + config + " (" + size() + " ranks)\n");
        for (int r = 0; r < size(); r++) {
            sb.append(String.format("  rank %d %s seq-shard %d ulysses %s ring %s cfg %s dp %s%n", r, coord(r), sequenceIndex(r),
                    Arrays.toString(group(Axis.ULYSSES, r)), Arrays.toString(group(Axis.RING, r)),
                    Arrays.toString(group(Axis.CFG, r)), Arrays.toString(group(Axis.DP, r))));
        }
        return sb.toString();
    }
}
