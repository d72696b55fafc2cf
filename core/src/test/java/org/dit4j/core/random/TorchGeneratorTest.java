package org.dit4j.core.random;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * TorchGenerator against vectors drawn by PyTorch 2.11 (scripts/reference/torch_randn_vectors.py, resources rng/):
 * every stored element compared bit for bit (ulp distance reported), and whole-tensor digests (SHA-256 of the
 * little-endian float32 bytes, float64 sum and sum of squares).
 */
class TorchGeneratorTest {

    /** What the task demands everywhere; the AVX2 kernel is in fact reproduced bit for bit (asserted via SHA-256). */
    private static final int MAX_ULPS = 2;
    private static final double MIN_EXACT_FRACTION = 0.99;

    private static Map<String, Object> manifest;
    private static float[] avx2Values;
    private static float[] scalarValues;

    @BeforeAll static void load() throws IOException {
        manifest = map(org.dit4j.core.io.Json.parse(new String(resource("manifest.json"), StandardCharsets.UTF_8)));
        avx2Values = floats(resource(str(kernel("avx2").get("file"))));
        scalarValues = floats(resource(str(kernel("scalar").get("file"))));
    }

    // ------------------------------------------------------------------ engine

    @Test void mt19937MatchesStdMt19937ForDefaultSeed() {
        // std::mt19937 (default seed 5489): first outputs, and the 10000th, which the C++ standard specifies
        long[] first = {3499211612L, 581869302L, 3890346734L, 3586334585L, 545404204L,
                4161255391L, 3922919429L, 949333985L, 2715962298L, 1323567403L};
        Mt19937 mt = new Mt19937(5489);
        for (int k = 0; k < first.length; k++)
            assertEquals(first[k], Integer.toUnsignedLong(mt.nextInt()), "output #" + (k + 1));
        for (int k = first.length + 1; k < 10000; k++) mt.nextInt();
        assertEquals(4123659995L, Integer.toUnsignedLong(mt.nextInt()), "10000th output");
    }

    @Test void seedKeepsOnlyLow32BitsForTheEngineButReportsAll64() {
        TorchGenerator a = new TorchGenerator((1L << 32) + 5);
        TorchGenerator b = new TorchGenerator(5);
        assertArrayEquals(b.randnFloats(17), a.randnFloats(17));
        assertEquals((1L << 32) + 5, a.seed());
        assertEquals(-1L, new TorchGenerator(-1L).seed());
    }

    @Test void random64PutsFirstDrawInHighHalf() {
        Mt19937 mt = new Mt19937(42);
        long hi = Integer.toUnsignedLong(mt.nextInt()), lo = Integer.toUnsignedLong(mt.nextInt());
        assertEquals((hi << 32) | lo, new TorchGenerator(42).nextLong());
    }

    // ------------------------------------------------------------------ against PyTorch

    @Test void reproducesTorchRandnAndRandOnX86() throws Exception {
        Map<String, Object> k = kernel("avx2");
        Map<String, Object> env = map(k.get("env"));
        assertTrue((Boolean) k.get("global_manual_seed_matches_generator"),
                "torch.manual_seed and torch.Generator().manual_seed gave different numbers in " + env);
        // the forced AVX2 and AVX-512 capabilities gave identical digests to the native run
        Map<String, Object> forced = map(manifest.get("forced_capability_checks"));
        for (String cap : List.of("avx2", "avx512"))
            assertEquals(Boolean.TRUE, map(forced.get(cap)).get("all_equal_to_native"), "capability " + cap + ": " + forced.get(cap));

        Map<String, Stats> byShape = new LinkedHashMap<>();
        for (Object c : list(k.get("cases"))) {
            Map<String, Object> kase = map(c);
            String name = str(kase.get("name"));
            TorchGenerator g = new TorchGenerator(((Number) kase.get("seed")).longValue());
            List<Object> results = list(kase.get("results"));
            for (int r = 0; r < results.size(); r++) {
                Map<String, Object> res = map(results.get(r));
                String where = name + " call #" + r + " " + res.get("op") + res.get("shape");
                float[] got = draw(g, res);
                Stats s = compare(res, got, avx2Values, where);
                assertTrue(s.maxUlps <= MAX_ULPS, where + ": max " + s.maxUlps + " ulps (limit " + MAX_ULPS + ")");
                assertTrue(s.exactFraction() >= MIN_EXACT_FRACTION, where + ": only " + s + " bit-exact");
                checkDigests(res, got, s.exact == s.count, where);
                String key = name.startsWith("seq") ? name + "#" + r + " " + res.get("op") + res.get("shape")
                        : res.get("op") + "" + res.get("shape");
                byShape.computeIfAbsent(key, x -> new Stats()).add(s);
            }
        }
        StringBuilder report = new StringBuilder("TorchGenerator vs torch " + env.get("torch_version") + " ("
                + env.get("cpu_capability") + ", " + env.get("cpu_model") + "):\n");
        byShape.forEach((key, s) -> report.append(String.format("  %-44s %s%n", key, s)));
        System.out.print(report);
        // the AVX2 kernel is reproduced bit for bit: every stored element, and the SHA-256 of every whole tensor
        for (var e : byShape.entrySet())
            assertEquals(e.getValue().count, e.getValue().exact, "not bit-exact: " + e.getKey() + " " + e.getValue());
    }

