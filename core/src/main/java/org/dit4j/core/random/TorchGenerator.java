package org.dit4j.core.random;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * PyTorch's CPU random generator ({@code torch.Generator("cpu")}, also the global one behind
 * {@code torch.manual_seed}), reproducing {@code torch.randn} and {@code torch.rand} for float32 bit for bit, so a
 * seed gives the same initial noise as ComfyUI and diffusers when they draw it on the CPU.
 *
 * <p>What PyTorch does (aten/src/ATen: CPUGeneratorImpl, core/MT19937RNGEngine.h, core/DistributionsHelper.h,
 * core/TransformationHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h):
 * <ul>
 *   <li>Engine: MT19937 seeded with the low 32 bits of the 64-bit seed ({@link Mt19937}). {@code random()} is one
 *       32-bit draw; {@code random64()} is {@code (first << 32) | second}.</li>
 *   <li>Uniform float in [0,1): {@code (random() & (2^24-1)) * 2^-24}; uniform double: {@code (random64() &
 *       (2^53-1)) * 2^-53}. {@code torch.rand} (float32) draws one float uniform per element, in order.</li>
 *   <li>{@code torch.randn}, float32, numel &gt;= 16 (contiguous): first one float uniform per element, in order; then
 *       Box–Muller in place on each block of 16, pairing element j with j+8:
 *       {@code r = sqrt(-2 log(1 - u[j]))}, {@code t = 2π u[j+8]}, {@code out[j] = r cos t}, {@code out[j+8] = r sin t}.
 *       If numel % 16 != 0, 16 more uniforms are drawn into the last 16 elements, overwriting them, and that
 *       block is transformed again. x86 builds use the AVX2 kernel for this (also on AVX-512 machines: normal_stub
 *       has no AVX-512 kernel), whose log, sin and cos are the float Cephes polynomials of avx_mathfun.h, compiled
 *       by GCC with FMA contraction; {@link CephesF32} evaluates them operation by operation.</li>
 *   <li>{@code torch.randn}, numel &lt; 16: the double Box–Muller of {@code normal_distribution<double>}: per pair,
 *       {@code u1, u2} double uniforms, {@code r = sqrt(-2 log1p(-u2))}, {@code t = 2π u1}; it returns {@code r cos t}
 *       and caches {@code r sin t} in the generator for the next such element — also across calls. The numel &gt;= 16
 *       kernel neither uses nor clears that cache; a fresh generator has none. Results are cast to float.</li>
 * </ul>
 *
 * <p>Bit-exact against PyTorch 2.11 Linux x86-64 wheels (GCC-built) on AVX2/AVX-512 CPUs. Not reproduced bit for
 * bit: PyTorch's portable kernel ({@code ATEN_CPU_CAPABILITY=default}, non-x86 builds), which calls libm
 * {@code logf/cosf/sinf} instead of the Cephes polynomials — about 40% of its numel &gt;= 16 values differ from
 * this class, by at most about 2e-6 (see TorchGeneratorTest); and, presumably, builds whose compiler does not contract
 * multiply-adds (MSVC on Windows): evaluating the same polynomials without FMA changes about 1% of the values by
 * 1–3 ulps.
 *
 * <p>Methods are synchronized (PyTorch locks its generator the same way).
 */
public final class TorchGenerator {

    private static final int MAX_ELEMENTS = Integer.MAX_VALUE - 16;

    private final long seed;
    private final Mt19937 engine;
    private boolean hasCachedNormal;
    private double cachedNormal;

    /**
     * Same stream as {@code torch.Generator().manual_seed(seed)} (or {@code torch.manual_seed(seed)}). A negative
     * {@code seed} stands for the unsigned 64-bit value with the same bits ({@code -1} is {@code 2**64 - 1}), as in
     * PyTorch; only the low 32 bits reach the engine.
     */
    public TorchGenerator(long seed) {
        this.seed = seed;
        this.engine = new Mt19937(seed);
    }

    /** The seed, as {@code torch.Generator.initial_seed()} (read negative values as unsigned). */
    public long seed() { return seed; }

    /** PyTorch's {@code random()}: the next 32 random bits (read as unsigned). */
    public synchronized int nextInt() { return engine.nextInt(); }

