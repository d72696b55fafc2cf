package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Device;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * An {@link Ops} that hands every call to another one: the base of decorators that change a few methods (sequence
 * parallel attention, profiling) and keep the wrapped backend's own implementations, fused forms included, for
 * everything else. Every method of {@link Ops}, default ones too, is forwarded here (a test checks it), so a decorator
 * never silently falls back to an interface default. {@link #close()} does not close the delegate.
 */
public abstract class ForwardingOps implements Ops {
    protected final Ops delegate;

    protected ForwardingOps(Ops delegate) {
        if (delegate == null) throw new IllegalArgumentException("ForwardingOps: the delegate backend must not be null");
        this.delegate = delegate;
    }

    /** The wrapped backend. */
    public Ops delegate() { return delegate; }

    @Override public Device device() { return delegate.device(); }
    @Override public String name() { return delegate.name(); }
    @Override public Tensor empty(DType dtype, Shape shape) { return delegate.empty(dtype, shape); }
    @Override public Tensor zeros(DType dtype, Shape shape) { return delegate.zeros(dtype, shape); }
    @Override public Tensor upload(Tensor host) { return delegate.upload(host); }
    @Override public Tensor toHost(Tensor x) { return delegate.toHost(x); }
    @Override public void synchronize() { delegate.synchronize(); }
    @Override public void close() {}
    @Override public Tensor copy(Tensor x) { return delegate.copy(x); }
    @Override public Tensor cast(Tensor x, DType dtype) { return delegate.cast(x, dtype); }
    @Override public Tensor reshape(Tensor x, long... dims) { return delegate.reshape(x, dims); }
    @Override public Tensor permute(Tensor x, int... perm) { return delegate.permute(x, perm); }
    @Override public Tensor slice(Tensor x, int dim, long start, long end) { return delegate.slice(x, dim, start, end); }
    @Override public Tensor concat(int dim, Tensor... xs) { return delegate.concat(dim, xs); }
    @Override public void writeSlice(Tensor dst, int dim, long start, Tensor src) { delegate.writeSlice(dst, dim, start, src); }
    @Override public Tensor pad(Tensor x, long[] pads, float value) { return delegate.pad(x, pads, value); }
    @Override public Tensor linear(Tensor x, Tensor w, Tensor bias) { return delegate.linear(x, w, bias); }
    @Override public Tensor matmul(Tensor a, Tensor b) { return delegate.matmul(a, b); }
    @Override public Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) { return delegate.attention(q, k, v, bias, scale); }
    @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        return delegate.attentionWithLse(q, k, v, bias, scale);
    }
    @Override public PartialAttention mergeAttention(PartialAttention a, PartialAttention b) { return delegate.mergeAttention(a, b); }
    @Override public Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, float eps) { return delegate.layerNorm(x, weight, bias, eps); }
    @Override public Tensor rmsNorm(Tensor x, Tensor weight, float eps) { return delegate.rmsNorm(x, weight, eps); }
    @Override public Tensor groupNorm(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        return delegate.groupNorm(x, groups, weight, bias, eps);
    }
    @Override public Tensor groupStats(Tensor x, int groups, Tensor center) { return delegate.groupStats(x, groups, center); }
    @Override public Tensor groupNormSilu(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        return delegate.groupNormSilu(x, groups, weight, bias, eps);
    }

    @Override public Tensor groupNormWithStats(Tensor x, int groups, Tensor mean, Tensor var, Tensor weight, Tensor bias, float eps) {
        return delegate.groupNormWithStats(x, groups, mean, var, weight, bias, eps);
    }
    @Override public Tensor rope(Tensor x, Tensor cos, Tensor sin) { return delegate.rope(x, cos, sin); }
    @Override public Tensor add(Tensor a, Tensor b) { return delegate.add(a, b); }
    @Override public Tensor sub(Tensor a, Tensor b) { return delegate.sub(a, b); }
    @Override public Tensor mul(Tensor a, Tensor b) { return delegate.mul(a, b); }
    @Override public Tensor scale(Tensor x, float s) { return delegate.scale(x, s); }
    @Override public Tensor silu(Tensor x) { return delegate.silu(x); }
    @Override public Tensor gelu(Tensor x, boolean tanh) { return delegate.gelu(x, tanh); }
    @Override public Tensor softmax(Tensor x) { return delegate.softmax(x); }
    @Override public double[] absSums(Tensor a, Tensor b) { return delegate.absSums(a, b); }
    @Override public Tensor modulate(Tensor x, Tensor shift, Tensor scale) { return delegate.modulate(x, shift, scale); }
    @Override public Tensor gatedResidual(Tensor residual, Tensor gate, Tensor y) { return delegate.gatedResidual(residual, gate, y); }
    @Override public Tensor conv2d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding, int groups) {
        return delegate.conv2d(x, w, bias, stride, padding, groups);
    }
    @Override public Tensor conv3d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding) {
        return delegate.conv3d(x, w, bias, stride, padding);
    }
    @Override public Tensor upsampleNearest2d(Tensor x, int factor) { return delegate.upsampleNearest2d(x, factor); }
    @Override public Tensor layerNormModulate(Tensor x, Tensor shift, Tensor scale, float eps) {
        return delegate.layerNormModulate(x, shift, scale, eps);
    }
    @Override public Tensor linearGelu(Tensor x, Tensor w, Tensor bias, boolean tanh) { return delegate.linearGelu(x, w, bias, tanh); }
    @Override public Tensor rmsNormRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        return delegate.rmsNormRope(x, w, eps, cos, sin);
    }

    @Override public Tensor rmsNormAcrossHeadsRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        return delegate.rmsNormAcrossHeadsRope(x, w, eps, cos, sin);
    }
    @Override public void linearGeluInto(Tensor out, long col, Tensor x, Tensor w, Tensor bias, boolean tanh) {
        delegate.linearGeluInto(out, col, x, w, bias, tanh);
    }
    @Override public void prefetchAttention(Tensor q, Tensor k, Tensor v) {
        delegate.prefetchAttention(q, k, v);
    }

    @Override public void attentionInto(Tensor out, long col, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        delegate.attentionInto(out, col, q, k, v, bias, scale);
    }
    @Override public void qkvNormRopeInto(Tensor qkv, Tensor qWeight, Tensor kWeight, float eps, Tensor cos, Tensor sin,
                                          Tensor q, Tensor k, Tensor v, long offset) {
        delegate.qkvNormRopeInto(qkv, qWeight, kWeight, eps, cos, sin, q, k, v, offset);
    }
}
