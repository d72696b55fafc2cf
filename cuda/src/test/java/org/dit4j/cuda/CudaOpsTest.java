package org.dit4j.cuda;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.dit4j.cuda.CudaTestSupport.*;
import static org.dit4j.cuda.HostRef.randn;
import static org.junit.jupiter.api.Assertions.*;

/** Every Ops method of the CUDA backend against a double-precision host reference, per activation dtype. */
class CudaOpsTest {
    static CudaBackend ops;
    Scope scope;

    @BeforeAll static void open() {
        requireCuda();
        ops = new CudaBackend();
        System.out.println("[dit4j-cuda] " + ops.name());
    }

    @AfterAll static void close() {
        if (ops != null) ops.close();
    }

    @BeforeEach void scope() { scope = Scope.open(); }

    @AfterEach void release() {
        ops.synchronize();
        scope.close();
    }

    // ------------------------------------------------------------------ memory and casts

    @ParameterizedTest @EnumSource(DType.class)
    void uploadDownloadIsBitExact(DType t) {
        float[] x = randn(1, 1000);
        for (int i = 0; i < x.length; i++) x[i] *= 10;
        Tensor h = Tensor.of(t, x, 10, 100);
        Tensor back = ops.toHost(ops.upload(h));
        assertEquals(h.shape(), back.shape());
        assertArrayEquals(h.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE),
                back.segment().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), "round trip of " + t);
    }

    @Test void largeUploadCrossesStagingBuffers() {
        int n = 9 << 20;   // 36 MiB of f32: three staging chunks
        float[] x = randn(2, n);
        Tensor d = dev(ops, DType.F32, x, n);
        float[] back = host(ops, d);
        assertArrayEquals(x, back);
    }

    @Test void zerosAreZero() {
        Tensor z = ops.zeros(DType.BF16, Shape.of(3, 5));
        for (float v : host(ops, z)) assertEquals(0f, v);
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"BF16", "F16", "F8_E4M3", "F8_E5M2", "I32"})
    void castFromF32MatchesHostRounding(DType t) {
        float[] special = {0f, -0f, 1f, -1.5f, 448f, 449f, 464f, 465f, 500f, 57344f, 61440f, 65504f, 65520f, 1e-3f,
                0x1p-9f, 0x1p-10f, 3e-8f, 1e30f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN, 2.5f, -7.75f};
        float[] r = randn(3, 4096);
        float[] x = new float[special.length + r.length];
        System.arraycopy(special, 0, x, 0, special.length);
        for (int i = 0; i < r.length; i++) x[special.length + i] = r[i] * (float) Math.pow(2, (i % 40) - 20);
        Tensor d = ops.cast(dev(ops, DType.F32, x, x.length), t);
        Tensor expect = Tensor.of(t, x, x.length);
        Tensor got = ops.toHost(d);
        for (int i = 0; i < x.length; i++) {
            float e = expect.getFloat(i), g = got.getFloat(i);
            if (Float.isNaN(e)) assertTrue(Float.isNaN(g), "cast " + x[i] + " to " + t + ": expected NaN, got " + g);
            else assertEquals(e, g, 0f, "cast " + x[i] + " to " + t);
        }
    }

    @Test void castBetweenNarrowTypes() {
        float[] x = randn(4, 333);
        Tensor b = dev(ops, DType.BF16, x, x.length);
        float[] viaF16 = host(ops, ops.cast(ops.cast(b, DType.F16), DType.F32));
        float[] expect = rounded(DType.F16, rounded(DType.BF16, x));
        assertArrayEquals(expect, viaF16);
    }

    // ------------------------------------------------------------------ element-wise

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void binaryOpsBroadcast(DType t) {
        float[] a = rounded(t, randn(5, 2 * 3 * 4)), b = rounded(t, randn(6, 4)), c = rounded(t, randn(7, 2 * 3));
        Tensor da = dev(ops, t, a, 2, 3, 4), db = dev(ops, t, b, 4), dc = dev(ops, t, c, 2, 3, 1);
        float[] add = new float[24], sub = new float[24], mul = new float[24];
        for (int i = 0; i < 24; i++) {
            add[i] = a[i] + b[i % 4];
            sub[i] = a[i] - c[i / 4];
            mul[i] = c[i / 4] * b[i % 4];
        }
        assertClose(host(ops, ops.add(da, db)), add, tol(t), "add [2,3,4]+[4]");
        assertClose(host(ops, ops.sub(da, dc)), sub, tol(t), "sub [2,3,4]-[2,3,1]");
        Tensor m = ops.mul(dc, db);
        assertEquals(Shape.of(2, 3, 4), m.shape());
        assertClose(host(ops, m), mul, tol(t), "mul [2,3,1]*[4]");
        // mixed dtypes: f32 second operand, output in the first's dtype
        float[] bf = randn(8, 4);
        Tensor mixed = ops.add(da, dev(ops, DType.F32, bf, 4));
        assertEquals(t, mixed.dtype());
        float[] mref = new float[24];
        for (int i = 0; i < 24; i++) mref[i] = a[i] + bf[i % 4];
        assertClose(host(ops, mixed), mref, tol(t), "mixed-dtype add");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void unaryOps(DType t) {
        float[] x = rounded(t, randn(9, 2000));
        for (int i = 0; i < x.length; i++) x[i] = rounded(t, new float[] {x[i] * 3})[0];
        Tensor d = dev(ops, t, x, 40, 50);
        float[] sc = new float[x.length], si = new float[x.length], gt = new float[x.length], ge = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            sc[i] = x[i] * 0.37f;
            si[i] = (float) (x[i] / (1 + Math.exp(-x[i])));
            gt[i] = (float) HostRef.gelu(x[i], true);
            ge[i] = (float) HostRef.gelu(x[i], false);
        }
        assertClose(host(ops, ops.scale(d, 0.37f)), sc, tol(t), "scale");
        assertClose(host(ops, ops.silu(d)), si, tol(t), "silu");
        assertClose(host(ops, ops.gelu(d, true)), gt, tol(t), "gelu tanh");
        assertClose(host(ops, ops.gelu(d, false)), ge, tol(t), "gelu erf");
        assertClose(host(ops, ops.softmax(d)), HostRef.softmax(x, 40, 50), tol(t), "softmax");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void modulateAndGatedResidual(DType t) {
        int b = 2, l = 7, dd = 96;
        float[] x = rounded(t, randn(10, b * l * dd)), sh = rounded(t, randn(11, b * dd)), sc = rounded(t, randn(12, b * dd));
        float[] y = rounded(t, randn(13, b * l * dd));
        Tensor dx = dev(ops, t, x, b, l, dd), dsh = dev(ops, t, sh, b, dd), dsc = dev(ops, t, sc, b, dd), dy = dev(ops, t, y, b, l, dd);
        assertClose(host(ops, ops.modulate(dx, dsh, dsc)), HostRef.modulate(x, sh, sc, b, l, dd), tol(t), "modulate");
        float[] ref = new float[x.length];
        for (int bi = 0; bi < b; bi++)
            for (int i = 0; i < l * dd; i++) ref[bi * l * dd + i] = x[bi * l * dd + i] + sc[bi * dd + i % dd] * y[bi * l * dd + i];
        assertClose(host(ops, ops.gatedResidual(dx, dsc, dy)), ref, tol(t), "gatedResidual");
    }

    // ------------------------------------------------------------------ normalisation and position

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void norms(DType t) {
        int rows = 13, d = 3072;
        float[] x = rounded(t, randn(14, rows * d)), w = rounded(t, randn(15, d)), bb = rounded(t, randn(16, d));
        for (int i = 0; i < x.length; i++) x[i] = rounded(t, new float[] {x[i] * 2 + 0.5f})[0];
        Tensor dx = dev(ops, t, x, 1, rows, d), dw = dev(ops, t, w, d), db = dev(ops, t, bb, d);
        assertClose(host(ops, ops.layerNorm(dx, dw, db, 1e-6f)), HostRef.layerNorm(x, rows, d, w, bb, 1e-6), tol(t), "layerNorm affine");
        assertClose(host(ops, ops.layerNorm(dx, null, null, 1e-6f)), HostRef.layerNorm(x, rows, d, null, null, 1e-6), tol(t), "layerNorm");
        assertClose(host(ops, ops.rmsNorm(dx, dw, 1e-6f)), HostRef.rmsNorm(x, rows, d, w, 1e-6), tol(t), "rmsNorm");
        float[] sh = rounded(t, randn(17, d)), sc = rounded(t, randn(18, d));
        float[] ref = HostRef.modulate(HostRef.layerNorm(x, rows, d, null, null, 1e-6), sh, sc, 1, rows, d);
        assertClose(host(ops, ops.layerNormModulate(dx, dev(ops, t, sh, 1, d), dev(ops, t, sc, 1, d), 1e-6f)), ref, 2 * tol(t),
                "layerNormModulate");
        // one warp per row (D = 1024: 4 or 8 vectors per lane), per-batch modulation, rows not a multiple of 8 warps
        int b2 = 2, l2 = 11, d2 = 1024;
        float[] x2 = rounded(t, randn(19, b2 * l2 * d2)), sh2 = rounded(t, randn(20, b2 * d2)), sc2 = rounded(t, randn(21, b2 * d2));
        for (int i = 0; i < x2.length; i++) x2[i] = rounded(t, new float[] {x2[i] * 3 - 1.5f})[0];
        float[] ref2 = HostRef.modulate(HostRef.layerNorm(x2, b2 * l2, d2, null, null, 1e-6), sh2, sc2, b2, l2, d2);
        assertClose(host(ops, ops.layerNormModulate(dev(ops, t, x2, b2, l2, d2), dev(ops, t, sh2, b2, d2), dev(ops, t, sc2, b2, d2), 1e-6f)),
                ref2, 2 * tol(t), "layerNormModulate B=2 D=1024");
        float[] w2 = rounded(t, randn(22, d2));
        assertClose(host(ops, ops.layerNorm(dev(ops, t, x2, b2, l2, d2), dev(ops, t, w2, d2), null, 1e-5f)),
                HostRef.layerNorm(x2, b2 * l2, d2, w2, null, 1e-5), tol(t), "layerNorm D=1024 weight only");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void ropeAndRmsNormRope(DType t) {
        int b = 2, l = 9, h = 3, d = 128;
        float[] x = rounded(t, randn(19, b * l * h * d)), w = rounded(t, randn(20, d));
        float[] cos = new float[b * l * d / 2], sin = new float[b * l * d / 2];
        for (int i = 0; i < cos.length; i++) { double a = 0.37 * i; cos[i] = (float) Math.cos(a); sin[i] = (float) Math.sin(a); }
        Tensor dx = dev(ops, t, x, b, l, h, d);
        Tensor c2 = dev(ops, DType.F32, java.util.Arrays.copyOf(cos, l * d / 2), l, d / 2);
        Tensor s2 = dev(ops, DType.F32, java.util.Arrays.copyOf(sin, l * d / 2), l, d / 2);
        Tensor c3 = dev(ops, DType.F32, cos, b, l, d / 2), s3 = dev(ops, DType.F32, sin, b, l, d / 2);
        assertClose(host(ops, ops.rope(dx, c2, s2)), HostRef.rope(x, cos, sin, b, l, h, d, false), tol(t), "rope [L, d/2]");
        assertClose(host(ops, ops.rope(dx, c3, s3)), HostRef.rope(x, cos, sin, b, l, h, d, true), tol(t), "rope [B, L, d/2]");
        float[] n = HostRef.rmsNorm(x, b * l * h, d, w, 1e-6);
        assertClose(host(ops, ops.rmsNormRope(dx, dev(ops, t, w, d), 1e-6f, c3, s3)), HostRef.rope(n, cos, sin, b, l, h, d, true),
                2 * tol(t), "rmsNormRope");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void groupNorm(DType t) {
        int n = 2, c = 64, s = 5 * 7;
        float[] x = rounded(t, randn(21, n * c * s)), w = rounded(t, randn(22, c)), bb = rounded(t, randn(23, c));
        Tensor dx = dev(ops, t, x, n, c, 5, 7);
        assertClose(host(ops, ops.groupNorm(dx, 32, dev(ops, t, w, c), dev(ops, t, bb, c), 1e-6f)),
                HostRef.groupNorm(x, n, c, s, 32, w, bb, 1e-6), tol(t), "groupNorm");
    }

    /**
     * F32 side vectors (weights, biases, shifts, scales, gates) next to BF16/F16 activations take the "_sf_" vector
     * kernels (Wan keeps its modulation in F32): D = 1536 (one warp per row) and D = 5120 (one block per row), B = 2.
     * Also Wan's RMS norm across all heads followed by per-head RoPE.
     */
    @ParameterizedTest @EnumSource(value = DType.class, names = {"BF16", "F16"})
    void f32SideVectorsAndNormAcrossHeads(DType t) {
        for (int d : new int[] {1536, 5120}) {
            int b = 2, l = 5;
            float[] x = rounded(t, randn(90, b * l * d)), y = rounded(t, randn(91, b * l * d));
            float[] w = randn(92, d), bb = randn(93, d), sh = randn(94, b * d), sc = randn(95, b * d);
            Tensor dx = dev(ops, t, x, b, l, d), dy = dev(ops, t, y, b, l, d);
            Tensor dw = dev(ops, DType.F32, w, d), db = dev(ops, DType.F32, bb, d);
            Tensor dsh = dev(ops, DType.F32, sh, b, d), dsc = dev(ops, DType.F32, sc, b, d);
            assertClose(host(ops, ops.layerNorm(dx, dw, db, 1e-6f)), HostRef.layerNorm(x, b * l, d, w, bb, 1e-6), tol(t),
                    "layerNorm f32 affine D=" + d);
            assertClose(host(ops, ops.layerNormModulate(dx, dsh, dsc, 1e-6f)),
                    HostRef.modulate(HostRef.layerNorm(x, b * l, d, null, null, 1e-6), sh, sc, b, l, d), 2 * tol(t),
                    "layerNormModulate f32 shift/scale D=" + d);
            assertClose(host(ops, ops.modulate(dx, dsh, dsc)), HostRef.modulate(x, sh, sc, b, l, d), tol(t), "modulate f32 D=" + d);
            float[] gr = new float[x.length];
            for (int i = 0; i < x.length; i++) gr[i] = (float) (x[i] + (double) sh[(i / (l * d)) * d + i % d] * y[i]);
            assertClose(host(ops, ops.gatedResidual(dx, dsh, dy)), gr, tol(t), "gatedResidual f32 gate D=" + d);

            int hd = 128, h = d / hd;
            float[] wq = rounded(t, randn(96, d));
            float[] cos = new float[l * hd / 2], sin = new float[l * hd / 2];
            for (int i = 0; i < cos.length; i++) { double a = 0.29 * i; cos[i] = (float) Math.cos(a); sin[i] = (float) Math.sin(a); }
            float[] n = rounded(t, HostRef.rmsNorm(x, b * l, d, wq, 1e-6));
            float[] want = HostRef.rope(n, cos, sin, b, l, h, hd, false);
            Tensor got = ops.rmsNormAcrossHeadsRope(dev(ops, t, x, b, l, h, hd), dev(ops, t, wq, d), 1e-6f,
                    dev(ops, DType.F32, cos, l, hd / 2), dev(ops, DType.F32, sin, l, hd / 2));
            assertClose(host(ops, got), want, tol(t), "rmsNormAcrossHeadsRope D=" + d);
            // an F32 weight takes the generic one-block-per-row kernel: same numbers
            Tensor generic = ops.rmsNormAcrossHeadsRope(dev(ops, t, x, b, l, h, hd), dev(ops, DType.F32, wq, d), 1e-6f,
                    dev(ops, DType.F32, cos, l, hd / 2), dev(ops, DType.F32, sin, l, hd / 2));
            assertClose(host(ops, generic), want, tol(t), "rmsNormAcrossHeadsRope generic kernel D=" + d);
            assertClose(host(ops, ops.rmsNorm(dx, dev(ops, t, wq, d), 1e-6f)), HostRef.rmsNorm(x, b * l, d, wq, 1e-6), tol(t),
                    "rmsNorm over long rows D=" + d);
        }
    }

    /** Sizes that are not whole 16-byte vectors, and mixed dtypes, take the generic kernels: same results. */
    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void genericKernelPaths(DType t) {
        int b = 2, l = 3, d = 100;
        float[] x = rounded(t, randn(80, b * l * d)), w = rounded(t, randn(81, d)), sh = rounded(t, randn(82, b * d)),
                sc = rounded(t, randn(83, b * d)), y = rounded(t, randn(84, b * l * d));
        Tensor dx = dev(ops, t, x, b, l, d), dy = dev(ops, t, y, b, l, d);
        // shift in f32 forces the mixed-dtype kernels
        Tensor dsh = dev(ops, DType.F32, sh, b, d), dsc = dev(ops, t, sc, b, d);
        assertClose(host(ops, ops.layerNorm(dx, dev(ops, t, w, d), null, 1e-5f)), HostRef.layerNorm(x, b * l, d, w, null, 1e-5),
                tol(t), "layerNorm d=100");
        assertClose(host(ops, ops.rmsNorm(dx, dev(ops, t, w, d), 1e-5f)), HostRef.rmsNorm(x, b * l, d, w, 1e-5), tol(t), "rmsNorm d=100");
        assertClose(host(ops, ops.modulate(dx, dsh, dsc)), HostRef.modulate(x, sh, sc, b, l, d), tol(t), "modulate mixed");
        assertClose(host(ops, ops.layerNormModulate(dx, dsh, dsc, 1e-5f)),
                HostRef.modulate(HostRef.layerNorm(x, b * l, d, null, null, 1e-5), sh, sc, b, l, d), 2 * tol(t), "layerNormModulate mixed");
        float[] gr = new float[x.length], si = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            gr[i] = x[i] + sh[(i / (l * d)) * d + i % d] * y[i];
            si[i] = (float) (x[i] / (1 + Math.exp(-x[i])));
        }
        assertClose(host(ops, ops.gatedResidual(dx, dsh, dy)), gr, tol(t), "gatedResidual mixed");
        Tensor odd = ops.slice(ops.reshape(dx, b * l * d), 0, 1, b * l * d);   // 599 elements, offset by one
        float[] oddRef = java.util.Arrays.copyOfRange(si, 1, si.length);
        assertClose(host(ops, ops.silu(odd)), oddRef, tol(t), "silu on 599 elements");
        // rmsNorm on head vectors with an f32 weight (mixed) goes generic too
        float[] q = rounded(t, randn(85, 2 * 64)), wq = randn(86, 64);
        assertClose(host(ops, ops.rmsNorm(dev(ops, t, q, 2, 64), dev(ops, DType.F32, wq, 64), 1e-6f)),
                HostRef.rmsNorm(q, 2, 64, wq, 1e-6), tol(t), "rmsNorm f32 weight");
    }

    // ------------------------------------------------------------------ linear algebra

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void linearAndGeluEpilogues(DType t) {
        int m = 77, k = 192, n = 320;
        float[] x = rounded(t, randn(24, m * k)), w = rounded(t, randn(25, n * k)), b = rounded(t, randn(26, n));
        for (int i = 0; i < w.length; i++) w[i] = rounded(t, new float[] {w[i] * 0.1f})[0];
        Tensor dx = dev(ops, t, x, 1, m, k), dw = dev(ops, t, w, n, k), db = dev(ops, t, b, n);
        float[] ref = HostRef.linear(x, w, b, m, k, n);
        Tensor y = ops.linear(dx, dw, db);
        assertEquals(Shape.of(1, m, n), y.shape());
        assertClose(host(ops, y), ref, tol(t), "linear+bias");
        assertClose(host(ops, ops.linear(dx, dw, null)), HostRef.linear(x, w, null, m, k, n), tol(t), "linear");
        float[] gt = new float[ref.length], ge = new float[ref.length];
        for (int i = 0; i < ref.length; i++) { gt[i] = (float) HostRef.gelu(ref[i], true); ge[i] = (float) HostRef.gelu(ref[i], false); }
        float[] gotT = host(ops, ops.linearGelu(dx, dw, db, true));
        assertClose(gotT, gt, tol(t), "linearGelu tanh (cuBLASLt GELU_BIAS epilogue)");
        assertClose(host(ops, ops.linearGelu(dx, dw, db, false)), ge, tol(t), "linearGelu erf");
        if (t == DType.F32) {
            // the epilogue must be the tanh form: it is measurably farther from the erf form
            assertTrue(HostRef.relL2(gotT, ge) > 10 * HostRef.relL2(gotT, gt),
                    "GELU_BIAS epilogue is closer to erf GELU than to tanh GELU");
        }
    }

    @Test void linearConvertsWeightDtypes() {
        int m = 33, k = 64, n = 48;
        float[] x = rounded(DType.BF16, randn(27, m * k)), w = randn(28, n * k);
        Tensor dx = dev(ops, DType.BF16, x, m, k);
        float[] wBf = rounded(DType.BF16, w);
        assertClose(host(ops, ops.linear(dx, dev(ops, DType.F32, w, n, k), null)), HostRef.linear(x, wBf, null, m, k, n), 1e-2, "f32 weight");
        float[] w8 = rounded(DType.F8_E4M3, w);
        assertClose(host(ops, ops.linear(dx, dev(ops, DType.F8_E4M3, w, n, k), null)), HostRef.linear(x, w8, null, m, k, n), 1e-2, "fp8 weight");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void batchedMatmulBroadcasts(DType t) {
        int m = 5, k = 24, n = 7;
        float[] a = rounded(t, randn(29, 2 * 3 * m * k)), b = rounded(t, randn(30, 3 * k * n));
        Tensor da = dev(ops, t, a, 2, 3, m, k), db = dev(ops, t, b, 3, k, n);
        Tensor y = ops.matmul(da, db);
        assertEquals(Shape.of(2, 3, m, n), y.shape());
        float[] ref = new float[2 * 3 * m * n];
        for (int p = 0; p < 2; p++)
            for (int q = 0; q < 3; q++)
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++) {
                        double s = 0;
                        for (int u = 0; u < k; u++) s += (double) a[((p * 3 + q) * m + i) * k + u] * b[(q * k + u) * n + j];
                        ref[((p * 3 + q) * m + i) * n + j] = (float) s;
                    }
        assertClose(host(ops, y), ref, tol(t), "matmul [2,3,m,k]·[3,k,n]");
    }

    // ------------------------------------------------------------------ attention

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F16"})
    void attentionAllKernels(DType t) {
        for (int d : new int[] {64, 128}) {
            int b = 2, lq = 77, lk = 131, h = 3;
            float[] q = rounded(t, randn(31 + d, b * lq * h * d)), k = rounded(t, randn(32 + d, b * lk * h * d)),
                    v = rounded(t, randn(33 + d, b * lk * h * d));
            Tensor dq = dev(ops, t, q, b, lq, h, d), dk = dev(ops, t, k, b, lk, h, d), dv = dev(ops, t, v, b, lk, h, d);
            double scale = 1 / Math.sqrt(d);
            float[] ref = HostRef.attention(q, k, v, null, b, lq, lk, h, d, d, scale);
            for (AttentionKernel kernel : AttentionKernel.values()) {
                if (kernel.check(dq, dk, dv, null) != null) continue;
                ops.setAttentionKernel(kernel);
                for (int warps : kernel == AttentionKernel.FLASH_MMA ? new int[] {4, 8} : new int[] {4}) {
                    ops.setFlashWarps(warps);
                    assertClose(host(ops, ops.attention(dq, dk, dv, null, (float) scale)), ref, tol(t),
                            kernel + " (" + warps + " warps) d=" + d + " " + t);
                }
                ops.setFlashWarps(4);
            }
            ops.setAttentionKernel(null);
            AttentionKernel auto = ops.attentionKernelFor(dq, dk, dv, null);
            AttentionKernel fast = AttentionKernel.CUDNN_SDPA.check(dq, dk, dv, null) == null ? AttentionKernel.CUDNN_SDPA
                    : AttentionKernel.FLASH_MMA;
            assertEquals(t == DType.F32 ? AttentionKernel.REFERENCE : fast, auto);
        }
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void attentionBiasAndFullyMaskedRows(DType t) {
        int b = 1, lq = 70, lk = 90, h = 2, d = 64;
        float[] q = rounded(t, randn(40, b * lq * h * d)), k = rounded(t, randn(41, b * lk * h * d)), v = rounded(t, randn(42, b * lk * h * d));
        // bias [1, 1, Lq, Lk] broadcast over heads; row 3 fully masked; keys 80.. masked everywhere
        float[] bias = randn(43, lq * lk);
        for (int j = 0; j < lk; j++) bias[3 * lk + j] = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < lq; i++) for (int j = 80; j < lk; j++) bias[i * lk + j] = Float.NEGATIVE_INFINITY;
        float[] full = new float[b * h * lq * lk];
        for (int hi = 0; hi < h; hi++) System.arraycopy(bias, 0, full, hi * lq * lk, lq * lk);
        float[] ref = HostRef.attention(q, k, v, full, b, lq, lk, h, d, d, 0.125);
        Tensor dq = dev(ops, t, q, b, lq, h, d), dk = dev(ops, t, k, b, lk, h, d), dv = dev(ops, t, v, b, lk, h, d);
        Tensor dbias = dev(ops, DType.F32, bias, 1, 1, lq, lk);
        for (AttentionKernel kernel : AttentionKernel.values()) {
            if (kernel.check(dq, dk, dv, dbias) != null) continue;
            ops.setAttentionKernel(kernel);
            for (int warps : kernel == AttentionKernel.FLASH_MMA ? new int[] {4, 8} : new int[] {4}) {
                ops.setFlashWarps(warps);
                float[] got = host(ops, ops.attention(dq, dk, dv, dbias, 0.125f));
                assertClose(got, ref, tol(t), kernel + " (" + warps + " warps) with bias");
                for (int hi = 0; hi < h; hi++)
                    for (int j = 0; j < d; j++) assertEquals(0f, got[(3 * h + hi) * d + j], kernel + ": fully masked row must be 0");
            }
            ops.setFlashWarps(4);
        }
        ops.setAttentionKernel(null);
    }

    // ------------------------------------------------------------------ layout

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16", "F8_E4M3", "I64"})
    void layoutOps(DType t) {
        float[] x = rounded(t, randn(50, 2 * 3 * 4 * 5));
        for (int i = 0; i < x.length; i++) x[i] = rounded(t, new float[] {Math.round(x[i] * 8)})[0];
        Tensor d = dev(ops, t, x, 2, 3, 4, 5);
        // permute (0, 2, 3, 1)
        float[] p = host(ops, ops.permute(d, 0, 2, 3, 1));
        float[] pref = new float[x.length];
        for (int a = 0; a < 2; a++) for (int b = 0; b < 3; b++) for (int c = 0; c < 4; c++) for (int e = 0; e < 5; e++)
            pref[((a * 4 + c) * 5 + e) * 3 + b] = x[((a * 3 + b) * 4 + c) * 5 + e];
        assertArrayEquals(pref, p, "permute");
        // slice dim 2 [1, 3)
        float[] s = host(ops, ops.slice(d, 2, 1, 3));
        float[] sref = new float[2 * 3 * 2 * 5];
        for (int a = 0; a < 6; a++) for (int c = 0; c < 2; c++) for (int e = 0; e < 5; e++) sref[(a * 2 + c) * 5 + e] = x[(a * 4 + c + 1) * 5 + e];
        assertArrayEquals(sref, s, "slice");
        // concat along dim 1 with itself sliced
        Tensor part = ops.slice(d, 1, 0, 1);
        Tensor cat = ops.concat(1, d, part);
        assertEquals(Shape.of(2, 4, 4, 5), cat.shape());
        float[] c = host(ops, cat);
        for (int a = 0; a < 2; a++) {
            for (int i = 0; i < 60; i++) assertEquals(x[a * 60 + i], c[a * 80 + i], "concat body");
            for (int i = 0; i < 20; i++) assertEquals(x[a * 60 + i], c[a * 80 + 60 + i], "concat tail");
        }
        // pad last dim (1, 2), crop dim 2 by (-1, 0)
        Tensor pd = ops.pad(d, new long[] {1, 2, -1, 0}, 7f);
        assertEquals(Shape.of(2, 3, 3, 8), pd.shape());
        float[] pv = host(ops, pd);
        float seven = rounded(t, new float[] {7f})[0];
        for (int a = 0; a < 6; a++) for (int r = 0; r < 3; r++) for (int j = 0; j < 8; j++) {
            float e = j < 1 || j > 5 ? seven : x[(a * 4 + r + 1) * 5 + j - 1];
            assertEquals(e, pv[(a * 3 + r) * 8 + j], "pad");
        }
        // nearest upsampling ×2 of the last two dims
        float[] u = host(ops, ops.upsampleNearest2d(d, 2));
        for (int a = 0; a < 6; a++) for (int y = 0; y < 8; y++) for (int z = 0; z < 10; z++)
            assertEquals(x[(a * 4 + y / 2) * 5 + z / 2], u[(a * 8 + y) * 10 + z], "upsample");
        // copy and reshape
        assertArrayEquals(x, host(ops, ops.reshape(ops.copy(d), 6, 20)), "copy");
    }

    // ------------------------------------------------------------------ convolution

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void conv2d(DType t) {
        int n = 2, c = 8, hh = 11, ww = 9, o = 6;
        float[] x = rounded(t, randn(60, n * c * hh * ww)), w = rounded(t, randn(61, o * (c / 2) * 9)), b = rounded(t, randn(62, o));
        Tensor dx = dev(ops, t, x, n, c, hh, ww);
        Tensor y = ops.conv2d(dx, dev(ops, t, w, o, c / 2, 3, 3), dev(ops, t, b, o), new int[] {2, 2}, new int[] {1, 1}, 2);
        assertEquals(Shape.of(n, o, 6, 5), y.shape());
        assertClose(host(ops, y), HostRef.conv2d(x, w, b, n, c, hh, ww, o, 3, 3, 2, 2, 1, 1, 2), tol(t), "conv2d 3x3 s2 p1 g2");
        float[] w1 = rounded(t, randn(63, o * c));
        Tensor y1 = ops.conv2d(dx, dev(ops, t, w1, o, c, 1, 1), null, new int[] {1, 1}, new int[] {0, 0}, 1);
        assertClose(host(ops, y1), HostRef.conv2d(x, w1, null, n, c, hh, ww, o, 1, 1, 1, 1, 0, 0, 1), tol(t), "conv2d 1x1");
    }

    @ParameterizedTest @EnumSource(value = DType.class, names = {"F32", "BF16"})
    void conv3d(DType t) {
        int n = 1, c = 4, tt = 5, hh = 6, ww = 7, o = 3;
        float[] x = rounded(t, randn(64, n * c * tt * hh * ww)), w = rounded(t, randn(65, o * c * 3 * 3 * 3)), b = rounded(t, randn(66, o));
        Tensor y = ops.conv3d(dev(ops, t, x, n, c, tt, hh, ww), dev(ops, t, w, o, c, 3, 3, 3), dev(ops, t, b, o),
                new int[] {1, 2, 2}, new int[] {1, 1, 1});
        assertEquals(Shape.of(n, o, 5, 3, 4), y.shape());
        assertClose(host(ops, y), HostRef.conv3d(x, w, b, n, c, tt, hh, ww, o, 3, 3, 3, new int[] {1, 2, 2}, new int[] {1, 1, 1}),
                tol(t), "conv3d");
    }

    // ------------------------------------------------------------------ errors

    @Test void shapeErrorsNameTheArgument() {
        Tensor x = ops.zeros(DType.BF16, Shape.of(4, 8));
        Tensor w = ops.zeros(DType.BF16, Shape.of(16, 9));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ops.linear(x, w, null));
        assertTrue(e.getMessage().contains("w must have shape [out, 8]"), e.getMessage());
        Tensor hostT = Tensor.of(new float[] {1, 2}, 2);
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> ops.add(hostT, hostT));
        assertTrue(e2.getMessage().contains("upload"), e2.getMessage());
    }

    @Test void steadyStateAllocatesNothingFromTheDriver() {
        float[] x = randn(70, 64 * 256);
        Tensor dx = dev(ops, DType.BF16, x, 64, 256);
        Tensor w = dev(ops, DType.BF16, randn(71, 256 * 256), 256, 256);
        Runnable step = () -> {
            try (Scope s = Scope.open()) {
                Tensor h = ops.linearGelu(dx, w, null, true);
                ops.layerNorm(ops.add(h, dx), null, null, 1e-6f);
            }
        };
        step.run();
        long before = ops.allocator().driverAllocations();
        for (int i = 0; i < 5; i++) step.run();
        assertEquals(before, ops.allocator().driverAllocations(), "steady-state steps must reuse pooled blocks");
    }
}
