package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.dit4j.core.testing.TensorAsserts.assertClose;
import static org.dit4j.core.testing.TensorAsserts.assertExact;
import static org.dit4j.core.testing.TensorAsserts.sameFloat;
import static org.dit4j.core.testing.TestTensors.randn;
import static org.dit4j.core.testing.TestTensors.uniform;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Every {@link Ops} method against {@link ReferenceOps} on seeded random data. A backend's test extends this and
 * returns its backend from {@link #ops()}; a backend that computes in lower precision raises {@link #tolerance}.
 *
 * <p>Inputs are built on the host, moved with {@code ops.upload}, results read back with {@code ops.toHost}. The
 * reference always sees exactly the (rounded) values the backend received. Layout ops and casts must be bit-exact;
 * arithmetic must be within {@code tolerance(activation dtype)} in relative L2 error (and a max-abs bound).
 */
public abstract class OpsConformance {
    protected static final DType F32 = DType.F32, BF16 = DType.BF16, F16 = DType.F16;

    /** The backend under test (created once per test class; the test does not close it). */
    protected abstract Ops ops();

    /**
     * Allowed relative L2 error of a result whose activation (first argument) has dtype {@code activation}. The
     * defaults cover computing in f32 and rounding the output once: f32 1e-5, f16 1e-3, bf16 6e-3.
     */
    protected double tolerance(DType activation) {
        return switch (activation) {
            case F32 -> 1e-5;
            case F16 -> 1e-3;
            case BF16 -> 6e-3;
            default -> throw new IllegalArgumentException("no tolerance for activation dtype " + activation);
        };
    }

    /**
     * Per-op hook over {@link #tolerance(DType)}: {@code op} is the Ops method checked (the first word of the check's
     * description, e.g. "attention", "linear", "layerNormModulate"). Override to loosen one op only.
     */
    protected double tolerance(String op, DType activation) {
        return tolerance(activation);
    }

    private Scope scope;

    @BeforeEach void openScope() { scope = Scope.open(); }

    @AfterEach void closeScope() { scope.close(); }

    // ------------------------------------------------------------------ helpers

    protected Tensor up(Tensor host) { return ops().upload(host); }

    protected Tensor down(Tensor x) { return ops().toHost(x); }

    private static DoubleTensor ref(Tensor host) { return host == null ? null : DoubleTensor.of(host); }

    /** Checks dtype and values of a backend result against the reference. */
    protected void check(String what, Tensor result, DType dtype, DoubleTensor expected) {
        assertEquals(dtype, result.dtype(), what + ": dtype");
        String op = what.split(" ", 2)[0];
        assertClose(what + " [" + ops().name() + "]", down(result), expected, tolerance(op, dtype));
    }

    protected void checkExact(String what, Tensor result, DType dtype, DoubleTensor expected) {
        assertEquals(dtype, result.dtype(), what + ": dtype");
        assertExact(what + " [" + ops().name() + "]", down(result), expected);
    }

    // ------------------------------------------------------------------ memory

    @Test void zerosAndEmptyHaveShapeAndDtype() {
        for (DType t : DType.values()) {
            Tensor z = ops().zeros(t, Shape.of(3, 5));
            assertEquals(Shape.of(3, 5), z.shape());
            assertEquals(t, z.dtype());
            Tensor h = down(z);
            for (int i = 0; i < 15; i++) assertEquals(0f, h.getFloat(i), "zeros " + t + " element " + i);
            Tensor e = ops().empty(t, Shape.of(2, 7));
            assertEquals(Shape.of(2, 7), e.shape());
            assertEquals(t, e.dtype());
        }
    }

    @Test void uploadAndToHostRoundTripEveryDtypeBitExactly() {
        Random rnd = new Random(1);
        for (DType t : DType.values()) {
            Tensor host = Tensor.zeros(t, 3, 37);
            byte[] bytes = new byte[(int) host.byteSize()];
            rnd.nextBytes(bytes);
            if (t == DType.BOOL) for (int i = 0; i < bytes.length; i++) bytes[i] &= 1;
            java.lang.foreign.MemorySegment.copy(bytes, 0, host.segment(), java.lang.foreign.ValueLayout.JAVA_BYTE, 0, bytes.length);
            Tensor back = down(up(host));
            assertEquals(t, back.dtype());
            assertEquals(host.shape(), back.shape());
            assertEquals(-1L, host.segment().mismatch(back.segment()), "upload/toHost changed bytes of " + t);
            Tensor copied = down(ops().copy(up(host)));
            assertEquals(-1L, host.segment().mismatch(copied.segment()), "copy changed bytes of " + t);
        }
    }

    // ------------------------------------------------------------------ layout

    /** Values that exercise rounding: ties, overflow of every narrow type, subnormals, NaN, infinities, signed zero. */
    protected static float[] castProbeValues() {
        float[] special = {0f, -0f, 1f, -1f, 1f + 0x1p-8f, 1f + 3 * 0x1p-8f, 1f + 0x1p-11f, 1f + 3 * 0x1p-11f,
                0.1f, -0.3f, 3.14159f, 448f, 460f, 464f, 465f, -500f, 57344f, 60000f, 61440f, 65504f, 65520f, 70000f,
                1e6f, -1e20f, Float.MAX_VALUE, 0x1p-6f, 0x1p-9f, 0x1p-10f, 3 * 0x1p-10f, 0x1p-14f, 0x1p-16f, 0x1p-24f,
                0x1p-25f, 1e-30f, 0x1p-149f, Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY};
        Random rnd = new Random(2);
        float[] v = new float[special.length + 200];
        System.arraycopy(special, 0, v, 0, special.length);
        for (int i = special.length; i < v.length; i++)
            v[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(9) - 4));
        return v;
    }

    @Test void castRoundsLikePyTorchBetweenAllFloatTypes() {
        DType[] floats = {F32, BF16, F16, DType.F8_E4M3, DType.F8_E5M2};
        float[] values = castProbeValues();
        for (DType from : floats) {
            Tensor src = Tensor.of(from, values, values.length);
            for (DType to : floats) {
                Tensor got = ops().cast(up(src), to);
                assertEquals(to, got.dtype(), "cast " + from + " -> " + to + ": dtype");
                Tensor h = down(got);
                for (int i = 0; i < values.length; i++) {
                    float want = ReferenceOps.castValue(src.getFloat(i), to);
                    if (!sameFloat(h.getFloat(i), want))
                        fail("cast " + from + " -> " + to + " of " + src.getFloat(i) + " (input " + values[i] + ") gave "
                                + h.getFloat(i) + ", PyTorch gives " + want);
                }
            }
        }
    }

    @Test void permuteMovesElementsExactly() {
        Random rnd = new Random(3);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor x = randn(rnd, t, 2, 3, 4, 5);
            for (int[] perm : new int[][] {{0, 2, 1, 3}, {3, 1, 0, 2}, {0, 1, 2, 3}, {1, 0, 3, 2}, {0, 1, 3, 2}}) {
                checkExact("permute " + java.util.Arrays.toString(perm) + " " + t, ops().permute(up(x), perm), t,
                        ReferenceOps.permute(ref(x), perm));
            }
        }
        Tensor m = randn(rnd, F32, 37, 3);
        checkExact("transpose 37x3", ops().permute(up(m), 1, 0), F32, ReferenceOps.permute(ref(m), 1, 0));
    }

    @Test void sliceCopiesTheRange() {
        Random rnd = new Random(4);
        Tensor x = randn(rnd, BF16, 3, 7, 5);
        checkExact("slice dim 0", ops().slice(up(x), 0, 1, 3), BF16, ReferenceOps.slice(ref(x), 0, 1, 3));
        checkExact("slice dim 1", ops().slice(up(x), 1, 2, 7), BF16, ReferenceOps.slice(ref(x), 1, 2, 7));
        checkExact("slice dim 2", ops().slice(up(x), 2, 0, 1), BF16, ReferenceOps.slice(ref(x), 2, 0, 1));
        checkExact("slice dim -1", ops().slice(up(x), -1, 3, 5), BF16, ReferenceOps.slice(ref(x), 2, 3, 5));
        checkExact("empty slice", ops().slice(up(x), 1, 4, 4), BF16, ReferenceOps.slice(ref(x), 1, 4, 4));
    }

    @Test void concatJoinsAlongAnyDimInTheFirstDtype() {
        Random rnd = new Random(5);
        Tensor a = randn(rnd, F32, 2, 3, 4), b = randn(rnd, F32, 2, 5, 4), c = randn(rnd, F32, 2, 1, 4);
        checkExact("concat dim 1", ops().concat(1, up(a), up(b), up(c)), F32,
                ReferenceOps.concat(1, ref(a), ref(b), ref(c)));
        Tensor d = randn(rnd, F32, 3, 3, 4);
        checkExact("concat dim 0", ops().concat(0, up(a), up(d)), F32, ReferenceOps.concat(0, ref(a), ref(d)));
        Tensor e = randn(rnd, F32, 2, 3, 7);
        checkExact("concat dim -1", ops().concat(-1, up(a), up(e)), F32, ReferenceOps.concat(2, ref(a), ref(e)));
        Tensor f = randn(rnd, BF16, 2, 3, 2);
        checkExact("concat bf16 + f32 -> bf16", ops().concat(2, up(f), up(a)), BF16, ReferenceOps.concat(2, ref(f), ref(a)));
    }

    @Test void padPadsAndCropsLikeTorch() {
        Random rnd = new Random(6);
        Tensor x = randn(rnd, F32, 2, 3, 4, 5);
        long[][] cases = {{1, 2}, {0, 0, 2, 1}, {1, 1, 1, 1, 1, 1}, {-1, 2, 0, -2}, {2, -3, -1, 1, 0, 1, 1, 0}, {-2, -3}};
        for (long[] p : cases)
            checkExact("pad " + java.util.Arrays.toString(p), ops().pad(up(x), p, 0.5f), F32,
                    ReferenceOps.pad(ref(x), p, 0.5));
        Tensor h = randn(rnd, BF16, 3, 4);
        checkExact("pad bf16 with -inf", ops().pad(up(h), new long[] {1, 0, 0, 2}, Float.NEGATIVE_INFINITY), BF16,
                ReferenceOps.pad(ref(h), new long[] {1, 0, 0, 2}, Double.NEGATIVE_INFINITY));
    }

    @Test void upsampleNearestRepeatsPixels() {
        Random rnd = new Random(7);
        Tensor x = randn(rnd, F32, 2, 3, 4, 5);
        checkExact("upsample x2", ops().upsampleNearest2d(up(x), 2), F32, ReferenceOps.upsampleNearest2d(ref(x), 2));
        Tensor v = randn(rnd, BF16, 1, 2, 3, 3, 2);
        checkExact("upsample 5-D x3", ops().upsampleNearest2d(up(v), 3), BF16, ReferenceOps.upsampleNearest2d(ref(v), 3));
    }

    @Test void reshapeIsAView() {
        Tensor x = up(Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
        Tensor r = ops().reshape(x, 3, -1);
        assertEquals(Shape.of(3, 2), r.shape());
        checkExact("reshape", r, F32, new DoubleTensor(Shape.of(3, 2), new double[] {1, 2, 3, 4, 5, 6}));
    }

    // ------------------------------------------------------------------ linear algebra

    @Test void linearMatchesReference() {
        Random rnd = new Random(10);
        int[][] shapes = {{3, 37, 29}, {1, 64, 7}, {67, 129, 131}, {2, 1, 5}, {13, 300, 1}, {6, 16, 16}, {5, 8, 40}};
        for (int[] s : shapes) {
            Tensor x = randn(rnd, F32, s[0], s[1]), w = randn(rnd, F32, 0.1, s[2], s[1]), b = randn(rnd, F32, s[2]);
            check("linear " + java.util.Arrays.toString(s), ops().linear(up(x), up(w), up(b)), F32,
                    ReferenceOps.linear(ref(x), ref(w), ref(b)));
            check("linear no bias " + java.util.Arrays.toString(s), ops().linear(up(x), up(w), null), F32,
                    ReferenceOps.linear(ref(x), ref(w), null));
        }
        Tensor x3 = randn(rnd, F32, 2, 5, 24), w3 = randn(rnd, F32, 0.2, 10, 24);
        check("linear rank-3 x", ops().linear(up(x3), up(w3), null), F32, ReferenceOps.linear(ref(x3), ref(w3), null));
    }

    @Test void linearWithNarrowActivationsAndWeights() {
        Random rnd = new Random(11);
        for (DType act : new DType[] {BF16, F16}) {
            Tensor x = randn(rnd, act, 9, 70), w = randn(rnd, act, 0.1, 33, 70), b = randn(rnd, act, 33);
            check("linear " + act, ops().linear(up(x), up(w), up(b)), act, ReferenceOps.linear(ref(x), ref(w), ref(b)));
        }
        for (DType wt : new DType[] {DType.F8_E4M3, DType.F8_E5M2}) {
            for (DType act : new DType[] {F32, BF16}) {
                Tensor x = randn(rnd, act, 7, 48), w = randn(rnd, wt, 0.5, 21, 48), b = randn(rnd, F32, 21);
                check("linear " + act + " x " + wt, ops().linear(up(x), up(w), up(b)), act,
                        ReferenceOps.linear(ref(x), ref(w), ref(b)));
            }
        }
        Tensor x = randn(rnd, F32, 4, 32), w = randn(rnd, BF16, 0.2, 6, 32);
        check("linear f32 x bf16 weight", ops().linear(up(x), up(w), null), F32, ReferenceOps.linear(ref(x), ref(w), null));
    }

    @Test void linearOnAView() {
        Random rnd = new Random(12);
        Tensor x = randn(rnd, F32, 5, 16), w = randn(rnd, F32, 8, 16);
        Tensor xd = up(x);
        Tensor rows = xd.narrowOuter(1, 4);
        Tensor hostRows = Tensor.of(java.util.Arrays.copyOfRange(x.toFloatArray(), 16, 64), 3, 16);
        check("linear on rows 1..4", ops().linear(rows, up(w), null), F32, ReferenceOps.linear(ref(hostRows), ref(w), null));
    }

    @Test void matmulBroadcastsBatchDims() {
        Random rnd = new Random(13);
        long[][][] cases = {
                {{5, 7}, {7, 4}},
                {{2, 3, 5, 7}, {2, 3, 7, 4}},
                {{2, 1, 5, 7}, {3, 7, 4}},
                {{5, 7}, {2, 7, 4}},
                {{4, 1, 9, 33}, {1, 3, 33, 17}},
                {{70, 40}, {40, 50}}};
        for (long[][] c : cases) {
            Tensor a = randn(rnd, F32, c[0]), b = randn(rnd, F32, c[1]);
            check("matmul " + Shape.of(c[0]) + " x " + Shape.of(c[1]), ops().matmul(up(a), up(b)), F32,
                    ReferenceOps.matmul(ref(a), ref(b)));
        }
        Tensor a = randn(rnd, BF16, 3, 6, 10), b = randn(rnd, BF16, 3, 10, 4);
        check("matmul bf16", ops().matmul(up(a), up(b)), BF16, ReferenceOps.matmul(ref(a), ref(b)));
    }

    @Test void attentionWithoutBias() {
        Random rnd = new Random(20);
        int[][] cases = {{2, 5, 7, 3, 8, 6}, {1, 67, 130, 1, 64, 64}, {1, 1, 1, 1, 4, 4}, {2, 9, 3, 1, 1, 2}};
        for (int[] c : cases) {
            Tensor q = randn(rnd, F32, c[0], c[1], c[3], c[4]), k = randn(rnd, F32, c[0], c[2], c[3], c[4]);
            Tensor v = randn(rnd, F32, c[0], c[2], c[3], c[5]);
            float scale = (float) (1 / Math.sqrt(c[4]));
            check("attention " + java.util.Arrays.toString(c), ops().attention(up(q), up(k), up(v), null, scale), F32,
                    ReferenceOps.attention(ref(q), ref(k), ref(v), null, scale));
        }
    }

    @Test void attentionWithBiasAndMasks() {
        Random rnd = new Random(21);
        int b = 2, lq = 5, lk = 7, h = 3, d = 8;
        Tensor q = randn(rnd, F32, b, lq, h, d), k = randn(rnd, F32, b, lk, h, d), v = randn(rnd, F32, b, lk, h, d);
        float scale = 0.3f;
        // full bias
        Tensor full = randn(rnd, F32, b, h, lq, lk);
        check("attention full bias", ops().attention(up(q), up(k), up(v), up(full), scale), F32,
                ReferenceOps.attention(ref(q), ref(k), ref(v), ref(full), scale));
        // key padding mask [B, 1, 1, Lk] with -inf on the last keys of batch 1
        float[] mask = new float[b * lk];
        for (int j = 4; j < lk; j++) mask[lk + j] = Float.NEGATIVE_INFINITY;
        Tensor keyMask = Tensor.of(mask, b, 1, 1, lk);
        check("attention key mask", ops().attention(up(q), up(k), up(v), up(keyMask), scale), F32,
                ReferenceOps.attention(ref(q), ref(k), ref(v), ref(keyMask), scale));
        // [Lq, Lk] bias shared by batch and head, with fully masked rows 0 and 3
        float[] rows = new float[lq * lk];
        for (int i = 0; i < rows.length; i++) rows[i] = (float) rnd.nextGaussian();
        for (int j = 0; j < lk; j++) { rows[j] = Float.NEGATIVE_INFINITY; rows[3 * lk + j] = Float.NEGATIVE_INFINITY; }
        Tensor rowMask = Tensor.of(rows, lq, lk);
        Tensor out = ops().attention(up(q), up(k), up(v), up(rowMask), scale);
        DoubleTensor want = ReferenceOps.attention(ref(q), ref(k), ref(v), ref(rowMask), scale);
        check("attention fully masked rows", out, F32, want);
        Tensor host = down(out);
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                for (int c = 0; c < d; c++) {
                    assertEquals(0f, host.getFloat(((bi * lq) * h + hi) * d + c), "fully masked row 0 must be 0");
                    assertEquals(0f, host.getFloat(((bi * lq + 3) * h + hi) * d + c), "fully masked row 3 must be 0");
                }
        // per-head bias [1, H, 1, Lk] (broadcast over batch and queries)
        Tensor perHead = randn(rnd, F32, 1, h, 1, lk);
        check("attention per-head bias", ops().attention(up(q), up(k), up(v), up(perHead), scale), F32,
                ReferenceOps.attention(ref(q), ref(k), ref(v), ref(perHead), scale));
    }

    @Test void attentionInHalfPrecision() {
        Random rnd = new Random(22);
        for (DType t : new DType[] {BF16, F16}) {
            Tensor q = randn(rnd, t, 2, 33, 2, 16), k = randn(rnd, t, 2, 45, 2, 16), v = randn(rnd, t, 2, 45, 2, 16);
            Tensor bias = randn(rnd, F32, 2, 1, 33, 45);
            check("attention " + t, ops().attention(up(q), up(k), up(v), up(bias), 0.25f), t,
                    ReferenceOps.attention(ref(q), ref(k), ref(v), ref(bias), 0.25));
        }
    }

    @Test void attentionWithLseReturnsOutputAndRowLogSumExp() {
        Random rnd = new Random(23);
        int b = 2, lq = 5, lk = 7, h = 3, d = 8;
        Tensor q = randn(rnd, F32, b, lq, h, d), k = randn(rnd, F32, b, lk, h, d), v = randn(rnd, F32, b, lk, h, 6);
        float scale = 0.3f;
        PartialAttention p = ops().attentionWithLse(up(q), up(k), up(v), null, scale);
        check("attention (withLse) out", p.out(), F32, ReferenceOps.attention(ref(q), ref(k), ref(v), null, scale));
        check("attention (withLse) lse", p.lse(), F32, ReferenceOps.attentionLse(ref(q), ref(k), null, scale));
        // [Lq, Lk] bias with fully masked row 2: out 0, lse −∞
        float[] rows = new float[lq * lk];
        for (int i = 0; i < rows.length; i++) rows[i] = (float) rnd.nextGaussian();
        for (int j = 0; j < lk; j++) rows[2 * lk + j] = Float.NEGATIVE_INFINITY;
        Tensor rowMask = Tensor.of(rows, lq, lk);
        PartialAttention m = ops().attentionWithLse(up(q), up(k), up(v), up(rowMask), scale);
        check("attention (withLse, masked) out", m.out(), F32, ReferenceOps.attention(ref(q), ref(k), ref(v), ref(rowMask), scale));
        DoubleTensor lse = ReferenceOps.attentionLse(ref(q), ref(k), ref(rowMask), scale);
        check("attention (withLse, masked) lse", m.lse(), F32, lse);
        Tensor lseHost = down(m.lse());
        for (int bi = 0; bi < b; bi++)
            for (int hi = 0; hi < h; hi++)
                assertEquals(Float.NEGATIVE_INFINITY, lseHost.getFloat((bi * h + hi) * lq + 2), "fully masked row: lse −∞");
    }

    @Test void mergeOfKeyBlocksEqualsAttentionOverAllKeys() {
        Random rnd = new Random(24);
        for (DType t : new DType[] {F32, BF16}) {
            int b = 1, lq = 19, h = 2, d = 16;
            int[] blocks = {11, 4, 17};     // three disjoint key blocks, merged left to right
            int lk = 0;
            for (int n : blocks) lk += n;
            Tensor q = randn(rnd, t, b, lq, h, d), k = randn(rnd, t, b, lk, h, d), v = randn(rnd, t, b, lk, h, d);
            float scale = 0.25f;
            Tensor qd = up(q), kd = up(k), vd = up(v);
            PartialAttention acc = null;
            for (int i = 0, from = 0; i < blocks.length; from += blocks[i], i++) {
                PartialAttention part = ops().attentionWithLse(qd, ops().slice(kd, 1, from, from + blocks[i]),
                        ops().slice(vd, 1, from, from + blocks[i]), null, scale);
                acc = acc == null ? part : ops().mergeAttention(acc, part);
            }
            check("attention (merged blocks) " + t, acc.out(), t, ReferenceOps.attention(ref(q), ref(k), ref(v), null, scale));
            check("attention (merged lse) " + t, acc.lse(), F32, ReferenceOps.attentionLse(ref(q), ref(k), null, scale));
        }
        // a block whose rows are all masked contributes nothing; two masked blocks give zeros and −∞
        Tensor q = randn(rnd, F32, 1, 3, 1, 4), k = randn(rnd, F32, 1, 5, 1, 4), v = randn(rnd, F32, 1, 5, 1, 4);
        float[] none = new float[3 * 5];
        java.util.Arrays.fill(none, Float.NEGATIVE_INFINITY);
        Tensor masked = Tensor.of(none, 3, 5);
        PartialAttention real = ops().attentionWithLse(up(q), up(k), up(v), null, 0.5f);
        PartialAttention dead = ops().attentionWithLse(up(q), up(k), up(v), up(masked), 0.5f);
        PartialAttention merged = ops().mergeAttention(dead, real);
        check("attention (merge with a masked block)", merged.out(), F32, ReferenceOps.attention(ref(q), ref(k), ref(v), null, 0.5));
        PartialAttention both = ops().mergeAttention(dead, dead);
        for (float x : down(both.out()).toFloatArray()) assertEquals(0f, x, "two masked blocks merge to zeros");
        for (float x : down(both.lse()).toFloatArray()) assertEquals(Float.NEGATIVE_INFINITY, x, "two masked blocks: lse −∞");
    }

    @Test void mergeRejectsMismatchedParts() {
        Random rnd = new Random(25);
        Tensor q = up(randn(rnd, F32, 1, 3, 2, 4)), k = up(randn(rnd, F32, 1, 5, 2, 4));
        Tensor q2 = up(randn(rnd, F32, 1, 4, 2, 4));
        PartialAttention a = ops().attentionWithLse(q, k, k, null, 1f), b = ops().attentionWithLse(q2, k, k, null, 1f);
        var e = assertThrows(IllegalArgumentException.class, () -> ops().mergeAttention(a, b));
        assertTrue(e.getMessage().contains("b.out") || e.getMessage().contains("a.out"), e.getMessage());
    }

    // ------------------------------------------------------------------ normalisation

    @Test void layerNormWithAndWithoutAffine() {
        Random rnd = new Random(30);
        Tensor x = randn(rnd, F32, 2, 5, 37), w = randn(rnd, F32, 37), b = randn(rnd, F32, 37);
        for (int i = 0; i < 10; i++) x.setFloat(i, x.getFloat(i) * 50 + 3);          // offset rows stress the variance
        check("layerNorm affine", ops().layerNorm(up(x), up(w), up(b), 1e-6f), F32,
                ReferenceOps.layerNorm(ref(x), ref(w), ref(b), 1e-6));
        check("layerNorm plain", ops().layerNorm(up(x), null, null, 1e-5f), F32,
                ReferenceOps.layerNorm(ref(x), null, null, 1e-5));
        check("layerNorm weight only", ops().layerNorm(up(x), up(w), null, 1e-5f), F32,
                ReferenceOps.layerNorm(ref(x), ref(w), null, 1e-5));
        Tensor xb = randn(rnd, BF16, 3, 64), wb = randn(rnd, BF16, 64), bb = randn(rnd, BF16, 64);
        check("layerNorm bf16", ops().layerNorm(up(xb), up(wb), up(bb), 1e-6f), BF16,
                ReferenceOps.layerNorm(ref(xb), ref(wb), ref(bb), 1e-6));
    }

    @Test void rmsNormWithAndWithoutWeight() {
        Random rnd = new Random(31);
        Tensor x = randn(rnd, F32, 3, 4, 19), w = randn(rnd, F32, 19);
        check("rmsNorm", ops().rmsNorm(up(x), up(w), 1e-6f), F32, ReferenceOps.rmsNorm(ref(x), ref(w), 1e-6));
        check("rmsNorm no weight", ops().rmsNorm(up(x), null, 1e-5f), F32, ReferenceOps.rmsNorm(ref(x), null, 1e-5));
        Tensor xh = randn(rnd, F16, 5, 32), wb = randn(rnd, BF16, 32);
        check("rmsNorm f16 x bf16 w", ops().rmsNorm(up(xh), up(wb), 1e-6f), F16, ReferenceOps.rmsNorm(ref(xh), ref(wb), 1e-6));
    }

    @Test void groupNormOverChannelGroups() {
        Random rnd = new Random(32);
        Tensor x = randn(rnd, F32, 2, 6, 5, 7), w = randn(rnd, F32, 6), b = randn(rnd, F32, 6);
        for (int groups : new int[] {1, 2, 3, 6})
            check("groupNorm groups=" + groups, ops().groupNorm(up(x), groups, up(w), up(b), 1e-6f), F32,
                    ReferenceOps.groupNorm(ref(x), groups, ref(w), ref(b), 1e-6));
        check("groupNorm no affine", ops().groupNorm(up(x), 3, null, null, 1e-5f), F32,
                ReferenceOps.groupNorm(ref(x), 3, null, null, 1e-5));
        Tensor v = randn(rnd, BF16, 1, 4, 3, 4, 5), vw = randn(rnd, F32, 4), vb = randn(rnd, F32, 4);
        check("groupNorm 5-D bf16", ops().groupNorm(up(v), 2, up(vw), up(vb), 1e-6f), BF16,
                ReferenceOps.groupNorm(ref(v), 2, ref(vw), ref(vb), 1e-6));
    }

    @Test void groupStatsSumsEachGroup() {
        Random rnd = new Random(33);
        Tensor x = uniform(rnd, F32, 1, 4, 2, 6, 5, 7);              // mean far from 0: centering matters
        for (int groups : new int[] {1, 3, 6})
            check("groupStats groups=" + groups, ops().groupStats(up(x), groups, null), F32,
                    ReferenceOps.groupStats(ref(x), groups, null));
        Tensor c = uniform(rnd, F32, 1, 4, 2, 3);
        check("groupStats centered", ops().groupStats(up(x), 3, up(c)), F32, ReferenceOps.groupStats(ref(x), 3, ref(c)));
        Tensor v = randn(rnd, BF16, 1, 4, 3, 4, 5);
        check("groupStats 5-D bf16", ops().groupStats(up(v), 2, null), F32, ReferenceOps.groupStats(ref(v), 2, null));
        Tensor flat = randn(rnd, F32, 3, 4);
        check("groupStats [N, C]", ops().groupStats(up(flat), 2, null), F32, ReferenceOps.groupStats(ref(flat), 2, null));
    }

    @Test void groupNormWithStatsUsesTheGivenStatistics() {
        Random rnd = new Random(34);
        Tensor x = randn(rnd, F32, 2, 6, 5, 7), w = randn(rnd, F32, 6), b = randn(rnd, F32, 6);
        Tensor mean = randn(rnd, F32, 2, 3), var = uniform(rnd, F32, 0.1, 2, 2, 3);
        check("groupNormWithStats affine", ops().groupNormWithStats(up(x), 3, up(mean), up(var), up(w), up(b), 1e-6f), F32,
                ReferenceOps.groupNormWithStats(ref(x), 3, ref(mean), ref(var), ref(w), ref(b), 1e-6));
        check("groupNormWithStats no affine", ops().groupNormWithStats(up(x), 3, up(mean), up(var), null, null, 1e-5f), F32,
                ReferenceOps.groupNormWithStats(ref(x), 3, ref(mean), ref(var), null, null, 1e-5));
        check("groupNormWithStats weight only", ops().groupNormWithStats(up(x), 3, up(mean), up(var), up(w), null, 1e-5f), F32,
                ReferenceOps.groupNormWithStats(ref(x), 3, ref(mean), ref(var), ref(w), null, 1e-5));
        Tensor v = randn(rnd, BF16, 1, 4, 3, 4, 5), vw = randn(rnd, BF16, 4), vb = randn(rnd, F32, 4);
        Tensor vm = randn(rnd, F32, 1, 2), vv = uniform(rnd, F32, 0.5, 1.5, 1, 2);
        check("groupNormWithStats 5-D bf16", ops().groupNormWithStats(up(v), 2, up(vm), up(vv), up(vw), up(vb), 1e-6f), BF16,
                ReferenceOps.groupNormWithStats(ref(v), 2, ref(vm), ref(vv), ref(vw), ref(vb), 1e-6));
        assertThrows(IllegalArgumentException.class,
                () -> ops().groupNormWithStats(up(x), 3, up(randn(rnd, F32, 2, 2)), up(var), null, null, 1e-6f));
        assertThrows(IllegalArgumentException.class, () -> ops().groupStats(up(x), 4, null));
    }

    /**
     * A group norm of x computed from the sums of its row pieces (as a spatially split image does across ranks): the
     * two-pass statistics from summed {@code groupStats} fed to {@code groupNormWithStats} equal {@code groupNorm} of x.
     */
    @Test void groupNormFromPiecesEqualsGroupNorm() {
        Random rnd = new Random(35);
        Tensor x = uniform(rnd, F32, -1, 3, 2, 6, 5, 7), w = randn(rnd, F32, 6), b = randn(rnd, F32, 6);
        Tensor dx = up(x);
        Tensor[] pieces = {ops().slice(dx, 2, 0, 2), ops().slice(dx, 2, 2, 3), ops().slice(dx, 2, 3, 5)};
        float inv = 1f / (2 * 5 * 7);                                   // 2 channels per group × 5 × 7 positions
        Tensor sum = null;
        for (Tensor p : pieces) sum = sum == null ? ops().groupStats(p, 3, null) : ops().add(sum, ops().groupStats(p, 3, null));
        Tensor mean = ops().scale(ops().slice(sum, 2, 0, 1), inv).view(2, 3);
        Tensor sq = null;
        for (Tensor p : pieces) sq = sq == null ? ops().groupStats(p, 3, mean) : ops().add(sq, ops().groupStats(p, 3, mean));
        Tensor var = ops().scale(ops().slice(sq, 2, 1, 2), inv).view(2, 3);
        check("groupNormWithStats from pieces", ops().groupNormWithStats(dx, 3, mean, var, up(w), up(b), 1e-6f), F32,
                ReferenceOps.groupNorm(ref(x), 3, ref(w), ref(b), 1e-6));
    }

    // ------------------------------------------------------------------ position

    @Test void ropeRotatesAdjacentPairs() {
        Random rnd = new Random(40);
        Tensor x = randn(rnd, F32, 2, 5, 3, 8);
        Tensor cos = uniform(rnd, F32, -1, 1, 5, 4), sin = uniform(rnd, F32, -1, 1, 5, 4);
        check("rope [L, d/2]", ops().rope(up(x), up(cos), up(sin)), F32, ReferenceOps.rope(ref(x), ref(cos), ref(sin)));
        Tensor cb = uniform(rnd, F32, -1, 1, 2, 5, 4), sb = uniform(rnd, F32, -1, 1, 2, 5, 4);
        check("rope [B, L, d/2]", ops().rope(up(x), up(cb), up(sb)), F32, ReferenceOps.rope(ref(x), ref(cb), ref(sb)));
        Tensor xb = randn(rnd, BF16, 1, 7, 2, 16);
        Tensor c2 = uniform(rnd, F32, -1, 1, 7, 8), s2 = uniform(rnd, F32, -1, 1, 7, 8);
        check("rope bf16", ops().rope(up(xb), up(c2), up(s2)), BF16, ReferenceOps.rope(ref(xb), ref(c2), ref(s2)));
    }

    // ------------------------------------------------------------------ element-wise

    @Test void binaryOpsBroadcast() {
        Random rnd = new Random(50);
        long[][][] cases = {
                {{3, 37}, {3, 37}},
                {{2, 3, 4}, {4}},
                {{2, 1, 4}, {3, 1}},
                {{4}, {2, 3, 4}},
                {{2, 3, 4, 5}, {3, 1, 1}},
                {{5, 6}, {1}},
                {{1, 6}, {5, 1}}};
        for (long[][] c : cases) {
            Tensor a = randn(rnd, F32, c[0]), b = randn(rnd, F32, c[1]);
            String s = Shape.of(c[0]) + " " + Shape.of(c[1]);
            check("add " + s, ops().add(up(a), up(b)), F32, ReferenceOps.add(ref(a), ref(b)));
            check("sub " + s, ops().sub(up(a), up(b)), F32, ReferenceOps.sub(ref(a), ref(b)));
            check("mul " + s, ops().mul(up(a), up(b)), F32, ReferenceOps.mul(ref(a), ref(b)));
        }
        Tensor a = randn(rnd, BF16, 4, 9), b = randn(rnd, F32, 9);
        check("add bf16 + f32", ops().add(up(a), up(b)), BF16, ReferenceOps.add(ref(a), ref(b)));
        Tensor h = randn(rnd, F16, 4, 9);
        check("mul f16 * bf16", ops().mul(up(h), up(a)), F16, ReferenceOps.mul(ref(h), ref(a)));
    }

    @Test void unaryOps() {
        Random rnd = new Random(51);
        for (DType t : new DType[] {F32, BF16, F16}) {
            Tensor x = uniform(rnd, t, -7, 7, 3, 37);
            check("scale " + t, ops().scale(up(x), -1.7f), t, ReferenceOps.scale(ref(x), -1.7f));
            check("silu " + t, ops().silu(up(x)), t, ReferenceOps.silu(ref(x)));
            check("gelu tanh " + t, ops().gelu(up(x), true), t, ReferenceOps.gelu(ref(x), true));
            check("gelu erf " + t, ops().gelu(up(x), false), t, ReferenceOps.gelu(ref(x), false));
        }
        Tensor small = uniform(rnd, F32, -1e-3, 1e-3, 50);
        check("gelu erf near 0", ops().gelu(up(small), false), F32, ReferenceOps.gelu(ref(small), false));
    }

    @Test void softmaxOverLastDim() {
        Random rnd = new Random(52);
        Tensor x = randn(rnd, F32, 4, 3, 37);
        for (int i = 0; i < 37; i += 3) x.setFloat(i, Float.NEGATIVE_INFINITY);   // partly masked first row
        x.setFloat(40, 80f);                                                      // large logit
        check("softmax", ops().softmax(up(x)), F32, ReferenceOps.softmax(ref(x)));
        Tensor b = randn(rnd, BF16, 5, 130);
        check("softmax bf16", ops().softmax(up(b)), BF16, ReferenceOps.softmax(ref(b)));
    }

    @Test void modulateAndGatedResidual() {
        Random rnd = new Random(53);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor x = randn(rnd, t, 2, 5, 16), shift = randn(rnd, t, 2, 16), scale = randn(rnd, t, 2, 16);
            check("modulate " + t, ops().modulate(up(x), up(shift), up(scale)), t,
                    ReferenceOps.modulate(ref(x), ref(shift), ref(scale)));
            Tensor y = randn(rnd, t, 2, 5, 16), gate = randn(rnd, F32, 2, 16);
            check("gatedResidual " + t, ops().gatedResidual(up(x), up(gate), up(y)), t,
                    ReferenceOps.gatedResidual(ref(x), ref(gate), ref(y)));
        }
    }

    // ------------------------------------------------------------------ convolution

    /** {x dims N,C,H,W}, {O, kh, kw}, {stride h,w}, {pad h,w}, {groups}. */
    @Test void conv2dStridesPaddingGroups() {
        Random rnd = new Random(60);
        int[][][] cases = {
                {{2, 4, 9, 11}, {6, 3, 3}, {1, 1}, {1, 1}, {1}},
                {{1, 4, 9, 11}, {5, 3, 3}, {2, 2}, {0, 0}, {1}},
                {{2, 4, 8, 8}, {6, 3, 3}, {1, 1}, {1, 1}, {2}},
                {{1, 3, 7, 5}, {8, 1, 1}, {1, 1}, {0, 0}, {1}},
                {{1, 5, 10, 9}, {4, 2, 3}, {2, 1}, {1, 0}, {1}},
                {{2, 6, 6, 7}, {6, 3, 3}, {1, 1}, {1, 1}, {6}},
                {{1, 3, 16, 16}, {7, 4, 4}, {4, 4}, {0, 0}, {1}},
                {{1, 2, 5, 5}, {3, 5, 5}, {1, 1}, {0, 0}, {1}}};
        for (int[][] c : cases) {
            int groups = c[4][0];
            Tensor x = randn(rnd, F32, c[0][0], c[0][1], c[0][2], c[0][3]);
            Tensor w = randn(rnd, F32, 0.3, c[1][0], c[0][1] / groups, c[1][1], c[1][2]);
            Tensor b = randn(rnd, F32, c[1][0]);
            String s = "conv2d x" + Shape.of(c[0]) + " w" + w.shape() + " stride " + java.util.Arrays.toString(c[2])
                    + " pad " + java.util.Arrays.toString(c[3]) + " groups " + groups;
            check(s, ops().conv2d(up(x), up(w), up(b), c[2], c[3], groups), F32,
                    ReferenceOps.conv2d(ref(x), ref(w), ref(b), c[2], c[3], groups));
        }
        Tensor x = randn(rnd, BF16, 1, 4, 6, 6), w = randn(rnd, BF16, 0.3, 4, 4, 3, 3);
        check("conv2d bf16 no bias", ops().conv2d(up(x), up(w), null, new int[] {1, 1}, new int[] {1, 1}, 1), BF16,
                ReferenceOps.conv2d(ref(x), ref(w), null, new int[] {1, 1}, new int[] {1, 1}, 1));
    }

    @Test void conv3dStridesAndPadding() {
        Random rnd = new Random(61);
        int[][][] cases = {
                {{1, 3, 5, 6, 7}, {4, 3, 3, 3}, {1, 1, 1}, {1, 1, 1}},
                {{2, 2, 5, 8, 8}, {3, 3, 3, 3}, {1, 2, 2}, {0, 1, 1}},
                {{1, 4, 3, 5, 5}, {2, 1, 3, 3}, {1, 1, 1}, {0, 1, 1}},
                {{1, 3, 4, 4, 4}, {5, 1, 2, 2}, {1, 2, 2}, {0, 0, 0}}};
        for (int[][] c : cases) {
            Tensor x = randn(rnd, F32, c[0][0], c[0][1], c[0][2], c[0][3], c[0][4]);
            Tensor w = randn(rnd, F32, 0.3, c[1][0], c[0][1], c[1][1], c[1][2], c[1][3]);
            Tensor b = randn(rnd, F32, c[1][0]);
            String s = "conv3d x" + Shape.of(c[0]) + " w" + w.shape() + " stride " + java.util.Arrays.toString(c[2])
                    + " pad " + java.util.Arrays.toString(c[3]);
            check(s, ops().conv3d(up(x), up(w), up(b), c[2], c[3]), F32,
                    ReferenceOps.conv3d(ref(x), ref(w), ref(b), c[2], c[3]));
            check(s + " no bias", ops().conv3d(up(x), up(w), null, c[2], c[3]), F32,
                    ReferenceOps.conv3d(ref(x), ref(w), null, c[2], c[3]));
        }
    }

    // ------------------------------------------------------------------ fused forms

    @Test void fusedFormsEqualTheirParts() {
        Random rnd = new Random(70);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor x = randn(rnd, t, 2, 5, 24), shift = randn(rnd, t, 2, 24), scale = randn(rnd, t, 2, 24);
            check("layerNormModulate " + t, ops().layerNormModulate(up(x), up(shift), up(scale), 1e-6f), t,
                    ReferenceOps.modulate(ReferenceOps.layerNorm(ref(x), null, null, 1e-6), ref(shift), ref(scale)));
            Tensor w = randn(rnd, t, 0.2, 13, 24), b = randn(rnd, t, 13);
            for (boolean tanh : new boolean[] {true, false})
                check("linearGelu tanh=" + tanh + " " + t, ops().linearGelu(up(x), up(w), up(b), tanh), t,
                        ReferenceOps.gelu(ReferenceOps.linear(ref(x), ref(w), ref(b)), tanh));
            Tensor qk = randn(rnd, t, 2, 5, 3, 8), nw = randn(rnd, F32, 8);
            Tensor cos = uniform(rnd, F32, -1, 1, 5, 4), sin = uniform(rnd, F32, -1, 1, 5, 4);
            check("rmsNormRope " + t, ops().rmsNormRope(up(qk), up(nw), 1e-6f, up(cos), up(sin)), t,
                    ReferenceOps.rope(ReferenceOps.rmsNorm(ref(qk), ref(nw), 1e-6), ref(cos), ref(sin)));
        }
    }

    // ------------------------------------------------------------------ writing into a part of a tensor

    /**
     * Checks dst (a device tensor that started as {@code before}) after a write of rows [start, start + n) along dim:
     * the window against {@code window} (exactly, or within the op's tolerance), everything else unchanged, bit for bit.
     */
    private void checkWindow(String what, Tensor dst, DoubleTensor before, int dim, int start, DoubleTensor window, boolean exact) {
        int n = window.dim(dim), size = before.dim(dim);
        Tensor got = ops().slice(dst, dim, start, start + n);
        if (exact) checkExact(what + " window", got, dst.dtype(), window);
        else check(what + " window", got, dst.dtype(), window);
        checkExact(what + " rows before the window", ops().slice(dst, dim, 0, start), dst.dtype(), ReferenceOps.slice(before, dim, 0, start));
        checkExact(what + " rows after the window", ops().slice(dst, dim, start + n, size), dst.dtype(),
                ReferenceOps.slice(before, dim, start + n, size));
    }

    @Test void writeSliceIsTheInverseOfSlice() {
        Random rnd = new Random(90);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor dst = randn(rnd, t, 3, 7, 5);
            int[][] cases = {{0, 1, 2}, {1, 2, 4}, {2, 0, 3}, {2, 4, 1}, {1, 0, 7}, {1, 3, 0}};   // dim, start, n
            for (int[] c : cases) {
                long[] dims = {3, 7, 5};
                dims[c[0]] = c[2];
                Tensor src = randn(rnd, t, dims);
                Tensor d = up(dst);
                ops().writeSlice(d, c[0], c[1], up(src));
                checkWindow("writeSlice " + t + " dim " + c[0] + " at " + c[1], d, ref(dst), c[0], c[1], ref(src), true);
            }
        }
        Tensor dst = randn(rnd, BF16, 2, 6, 8), src = randn(rnd, F32, 2, 6, 3);
        Tensor d = up(dst);
        ops().writeSlice(d, -1, 5, up(src));
        checkWindow("writeSlice f32 into bf16, dim -1", d, ref(dst), 2, 5, ref(src), true);
        Tensor small = up(randn(rnd, F32, 2, 6, 4));
        assertThrows(IllegalArgumentException.class, () -> ops().writeSlice(small, 2, 3, up(src)));
        assertThrows(IllegalArgumentException.class, () -> ops().writeSlice(small, 1, 0, up(src)));
    }

    @Test void linearGeluIntoWritesItsColumns() {
        Random rnd = new Random(91);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor x = randn(rnd, t, 2, 5, 24), w = randn(rnd, t, 0.2, 16, 24), b = randn(rnd, t, 16);
            Tensor out = randn(rnd, t, 2, 5, 40);
            for (int col : new int[] {0, 8, 24}) {
                for (boolean tanh : new boolean[] {true, false}) {
                    Tensor d = up(out);
                    ops().linearGeluInto(d, col, up(x), up(w), tanh ? up(b) : null, tanh);
                    DoubleTensor want = ReferenceOps.gelu(ReferenceOps.linear(ref(x), ref(w), tanh ? ref(b) : null), tanh);
                    checkWindow("linearGeluInto " + t + " col " + col + " tanh=" + tanh, d, ref(out), 2, col, want, false);
                }
            }
        }
        Tensor x = up(randn(rnd, F32, 3, 8)), w = up(randn(rnd, F32, 6, 8)), out = up(randn(rnd, F32, 3, 10));
        assertThrows(IllegalArgumentException.class, () -> ops().linearGeluInto(out, 5, x, w, null, true));
    }

    @Test void attentionIntoWritesItsColumns() {
        Random rnd = new Random(92);
        // {B, Lq, Lk, H, d, W, col}: the bf16/f16 d = 64 cases are what fused attention kernels take
        int[][] cases = {{2, 5, 7, 3, 8, 32, 4}, {2, 33, 45, 2, 64, 160, 16}, {1, 17, 17, 2, 64, 128, 0}};
        for (DType t : new DType[] {F32, BF16}) {
            for (int[] c : cases) {
                Tensor q = randn(rnd, t, c[0], c[1], c[3], c[4]), k = randn(rnd, t, c[0], c[2], c[3], c[4]);
                Tensor v = randn(rnd, t, c[0], c[2], c[3], c[4]);
                Tensor out = randn(rnd, t, c[0], c[1], c[5]);
                float scale = (float) (1 / Math.sqrt(c[4]));
                Tensor d = up(out);
                ops().attentionInto(d, c[6], up(q), up(k), up(v), null, scale);
                DoubleTensor a = ReferenceOps.attention(ref(q), ref(k), ref(v), null, scale);
                DoubleTensor want = new DoubleTensor(org.dit4j.core.tensor.Shape.of(c[0], c[1], (long) c[3] * c[4]), a.data());
                checkWindow("attentionInto " + t + " " + java.util.Arrays.toString(c), d, ref(out), 2, c[6], want, false);
            }
        }
        Tensor q = randn(rnd, F32, 1, 4, 2, 8), kv = randn(rnd, F32, 1, 6, 2, 8), bias = randn(rnd, F32, 1, 2, 4, 6);
        Tensor out = randn(rnd, F32, 1, 4, 20);
        Tensor d = up(out);
        ops().attentionInto(d, 2, up(q), up(kv), up(kv), up(bias), 0.3f);
        DoubleTensor a = ReferenceOps.attention(ref(q), ref(kv), ref(kv), ref(bias), 0.3);
        checkWindow("attentionInto with bias", d, ref(out), 2, 2, new DoubleTensor(org.dit4j.core.tensor.Shape.of(1, 4, 16), a.data()), false);
    }

    @Test void qkvNormRopeIntoSplitsNormsAndRotates() {
        Random rnd = new Random(93);
        // {B, L, H, d, Lt, offset}; d = 128 is Flux's head size
        int[][] cases = {{2, 5, 3, 8, 5, 0}, {2, 5, 3, 8, 9, 3}, {1, 7, 2, 128, 12, 5}, {1, 6, 2, 64, 6, 0}};
        for (DType t : new DType[] {F32, BF16}) {
            for (int[] c : cases) {
                for (boolean batchedCos : new boolean[] {false, true}) {
                    int b = c[0], l = c[1], h = c[2], hd = c[3], lt = c[4], off = c[5];
                    Tensor qkv = randn(rnd, t, b, l, 3L * h * hd);
                    Tensor qw = randn(rnd, t, hd), kw = randn(rnd, t, hd);
                    Tensor cos = batchedCos ? uniform(rnd, F32, -1, 1, b, l, hd / 2) : uniform(rnd, F32, -1, 1, l, hd / 2);
                    Tensor sin = batchedCos ? uniform(rnd, F32, -1, 1, b, l, hd / 2) : uniform(rnd, F32, -1, 1, l, hd / 2);
                    Tensor q0 = randn(rnd, t, b, lt, h, hd), k0 = randn(rnd, t, b, lt, h, hd), v0 = randn(rnd, t, b, lt, h, hd);
                    Tensor q = up(q0), k = up(k0), v = up(v0);
                    ops().qkvNormRopeInto(up(qkv), up(qw), up(kw), 1e-6f, up(cos), up(sin), q, k, v, off);
                    DoubleTensor parts = new DoubleTensor(org.dit4j.core.tensor.Shape.of(b, l, 3, h, hd), ref(qkv).data());
                    DoubleTensor[] p = new DoubleTensor[3];
                    for (int i = 0; i < 3; i++) {
                        DoubleTensor s = ReferenceOps.slice(parts, 2, i, i + 1);
                        p[i] = new DoubleTensor(org.dit4j.core.tensor.Shape.of(b, l, h, hd), s.data());
                    }
                    String what = "qkvNormRopeInto " + t + " " + java.util.Arrays.toString(c) + (batchedCos ? " cos [B, L, d/2]" : "");
                    checkWindow(what + " q", q, ref(q0), 1, off,
                            ReferenceOps.rope(ReferenceOps.rmsNorm(p[0], ref(qw), 1e-6), ref(cos), ref(sin)), false);
                    checkWindow(what + " k", k, ref(k0), 1, off,
                            ReferenceOps.rope(ReferenceOps.rmsNorm(p[1], ref(kw), 1e-6), ref(cos), ref(sin)), false);
                    checkWindow(what + " v", v, ref(v0), 1, off, p[2], true);
                }
            }
        }
        Tensor qkv = up(randn(rnd, F32, 1, 4, 3 * 2 * 8)), q = up(randn(rnd, F32, 1, 4, 2, 8));
        Tensor cos = up(uniform(rnd, F32, -1, 1, 4, 4));
        assertThrows(IllegalArgumentException.class, () -> ops().qkvNormRopeInto(qkv, null, null, 1e-6f, cos, cos, q, q, q, 1));
        Tensor wrong = up(randn(rnd, F32, 1, 4, 3 * 2 * 8 + 1));
        assertThrows(IllegalArgumentException.class, () -> ops().qkvNormRopeInto(wrong, null, null, 1e-6f, cos, cos, q, q, q, 0));
    }

    // ------------------------------------------------------------------ lifetimes and errors

    @Test void absSumsAreTheL1SumsOfTheStoredValues() {
        Random rnd = new Random(41);
        for (DType t : new DType[] {F32, BF16}) {
            Tensor a = randn(rnd, t, 2, 37, 129), b = randn(rnd, t, 2, 37, 129);     // more than two 4096-element chunks
            float[] x = a.toFloatArray(), y = b.toFloatArray();
            double d = 0, r = 0;
            for (int i = 0; i < x.length; i++) {
                float diff = x[i] - y[i];
                if (t == BF16) diff = DType.bf16ToFloat(DType.floatToBf16(diff));    // PyTorch's a − b in bf16
                d += Math.abs(diff);
                r += Math.abs(y[i]);
            }
            double[] got = ops().absSums(up(a), up(b));
            assertEquals(2, got.length);
            assertEquals(d, got[0], 1e-6 * d, "absSums " + t + " Σ|a − b| [" + ops().name() + "]");
            assertEquals(r, got[1], 1e-6 * r, "absSums " + t + " Σ|b| [" + ops().name() + "]");
        }
        assertThrows(IllegalArgumentException.class, () -> ops().absSums(up(Tensor.zeros(F32, 2, 3)), up(Tensor.zeros(F32, 3, 2))));
    }

    @Test void eachOpLeavesExactlyItsResultInTheScope() {
        Random rnd = new Random(80);
        Tensor x = up(randn(rnd, F32, 2, 5, 8)), shift = up(randn(rnd, F32, 2, 8)), scale = up(randn(rnd, F32, 2, 8));
        Tensor w = up(randn(rnd, F32, 4, 8)), qk = up(randn(rnd, F32, 2, 5, 2, 4));
        Tensor cos = up(randn(rnd, F32, 5, 2)), sin = up(randn(rnd, F32, 5, 2)), nw = up(randn(rnd, F32, 4));
        java.util.List<java.util.function.Supplier<Tensor>> calls = java.util.List.of(
                () -> ops().layerNormModulate(x, shift, scale, 1e-6f),
                () -> ops().linearGelu(x, w, null, true),
                () -> ops().rmsNormRope(qk, nw, 1e-6f, cos, sin),
                () -> ops().attention(qk, qk, qk, null, 0.5f),
                () -> ops().linear(x, w, null),
                () -> ops().concat(1, x, x));
        try (Scope inner = Scope.open()) {
            for (var call : calls) {
                int before = inner.size();
                Tensor out = call.get();
                assertEquals(before + 1, inner.size(), "an op must register its result, and only it, with the scope");
                assertTrue(!out.isReleased());
            }
        }
    }

    @Test void wrongShapesAreRejectedNamingTheArgument() {
        Random rnd = new Random(81);
        Tensor x = up(randn(rnd, F32, 3, 8)), w = up(randn(rnd, F32, 4, 7));
        var e = assertThrows(IllegalArgumentException.class, () -> ops().linear(x, w, null));
        assertTrue(e.getMessage().contains("w"), e.getMessage());
        Tensor q = up(randn(rnd, F32, 1, 4, 2, 8)), k = up(randn(rnd, F32, 1, 5, 2, 6));
        assertThrows(IllegalArgumentException.class, () -> ops().attention(q, k, k, null, 1f));
        assertThrows(IllegalArgumentException.class, () -> ops().add(x, w));
        Tensor img = up(randn(rnd, F32, 1, 4, 5, 5)), kern = up(randn(rnd, F32, 2, 3, 3, 3));
        assertThrows(IllegalArgumentException.class,
                () -> ops().conv2d(img, kern, null, new int[] {1, 1}, new int[] {0, 0}, 1));
        assertThrows(IllegalArgumentException.class, () -> ops().groupNorm(img, 3, null, null, 1e-5f));
        Tensor x3 = up(randn(rnd, F32, 2, 3, 8)), badShift = up(randn(rnd, F32, 3, 8));
        assertThrows(IllegalArgumentException.class, () -> ops().modulate(x3, badShift, badShift));
    }
}