    /** PyTorch's {@code random64()}: two draws, the first in the high half. */
    public synchronized long nextLong() {
        long hi = Integer.toUnsignedLong(engine.nextInt());
        long lo = Integer.toUnsignedLong(engine.nextInt());
        return (hi << 32) | lo;
    }

    // ------------------------------------------------------------------ uniform

    /** {@code torch.rand(shape, generator=g, dtype=torch.float32)} on the CPU: a new F32 host tensor. */
    public Tensor rand(long... shape) {
        Shape s = Shape.of(shape);
        return Tensor.of(DType.F32, randFloats(s.numel()), shape);
    }

    /** The values of {@code torch.rand(n)} (float32, uniform in [0, 1)). */
    public synchronized float[] randFloats(long n) {
        float[] out = new float[checkCount(n, "randFloats")];
        fillUniform(out, 0, out.length);
        return out;
    }

    // ------------------------------------------------------------------ normal

    /** {@code torch.randn(shape, generator=g, dtype=torch.float32)} on the CPU: a new F32 host tensor. */
    public Tensor randn(long... shape) {
        Shape s = Shape.of(shape);
        return Tensor.of(DType.F32, randnFloats(s.numel()), shape);
    }

    /** The values of {@code torch.randn(n)} (float32, standard normal); {@code n} selects the kernel as in PyTorch. */
    public synchronized float[] randnFloats(long n) {
        float[] out = new float[checkCount(n, "randnFloats")];
        int size = out.length;
        if (size >= 16) {
            fillUniform(out, 0, size);
            for (int i = 0; i + 16 <= size; i += 16) boxMuller16(out, i);
            if (size % 16 != 0) {
                fillUniform(out, size - 16, size);
                boxMuller16(out, size - 16);
            }
        } else {
            for (int i = 0; i < size; i++) out[i] = (float) nextDoubleNormal();
        }
        return out;
    }

    private static int checkCount(long n, String what) {
        if (n < 0 || n > MAX_ELEMENTS)
            throw new IllegalArgumentException(what + ": element count must be in [0, " + MAX_ELEMENTS + "], got " + n
                    + "; draw large tensors in several calls");
        return (int) n;
    }

    private void fillUniform(float[] out, int from, int to) {
        for (int i = from; i < to; i++) out[i] = (engine.nextInt() & 0xFFFFFF) * 0x1p-24f;
    }

    private double nextDoubleUniform() {
        long hi = Integer.toUnsignedLong(engine.nextInt());
        long lo = Integer.toUnsignedLong(engine.nextInt());
        return (((hi << 32) | lo) & ((1L << 53) - 1)) * 0x1p-53;
    }

    /** normal_distribution&lt;double&gt;(0, 1) with its cached second sample. */
    private double nextDoubleNormal() {
        if (hasCachedNormal) {
            hasCachedNormal = false;
            return cachedNormal;
        }
        double u1 = nextDoubleUniform();
        double u2 = nextDoubleUniform();
        double r = Math.sqrt(-2.0 * StrictMath.log1p(-u2));
        double theta = 2.0 * Math.PI * u1;
        cachedNormal = r * StrictMath.sin(theta);
        hasCachedNormal = true;
        return r * StrictMath.cos(theta);
    }

    /** normal_fill_16_AVX2 with mean 0, std 1: Box–Muller on d[base, base+16), pairing j with j+8. */
    private static void boxMuller16(float[] d, int base) {
        for (int j = base; j < base + 8; j++) {
            float radius = sqrtF(-2f * CephesF32.log(1f - d[j]));
            long sc = CephesF32.sincos(CephesF32.TWO_PI * d[j + 8]);
            float sin = Float.intBitsToFloat((int) (sc >>> 32));
            float cos = Float.intBitsToFloat((int) sc);
            // _mm256_fmadd_ps(n, std = 1, mean = 0): n + 0 (which turns -0 into +0)
            d[j] = radius * cos + 0f;
            d[j + 8] = radius * sin + 0f;
        }
    }

    /** Correctly rounded float square root (double sqrt of a float rounds correctly to float). */
    private static float sqrtF(float x) { return (float) Math.sqrt(x); }
}
