package org.dit4j.engine.parallel;

import java.util.Locale;

/**
 * How many ranks (GPUs) work on one generation and how they split it: degrees {@code dp × cfg × ring × ulysses}, whose
 * product is the world size. Axis order, outermost first: dp, cfg, ring, ulysses (ranks of one Ulysses group are
 * neighbours, which on one host puts the heaviest all-to-all on the closest GPUs).
 *
 * <ul>
 *   <li>{@code dp}: data parallel, independent requests (or batch elements) per group.</li>
 *   <li>{@code cfg}: 1, or 2 for classifier-free guidance with the conditional and unconditional branches on different
 *       ranks.</li>
 *   <li>{@code ring}, {@code ulysses}: sequence parallelism inside attention (USP = ring × ulysses). The token sequence
 *       is split into ring·ulysses equal shards; Ulysses needs the head count divisible by {@code ulysses}.</li>
 * </ul>
 * Sequences are split, not padded: the lengths must be divisible by ring·ulysses ({@link #checkSequence}); see
 * {@link FluxSequenceParallel} for how Flux's text and image tokens are split.
 */
public record ParallelConfig(int dp, int cfg, int ring, int ulysses) {

    public ParallelConfig {
        check("dp", dp);
        check("cfg", cfg);
        check("ring", ring);
        check("ulysses", ulysses);
        if (cfg > 2)
            throw new IllegalArgumentException("cfg parallel degree must be 1 or 2 (conditional and unconditional branch), got " + cfg);
        Math.multiplyExact(Math.multiplyExact(dp, cfg), Math.multiplyExact(ring, ulysses));
    }

    /** One rank, no parallelism. */
    public static ParallelConfig single() { return new ParallelConfig(1, 1, 1, 1); }

    public static ParallelConfig ulysses(int u) { return new ParallelConfig(1, 1, 1, u); }

    public static ParallelConfig ring(int r) { return new ParallelConfig(1, 1, r, 1); }

    /**
     * Parses "ulysses=4", "ring=2,ulysses=2", "dp=2 cfg=2" (any order; missing degrees are 1; separators ',', ' ',
     * ';'; 'x' as in "cfg=2xulysses=2" too).
     */
    public static ParallelConfig parse(String spec) {
        int dp = 1, cfg = 1, ring = 1, ulysses = 1;
        if (spec == null || spec.isBlank()) return single();
        for (String part : spec.trim().toLowerCase(Locale.ROOT).split("[,; ×]+|(?<=\\d)x")) {
            if (part.isBlank()) continue;
            String[] kv = part.split("[=:]", 2);
            if (kv.length != 2)
                throw new IllegalArgumentException("parallel config '" + spec + "': expected name=degree pairs such as "
                        + "'ring=2,ulysses=2', got '" + part + "'");
            int v;
            try {
                v = Integer.parseInt(kv[1].trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("parallel config '" + spec + "': degree of " + kv[0] + " must be a number, got '" + kv[1] + "'");
            }
            switch (kv[0].trim()) {
                case "dp", "data" -> dp = v;
                case "cfg" -> cfg = v;
                case "ring" -> ring = v;
                case "ulysses", "sp" -> ulysses = v;
                default -> throw new IllegalArgumentException("parallel config '" + spec + "': unknown degree '" + kv[0]
                        + "'; use dp, cfg, ring, ulysses");
            }
        }
        return new ParallelConfig(dp, cfg, ring, ulysses);
    }

    /**
     * The degrees for {@code gpus} ranks when only the count is given: Ulysses over all of them when the head count
     * allows, else the largest Ulysses degree dividing both, the rest as ring.
     */
    public static ParallelConfig forGpus(int gpus, int heads) {
        if (gpus < 1) throw new IllegalArgumentException("--gpus must be at least 1, got " + gpus);
        int u = 1;
        for (int d = 1; d <= gpus; d++) if (gpus % d == 0 && heads % d == 0) u = d;
        return new ParallelConfig(1, 1, gpus / u, u);
    }

    /** Number of ranks: dp·cfg·ring·ulysses. */
    public int worldSize() { return dp * cfg * ring * ulysses; }

    /** Ranks sharing one sequence: ring·ulysses. */
    public int sequenceDegree() { return ring * ulysses; }

    /** Fails unless this mesh has exactly {@code ranks} ranks (e.g. the number of GPUs given). */
    public void checkWorldSize(int ranks) {
        if (ranks != worldSize())
            throw new IllegalArgumentException("parallel config " + this + " needs " + worldSize() + " ranks (dp·cfg·ring·ulysses), but "
                    + ranks + (ranks == 1 ? " is" : " are") + " given; change the degrees so that their product is " + ranks);
    }

    /** Fails unless the attention head count splits over the Ulysses degree. */
    public void checkHeads(String model, int heads) {
        if (heads % ulysses != 0)
            throw new IllegalArgumentException(model + " has " + heads + " attention heads, which the Ulysses degree " + ulysses
                    + " does not divide; use a Ulysses degree that divides " + heads + " and put the rest into ring (e.g. "
                    + suggest(heads) + ")");
    }

    /** Fails unless a sequence of {@code length} tokens splits into ring·ulysses equal shards. */
    public void checkSequence(String what, long length) {
        int s = sequenceDegree();
        if (length % s != 0)
            throw new IllegalArgumentException(what + " has " + length + " tokens, which the sequence-parallel degree " + s
                    + " (ring " + ring + " × ulysses " + ulysses + ") does not divide; sequences are split, not padded: choose "
                    + "sizes that give a multiple of " + s + " tokens or a degree that divides " + length);
    }

    private String suggest(int heads) {
        int n = sequenceDegree(), u = 1;
        for (int d = 1; d <= n; d++) if (n % d == 0 && heads % d == 0) u = d;
        return "ring=" + n / u + ",ulysses=" + u;
    }

    private static void check(String name, int v) {
        if (v < 1) throw new IllegalArgumentException("parallel degree " + name + " must be >= 1, got " + v);
    }

    @Override public String toString() { return "dp" + dp + "×cfg" + cfg + "×ring" + ring + "×ulysses" + ulysses; }
}
