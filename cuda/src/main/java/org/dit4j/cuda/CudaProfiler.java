package org.dit4j.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Device-time breakdown of a backend's work: while {@link CudaBackend#startProfile() profiling}, every launch (kernel,
 * cuBLASLt matrix product, cuDNN attention, device copy, memset) is bracketed by two timing events on the backend's
 * stream. {@link CudaBackend#stopProfile()} waits for the device and turns the event pairs into {@link Span}s. Off by
 * default; when off, the backend pays one null check per launch. Not usable during CUDA-graph capture.
 */
public final class CudaProfiler {

    /** What a launch spent its time on. */
    public enum Category { GEMM, ATTENTION, OTHER }

    /**
     * One timed launch: its category, a label (kernel name, {@code gemm MxNxK epilogue}, …), the device milliseconds
     * between its two events, and its floating-point operations (0 where not counted).
     */
    public record Span(Category category, String label, double ms, double flops) {}

    /** Spans summed by label, in first-seen order. */
    public record Group(Category category, String label, int count, double ms, double flops) {
        /** TFLOP/s of this group, NaN where its FLOPs are not counted. */
        public double tflops() { return flops > 0 ? flops / ms / 1e9 : Double.NaN; }
    }

    private final CudaDriver drv;
    private final List<Long> events = new ArrayList<>();
    private final List<Object[]> open = new ArrayList<>();   // {Category, label, flops} per span, in record order
    private int used;

    CudaProfiler(CudaDriver drv) { this.drv = drv; }

    private long event() {
        if (used == events.size()) events.add(drv.eventCreate(CudaDriver.EVENT_DEFAULT));
        return events.get(used++);
    }

    /** Records the start event of the next span. */
    void begin(long stream) { drv.eventRecord(event(), stream); }

    /** Records the end event of the span begun last. */
    void end(long stream, Category c, String label, double flops) {
        drv.eventRecord(event(), stream);
        open.add(new Object[] {c, label, flops});
    }

    /** Waits for the device and returns the spans recorded since the last call (and forgets them). */
    List<Span> take() {
        List<Span> spans = new ArrayList<>(open.size());
        if (used > 0) drv.eventSynchronize(events.get(used - 1));
        for (int i = 0; i < open.size(); i++) {
            Object[] o = open.get(i);
            double ms = drv.eventElapsedMs(events.get(2 * i), events.get(2 * i + 1));
            spans.add(new Span((Category) o[0], (String) o[1], ms, (Double) o[2]));
        }
        open.clear();
        used = 0;
        return spans;
    }

    void close() {
        for (long e : events) drv.eventDestroy(e);
        events.clear();
        open.clear();
        used = 0;
    }

    /** Sums spans by label (first-seen order). */
    public static List<Group> group(List<Span> spans) {
        Map<String, double[]> acc = new LinkedHashMap<>();
        Map<String, Category> cat = new LinkedHashMap<>();
        for (Span s : spans) {
            double[] a = acc.computeIfAbsent(s.label(), k -> new double[3]);
            a[0]++;
            a[1] += s.ms();
            a[2] += s.flops();
            cat.putIfAbsent(s.label(), s.category());
        }
        List<Group> out = new ArrayList<>();
        for (var e : acc.entrySet())
            out.add(new Group(cat.get(e.getKey()), e.getKey(), (int) e.getValue()[0], e.getValue()[1], e.getValue()[2]));
        return out;
    }

    /** Total milliseconds per category. */
    public static Map<Category, Double> totals(List<Span> spans) {
        Map<Category, Double> t = new LinkedHashMap<>();
        for (Category c : Category.values()) t.put(c, 0.0);
        for (Span s : spans) t.merge(s.category(), s.ms(), Double::sum);
        return t;
    }
}
