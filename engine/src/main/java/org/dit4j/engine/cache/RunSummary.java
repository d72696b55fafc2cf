package org.dit4j.engine.cache;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Which steps of a run were computed and which were skipped, per branch, with the reason and the compared metric.
 * {@link #toString()} prints it:
 * <pre>
 * teacache flux rel_l1_thresh=0.4 … · request r1 · 28 steps
 *   cond    ##.#..#.##… computed 15/28, skipped 13: 3 5 6 …
 * </pre>
 * ({@code #} computed, {@code .} skipped, {@code ?} not decided).
 */
public final class RunSummary {

    /** One decided call. */
    public record Entry(int step, Decision decision) {}

    private final String policy;
    private final String requestId;
    private final int totalSteps;
    private final EnumMap<Branch, Entry[]> entries = new EnumMap<>(Branch.class);

    RunSummary(String policy, String requestId, int totalSteps) {
        this.policy = policy;
        this.requestId = requestId;
        this.totalSteps = totalSteps;
    }

    synchronized void record(int step, Branch branch, Decision d) {
        entries.computeIfAbsent(branch, b -> new Entry[totalSteps])[step] = new Entry(step, d);
    }

    public String policy() { return policy; }

    public String requestId() { return requestId; }

    public int totalSteps() { return totalSteps; }

    /** The branches that were decided at least once. */
    public synchronized List<Branch> branches() { return List.copyOf(entries.keySet()); }

    /** The decided calls of a branch, in step order. */
    public synchronized List<Entry> entries(Branch branch) {
        Entry[] e = entries.get(branch);
        if (e == null) return List.of();
        List<Entry> out = new ArrayList<>();
        for (Entry x : e) if (x != null) out.add(x);
        return Collections.unmodifiableList(out);
    }

    /** Steps of a branch that ran the transformer. */
    public int[] computedSteps(Branch branch) { return steps(branch, true); }

    /** Steps of a branch that reused the cached residual. */
    public int[] skippedSteps(Branch branch) { return steps(branch, false); }

    public int computed(Branch branch) { return computedSteps(branch).length; }

    public int skipped(Branch branch) { return skippedSteps(branch).length; }

    /** Per-step pattern of a branch: {@code #} computed, {@code .} skipped, {@code ?} not decided. */
    public synchronized String pattern(Branch branch) {
        Entry[] e = entries.get(branch);
        StringBuilder sb = new StringBuilder(totalSteps);
        for (int i = 0; i < totalSteps; i++)
            sb.append(e == null || e[i] == null ? '?' : e[i].decision().skip() ? '.' : '#');
        return sb.toString();
    }

    /** Count of decisions per reason for a branch. */
    public synchronized Map<Decision.Reason, Integer> reasons(Branch branch) {
        Map<Decision.Reason, Integer> m = new EnumMap<>(Decision.Reason.class);
        for (Entry x : entries(branch)) m.merge(x.decision().reason(), 1, Integer::sum);
        return m;
    }

    private int[] steps(Branch branch, boolean computed) {
        return entries(branch).stream().filter(x -> x.decision().compute() == computed).mapToInt(Entry::step).toArray();
    }

    @Override public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append(policy).append(" · request ").append(requestId).append(" · ").append(totalSteps).append(" steps");
        for (Branch b : branches()) {
            int[] skipped = skippedSteps(b);
            sb.append(System.lineSeparator()).append("  ").append(String.format("%-7s", b.label())).append(' ')
              .append(pattern(b)).append(" computed ").append(computed(b)).append('/').append(totalSteps)
              .append(", skipped ").append(skipped.length);
            if (skipped.length > 0) {
                sb.append(':');
                for (int s : skipped) sb.append(' ').append(s);
            }
        }
        return sb.toString();
    }
}
