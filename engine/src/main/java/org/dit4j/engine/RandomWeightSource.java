package org.dit4j.engine;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.IntStream;

/**
 * A checkpoint made up on the fly: every tensor of a name→shape table filled with deterministic pseudo-random values
 * scaled like PyTorch's default Linear init (uniform ±1/√fan_in for 2-D weights and biases; 1-D tensors whose name
 * ends in "scale" or "norm" weights are 1). Lets benchmarks run the full-size architectures without a checkpoint.
 * Values depend only on (seed, name, index), never on thread scheduling.
 */
public final class RandomWeightSource implements WeightSource {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Map<String, Shape> shapes;
    private final Map<String, Long> fanIn = new TreeMap<>();
    private final DType dtype;
    private final long seed;

    /** @param shapes tensor name → shape; 1-D biases take the fan-in of the "weight" next to them */
    public RandomWeightSource(Map<String, Shape> shapes, DType dtype, long seed) {
        if (dtype != DType.BF16 && dtype != DType.F32 && dtype != DType.F16)
            throw new IllegalArgumentException("random weights are made as BF16, F16 or F32, not " + dtype);
        this.shapes = new TreeMap<>(shapes);
        this.dtype = dtype;
        this.seed = seed;
        for (var e : this.shapes.entrySet()) {
            Shape s = e.getValue();
            if (s.rank() >= 2) fanIn.put(e.getKey(), s.numel() / s.dim(0));
        }
    }

    @Override public Path path() { return Path.of("random-weights(seed=" + seed + ")"); }

    @Override public Set<String> names() { return Collections.unmodifiableSet(shapes.keySet()); }

    @Override public boolean contains(String name) { return shapes.containsKey(name); }

    @Override public TensorInfo info(String name) {
        Shape s = shape(name);
        return new TensorInfo(name, dtype, s, 0, s.numel() * dtype.byteSize());
    }

    @Override public String dtypeName(String name) { return info(name).dtype().safetensorsName(); }

    @Override public Path fileOf(String name) { shape(name); return path(); }

    @Override public Map<String, String> metadata() { return Map.of("dit4j.random_seed", Long.toString(seed)); }

    /** A new host tensor (owned by the caller or the current scope) with this name's values. */
    @Override public Tensor tensor(String name) {
        Shape s = shape(name);
        Tensor t = Tensor.zeros(dtype, s);
        boolean ones = s.rank() == 1 && (name.endsWith(".scale") || name.endsWith("norm.weight"));
        double bound = ones ? 0 : 1.0 / Math.sqrt(fanInOf(name, s));
        long n = s.numel();
        long nameHash = mix(seed ^ name.hashCode() * 0x9E3779B97F4A7C15L);
        MemorySegment seg = t.segment();
        int chunks = (int) Math.max(1, Math.min(4096, n / 65536));
        IntStream.range(0, chunks).parallel().forEach(c -> {
            long from = n * c / chunks, to = n * (c + 1) / chunks;
            for (long i = from; i < to; i++) {
                float v = ones ? 1f : (float) (bound * uniform(nameHash, i));
                switch (dtype) {
                    case BF16 -> seg.set(I16, i * 2, DType.floatToBf16(v));
                    case F16 -> seg.set(I16, i * 2, DType.floatToF16(v));
                    default -> seg.set(F32, i * 4, v);
                }
            }
        });
        return t;
    }

    @Override public void close() {}

    private Shape shape(String name) {
        Shape s = shapes.get(name);
        if (s == null) throw new CheckpointException("random weights have no tensor '" + name + "'");
        return s;
    }

    private long fanInOf(String name, Shape s) {
        if (s.rank() >= 2) return s.numel() / s.dim(0);
        String weight = name.endsWith(".bias") ? name.substring(0, name.length() - 5) + ".weight" : null;
        Long f = weight == null ? null : fanIn.get(weight);
        return f != null ? f : s.dim(0);
    }

    /** Uniform in [-1, 1) from a counter-based hash (SplitMix64 finaliser). */
    private static double uniform(long key, long i) {
        return (mix(key + i * 0xD1B54A32D192ED03L) >>> 11) * 0x1.0p-52 - 1.0;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