    /**
     * PyTorch's portable kernel (ATEN_CPU_CAPABILITY=default) uses libm logf/cosf/sinf, which this class does not
     * reproduce: the stream positions agree (the double-path draws after it are exact) and values differ by about
     * 2e-6 at most (many ulps where a result is near 0, since Cephes and libm err differently near the zeros of sin/cos).
     */
    @Test void portableKernelDiffersByAtMostAFewMillionths() throws Exception {
        Stats big = new Stats();
        for (Object c : list(kernel("scalar").get("cases"))) {
            Map<String, Object> kase = map(c);
            TorchGenerator g = new TorchGenerator(((Number) kase.get("seed")).longValue());
            List<Object> results = list(kase.get("results"));
            for (int r = 0; r < results.size(); r++) {
                Map<String, Object> res = map(results.get(r));
                String where = "portable kernel " + kase.get("name") + " call #" + r + " " + res.get("shape");
                float[] got = draw(g, res);
                Stats s = compare(res, got, scalarValues, where);
                if (got.length < 16) {
                    assertEquals(s.count, s.exact, where + " (double path, same in every kernel): " + s);
                } else {
                    big.add(s);
                }
            }
        }
        System.out.println("TorchGenerator vs torch portable kernel (numel >= 16): " + big);
        assertTrue(big.maxAbs <= 4e-6, "portable kernel: " + big);
        assertTrue(big.exactFraction() >= 0.5, "portable kernel: " + big);
    }

    // ------------------------------------------------------------------ API

    @Test void randnTensorHasShapeAndSameValuesAsFloats() {
        try (Scope scope = Scope.open()) {
            Tensor t = new TorchGenerator(42).randn(1, 4, 5, 3);
            assertEquals(Shape.of(1, 4, 5, 3), t.shape());
            assertEquals(DType.F32, t.dtype());
            assertArrayEquals(new TorchGenerator(42).randnFloats(60), t.toFloatArray());
            Tensor u = new TorchGenerator(7).rand(3, 7);
            assertArrayEquals(new TorchGenerator(7).randFloats(21), u.toFloatArray());
            for (float v : u.toFloatArray()) assertTrue(v >= 0f && v < 1f, "rand value " + v + " outside [0, 1)");
        }
        assertThrows(IllegalArgumentException.class, () -> new TorchGenerator(0).randn(2, -1));
        assertThrows(IllegalArgumentException.class, () -> new TorchGenerator(0).randnFloats(-3));
        assertEquals(0, new TorchGenerator(0).randnFloats(0).length);
    }

    @Test void largeNoiseTensorIsFast() {
        TorchGenerator g = new TorchGenerator(0);
        g.randnFloats(1 << 16); // warm up the JIT
        long t0 = System.nanoTime();
        float[] x = g.randnFloats(1L * 16 * 17 * 80 * 80);
        double seconds = (System.nanoTime() - t0) / 1e9;
        assertEquals(1740800, x.length);
        assertTrue(seconds < 1.0, "randn [1,16,17,80,80] took " + seconds + " s (expected well under 1 s)");
    }

    // ------------------------------------------------------------------ helpers

    private static float[] draw(TorchGenerator g, Map<String, Object> res) {
        long numel = ((Number) res.get("numel")).longValue();
        return switch (str(res.get("op"))) {
            case "randn" -> g.randnFloats(numel);
            case "rand" -> g.randFloats(numel);
            default -> throw new IllegalArgumentException("manifest op " + res.get("op") + " is not randn or rand");
        };
    }

    /** Compares the stored elements of one result (the stored-index rule of the manifest) with {@code got}. */
    private static Stats compare(Map<String, Object> res, float[] got, float[] values, String where) {
        Map<String, Object> rule = map(manifest.get("stored_rule"));
        int allUpTo = ((Number) rule.get("all_if_numel_le")).intValue();
        int head = ((Number) rule.get("head")).intValue(), tail = ((Number) rule.get("tail")).intValue();
        int every = ((Number) rule.get("every")).intValue();
        int offset = ((Number) res.get("offset")).intValue(), count = ((Number) res.get("count")).intValue();
        int n = got.length;
        assertEquals(((Number) res.get("numel")).intValue(), n, where + ": element count");
        Stats s = new Stats();
        int k = 0;
        for (int i = 0; i < n; i++) {
            boolean stored = n <= allUpTo || i < head || i >= n - tail || i % every == 0;
            if (!stored) continue;
            assertTrue(k < count, where + ": more stored indices than the manifest's count " + count);
            s.add(values[offset + k], got[i]);
            k++;
        }
        assertEquals(count, k, where + ": stored index rule disagrees with the manifest's count");
        return s;
    }

    private static void checkDigests(Map<String, Object> res, float[] got, boolean sampledExact, String where)
            throws Exception {
        ByteBuffer bytes = ByteBuffer.allocate(got.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        bytes.asFloatBuffer().put(got);
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes.array()));
        if (sampledExact) assertEquals(str(res.get("sha256")), sha, where + ": SHA-256 of all elements");
        // float64 sums with Neumaier compensation; numpy's pairwise sums differ only by double rounding
        double sum = 0, c1 = 0, sumsq = 0, c2 = 0;
        for (float f : got) {
            double v = f, t = sum + v;
            c1 += Math.abs(sum) >= Math.abs(v) ? (sum - t) + v : (v - t) + sum;
            sum = t;
            double q = v * v, u = sumsq + q;
            c2 += sumsq >= q ? (sumsq - u) + q : (q - u) + sumsq;
            sumsq = u;
        }
        sum += c1;
        sumsq += c2;
        double refSumsq = ((Number) res.get("sumsq")).doubleValue();
        double tol = 1e-12 * (refSumsq + got.length) + 1e-12;
        if (!sampledExact) tol += 2 * 0x1p-23 * Math.sqrt(refSumsq * got.length) * 4; // ≤2 ulps each, loose
        assertEquals(((Number) res.get("sum")).doubleValue(), sum, tol, where + ": float64 sum");
        assertEquals(refSumsq, sumsq, tol * 8, where + ": float64 sum of squares");
    }

    /** Bit-exact count and ulp distances over compared elements. */
    private static final class Stats {
        long count, exact, maxUlps;
        double maxAbs; // max |got - ref| / max(1, |ref|)

        void add(float ref, float got) {
            count++;
            int a = Float.floatToRawIntBits(ref), b = Float.floatToRawIntBits(got);
            if (a == b) { exact++; return; }
            maxUlps = Math.max(maxUlps, Math.abs(ordered(a) - ordered(b)));
            maxAbs = Math.max(maxAbs, Math.abs((double) got - ref) / Math.max(1, Math.abs(ref)));
        }

        void add(Stats o) {
            count += o.count;
            exact += o.exact;
            maxUlps = Math.max(maxUlps, o.maxUlps);
            maxAbs = Math.max(maxAbs, o.maxAbs);
        }

        double exactFraction() { return count == 0 ? 1 : (double) exact / count; }

        /** Maps float bits to a line where adjacent floats differ by 1 (+0 and -0 both at 0). */
        private static long ordered(int bits) { return bits < 0 ? -(long) (bits & 0x7fffffff) : bits; }

        @Override public String toString() {
            return String.format("%d/%d bit-exact (%.4f%%), max %d ulp, max |diff|/max(1,|x|) %.3g",
                    exact, count, 100.0 * exactFraction(), maxUlps, maxAbs);
        }
    }

    private static Map<String, Object> kernel(String name) { return map(map(manifest.get("kernels")).get(name)); }

    private static byte[] resource(String name) throws IOException {
        try (InputStream in = TorchGeneratorTest.class.getResourceAsStream("/rng/" + name)) {
            if (in == null) throw new IOException("test resource rng/" + name + " is missing; regenerate with "
                    + "scripts/reference/torch_randn_vectors.py");
            return in.readAllBytes();
        }
    }

    private static float[] floats(byte[] b) {
        float[] f = new float[b.length / 4];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) { return (Map<String, Object>) o; }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) { return (List<Object>) o; }

    private static String str(Object o) { return (String) o; }
}
