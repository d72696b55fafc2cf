package org.dit4j.core.ops;

import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Device;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;

/**
 * The one seam between models and backends. Models call these methods and never mention a device.
 *
 * <p>Contract for every method unless it says otherwise:
 * <ul>
 *   <li>Inputs are tensors on {@link #device()}; outputs are new contiguous tensors on that device, registered with
 *       the thread's current {@link org.dit4j.core.tensor.Scope}.</li>
 *   <li>Floating inputs may be F32, BF16 or F16; arithmetic is done in F32; the output has the dtype of the first
 *       tensor argument ("activation dtype"). Weights may have another floating dtype (incl. fp8), which is converted.</li>
 *   <li>Layouts are PyTorch's: linear weights {@code [out, in]}; attention tensors {@code [B, L, H, d]};
 *       images {@code [N, C, H, W]}; videos {@code [N, C, T, H, W]}.</li>
 *   <li>Wrong shapes throw {@link IllegalArgumentException} naming the argument, the expected and the actual shape.</li>
 * </ul>
 */
public interface Ops extends AutoCloseable {

    /** Where this backend's tensors live. */
    Device device();

    /** Human-readable backend name for logs ("cpu (2 threads, Vector API 256-bit)"). */
    String name();

    // ------------------------------------------------------------------ memory

    /** Uninitialised-or-zero tensor (backend's choice; CPU zero-fills). */
    Tensor empty(DType dtype, Shape shape);

    /** Zero-filled tensor. */
    Tensor zeros(DType dtype, Shape shape);

    /** Copies a host tensor to this backend's device, keeping its dtype. Returns a new owned tensor. */
    Tensor upload(Tensor host);

    /** Copies a tensor of this backend to a new host tensor (same dtype). */
    Tensor toHost(Tensor x);

    /** Waits until all queued work of this backend on the calling thread is done (no-op on CPU). */
    default void synchronize() {}

    @Override default void close() {}

    // ------------------------------------------------------------------ layout

    /** Contiguous copy. */
    Tensor copy(Tensor x);

    /** Element-wise conversion with PyTorch's rounding (RNE; fp8 NaN/inf rules of {@link DType}). */
    Tensor cast(Tensor x, DType dtype);

    /** Same data, new shape; zero-copy. */
    default Tensor reshape(Tensor x, long... dims) { return x.view(dims); }

    /** out = x.permute(perm).contiguous(). */
    Tensor permute(Tensor x, int... perm);

    /** out = x[..., start:end, ...] along {@code dim} (a copy). */
    Tensor slice(Tensor x, int dim, long start, long end);

    /** Concatenation along {@code dim}; all other dims must match; dtype of the first. */
    Tensor concat(int dim, Tensor... xs);

    /**
     * dst[..., start:start+n, ...] = src along {@code dim}, with n = src.dim(dim): the inverse of {@link #slice}, written
     * into the existing tensor {@code dst} (which this call changes; nothing is returned). Every other dim of src must
     * equal dst's; src is converted to dst's dtype with {@link #cast}'s rounding.
     */
    void writeSlice(Tensor dst, int dim, long start, Tensor src);

    /**
     * Constant padding as {@code torch.nn.functional.pad(x, pads, value=value)}: {@code pads} lists
     * (before, after) pairs starting from the LAST dimension. Negative pads crop.
     */
    Tensor pad(Tensor x, long[] pads, float value);

    // ------------------------------------------------------------------ linear algebra

    /** y = x·Wᵀ + b. x:[..., in], w:[out, in], bias:[out] or null → [..., out]. */
    Tensor linear(Tensor x, Tensor w, Tensor bias);

    /**
     * Batched matrix product: a:[..., M, K] · b:[..., K, N] → [..., M, N]; batch dims broadcast as in torch.matmul
     * (rank ≥ 2 both).
     */
    Tensor matmul(Tensor a, Tensor b);

    /**
     * Multi-head scaled-dot-product attention, per batch b and head h:
     * out = softmax(q·kᵀ·scale + bias)·v. q:[B, Lq, H, d], k:[B, Lk, H, d], v:[B, Lk, H, dv] → [B, Lq, H, dv].
     * bias: null, or F32 additive bias broadcastable to [B, H, Lq, Lk] (use -inf to mask). Rows that are fully
     * masked give 0.
     */
    Tensor attention(Tensor q, Tensor k, Tensor v, Tensor bias, float scale);

    /**
     * {@link #attention} plus the log-sum-exp of each row's logits: lse[b, h, i] = log Σ_j exp(q_i·k_j·scale + bias_ij),
     * F32 [B, Lq] per head, laid out [B, H, Lq]; −∞ (and out = 0) for fully masked rows. Attention over a key set split
     * into blocks is recovered exactly by {@link #mergeAttention} (ring attention). The default computes on the host
     * (correct everywhere, slow on a GPU); backends override it.
     */
    default PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        return HostAttention.attentionWithLse(this, q, k, v, bias, scale);
    }

    /**
     * Log-sum-exp merge of two {@link PartialAttention}s of the same queries over disjoint key sets:
     * lse = log(e^lse_a + e^lse_b), out = e^(lse_a−lse)·out_a + e^(lse_b−lse)·out_b (rows where both are −∞ give 0).
     * Output dtype: a.out's. The default computes on the host; backends override it.
     */
    default PartialAttention mergeAttention(PartialAttention a, PartialAttention b) {
        return HostAttention.merge(this, a, b);
    }

    // ------------------------------------------------------------------ normalisation

    /** y = (x−μ)/√(σ²+eps)·w + b over the last dim; w, b nullable (no affine). */
    Tensor layerNorm(Tensor x, Tensor weight, Tensor bias, float eps);

    /** y = x·rsqrt(mean(x²)+eps)·w over the last dim; w nullable. */
    Tensor rmsNorm(Tensor x, Tensor weight, float eps);

    /**
     * Group normalisation of x:[N, C, ...] in {@code groups} groups of C/groups channels (statistics over the
     * group's channels and all spatial positions), then per-channel affine w, b (nullable).
     */
    Tensor groupNorm(Tensor x, int groups, Tensor weight, Tensor bias, float eps);

    /**
     * silu(groupNorm(x, groups, weight, bias, eps)), the normalised value rounded to x's dtype before the SiLU (what the
     * two ops store). Backends may fuse it; the default composes the two.
     */
    default Tensor groupNormSilu(Tensor x, int groups, Tensor weight, Tensor bias, float eps) {
        Tensor n = groupNorm(x, groups, weight, bias, eps);
        Tensor out = silu(n);
        n.close();
        return out;
    }

    /**
     * Partial sums of a group normalisation whose positions are spread over several tensors (e.g. the row slabs of a
     * spatially split image). x:[N, C, ...] in {@code groups} groups of C/groups channels; center: null (= 0) or F32
     * [N, groups]. Returns F32 [N, groups, 2] with, over the group's channels and all positions of x,
     * <pre>
     *   out[n, g, 0] = Σ (x − center[n, g]),   out[n, g, 1] = Σ (x − center[n, g])²
     * </pre>
     * accumulated in at least f32. {@link #groupNorm}'s two-pass statistics of the whole tensor follow from the sums over
     * all pieces (count = C/groups · all positions): mean = Σ out[n, g, 0] / count with center null, then
     * var = Σ out[n, g, 1] / count with center = mean. The default composes other ops on the device; backends may
     * override it.
     */
    default Tensor groupStats(Tensor x, int groups, Tensor center) {
        return GroupNormParts.groupStats(this, x, groups, center);
    }

    /**
     * Group normalisation with statistics given from outside (e.g. reduced over all ranks of a spatial split):
     * y = (x − mean[n, g]) / √(var[n, g] + eps) · w[c] + b[c] for channel c of group g; x:[N, C, ...], mean, var: F32
     * [N, groups], w, b:[C] or null. {@code groupNorm(x, groups, w, b, eps)} equals this with the mean and (biased)
     * variance of x's own groups. The default composes other ops on the device, except that it reads the [N, groups]
     * variances back to the host to form 1/√(var + eps) (a synchronisation, as Ops has no reciprocal square root);
     * backends may override it.
     */
    default Tensor groupNormWithStats(Tensor x, int groups, Tensor mean, Tensor var, Tensor weight, Tensor bias, float eps) {
        return GroupNormParts.groupNormWithStats(this, x, groups, mean, var, weight, bias, eps);
    }

    // ------------------------------------------------------------------ position

    /**
     * Rotary embedding, adjacent-pair convention: for pair i of each head vector,
     * out[2i] = x[2i]·cos − x[2i+1]·sin; out[2i+1] = x[2i]·sin + x[2i+1]·cos, with cos/sin = cos[l, i], sin[l, i].
     * x:[B, L, H, d]; cos, sin: F32 [L, d/2] (same for every batch and head) or [B, L, d/2].
     */
    Tensor rope(Tensor x, Tensor cos, Tensor sin);

    // ------------------------------------------------------------------ element-wise

    /** a + b with broadcasting (numpy rules). */
    Tensor add(Tensor a, Tensor b);

    /** a − b with broadcasting. */
    Tensor sub(Tensor a, Tensor b);

    /** a · b with broadcasting. */
    Tensor mul(Tensor a, Tensor b);

    /** x · s. */
    Tensor scale(Tensor x, float s);

    /** x·σ(x). */
    Tensor silu(Tensor x);

    /** GELU: tanh approximation 0.5x(1+tanh(√(2/π)(x+0.044715x³))) when {@code tanh}, else 0.5x(1+erf(x/√2)). */
    Tensor gelu(Tensor x, boolean tanh);

    /** softmax over the last dim. */
    Tensor softmax(Tensor x);

    /** out = x·(1+scale)+shift, x:[B, L, D], shift, scale:[B, D] (broadcast over L). */
    Tensor modulate(Tensor x, Tensor shift, Tensor scale);

    /** out = residual + gate·y, residual, y:[B, L, D], gate:[B, D] (broadcast over L). */
    Tensor gatedResidual(Tensor residual, Tensor gate, Tensor y);

    // ------------------------------------------------------------------ reductions to the host

    /**
     * The two sums of a relative L1 distance between a signal a and its reference b: {@code {Σ|a − b|, Σ|b|}} over all
     * elements, each difference taken in f32 and rounded to a's dtype (as PyTorch's {@code a - b}), summed in double.
     * a, b: same shape, floating. The sums are host values, so the call waits for the work queued before it (one
     * synchronisation, what the reference implementations' {@code .item()} costs). Step caches decide from them
     * (TeaCache, First-Block Cache: mean|x − ref| / mean|ref|); a sequence-parallel group adds the ranks' sums.
     * The default reads both tensors on the host ({@link #toHost} off the CPU) in chunks of
     * {@link HostReductions#CHUNK}; backends may reduce on the device.
     */
    default double[] absSums(Tensor a, Tensor b) { return HostReductions.absSums(this, a, b); }

    // ------------------------------------------------------------------ convolution and resampling

    /** 2-D convolution as torch: x:[N, C, H, W], w:[O, C/groups, kh, kw], bias:[O] or null. */
    Tensor conv2d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding, int groups);

    /** 3-D convolution as torch: x:[N, C, T, H, W], w:[O, C, kt, kh, kw], bias:[O] or null (zero padding). */
    Tensor conv3d(Tensor x, Tensor w, Tensor bias, int[] stride, int[] padding);

    /** Nearest-neighbour upsampling of the last two dims by an integer factor. */
    Tensor upsampleNearest2d(Tensor x, int factor);

    // ------------------------------------------------------------------ fused forms (backends may override)

    /** modulate(layerNorm(x, no affine, eps), shift, scale). The adaLN step of DiT blocks. */
    default Tensor layerNormModulate(Tensor x, Tensor shift, Tensor scale, float eps) {
        Tensor n = layerNorm(x, null, null, eps);
        Tensor out = modulate(n, shift, scale);
        n.close();
        return out;
    }

    /** gelu(linear(x, w, b), tanh). */
    default Tensor linearGelu(Tensor x, Tensor w, Tensor bias, boolean tanh) {
        Tensor h = linear(x, w, bias);
        Tensor out = gelu(h, tanh);
        h.close();
        return out;
    }

    /** rope(rmsNorm(x, w, eps), cos, sin) for q/k of shape [B, L, H, d] (the norm is per head vector). */
    default Tensor rmsNormRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        Tensor n = rmsNorm(x, w, eps);
        Tensor out = rope(n, cos, sin);
        n.close();
        return out;
    }

    /**
     * RMS norm of each token's whole vector of H·d values (all heads together, as Wan's q/k norm), scaled by
     * w:[H·d] (nullable), then {@link #rope} per head: x:[B, L, H, d] →
     * rope(reshape(rmsNorm(reshape(x, B, L, H·d), w, eps), B, L, H, d), cos, sin); cos, sin as in {@link #rope}.
     */
    default Tensor rmsNormAcrossHeadsRope(Tensor x, Tensor w, float eps, Tensor cos, Tensor sin) {
        if (x.rank() != 4) throw new IllegalArgumentException("x must have shape [B, L, H, d], got " + x.shape());
        long b = x.dim(0), l = x.dim(1), h = x.dim(2), d = x.dim(3);
        Tensor n = rmsNorm(reshape(x, b, l, h * d), w, eps);
        Tensor out = rope(reshape(n, b, l, h, d), cos, sin);
        n.close();
        return out;
    }

    // ------------------------------------------------------------------ fused forms writing into a part of a tensor
    // These let a model lay out [a ‖ b] (a joint sequence, a concatenated feature vector) without a concat copy: each
    // part is written where it belongs. They change {@code out} (or q, k, v) in place and return nothing.

    /**
     * out[..., col:col+N] = gelu(x·Wᵀ + b, tanh) with N = w.dim(0): {@link #linearGelu} written into columns
     * [col, col + N) of out:[..., W] (out's leading dims equal x's; W ≥ col + N).
     */
    default void linearGeluInto(Tensor out, long col, Tensor x, Tensor w, Tensor bias, boolean tanh) {
        Tensor h = linearGelu(x, w, bias, tanh);
        writeSlice(out, out.rank() - 1, col, h);
        h.close();
    }

    /**
     * A hint that q, k, v ([B, L, H, d], as for {@link #attention}) are complete and will be passed unchanged to this
     * object's next attention call, and that the work queued in between does not touch them. A sequence-parallel
     * decorator starts exchanging them here, so independent work (the MLP of a Flux single block) overlaps the exchange.
     * Default: nothing.
     */
    default void prefetchAttention(Tensor q, Tensor k, Tensor v) {}

    /**
     * out[b, l, col:col+H·dv] = attention(q, k, v, bias, scale)[b, l] flattened over (H, dv): {@link #attention} written
     * into columns [col, col + H·dv) of out:[B, Lq, W].
     */
    default void attentionInto(Tensor out, long col, Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
        Tensor a = attention(q, k, v, bias, scale);
        writeSlice(out, 2, col, reshape(a, a.dim(0), a.dim(1), a.dim(2) * a.dim(3)));
        a.close();
    }

    /**
     * Attention inputs from a fused projection. qkv:[B, L, 3·H·d] holds, per token, q ‖ k ‖ v (each H heads of d, the
     * layout of a [B, L, 3, H, d] view); q, k, v:[B, Lt, H, d] are existing tensors with Lt ≥ offset + L. Writes rows
     * [offset, offset + L) of them:
     * q[:, offset+l] = rope(rmsNorm(qkv[:, l, 0], qWeight, eps), cos, sin)[l], k likewise with kWeight, and
     * v[:, offset+l] = qkv[:, l, 2]. The RMS norm is per head vector (over d); cos, sin: F32 [L, d/2] or [B, L, d/2]
     * (the rows of this segment), as in {@link #rope}. Lets the parts of a joint sequence go straight to their rows.
     */
    default void qkvNormRopeInto(Tensor qkv, Tensor qWeight, Tensor kWeight, float eps, Tensor cos, Tensor sin,
                                 Tensor q, Tensor k, Tensor v, long offset) {
        long b = qkv.dim(0), len = qkv.dim(1), h = q.dim(2), d = q.dim(3);
        if (qkv.rank() != 3 || qkv.dim(2) != 3 * h * d)
            throw new IllegalArgumentException("qkv must have shape [B, L, 3·H·d] = [" + b + ", L, " + 3 * h * d + "] for q "
                    + q.shape() + ", got " + qkv.shape());
        Tensor parts = reshape(qkv, b, len, 3, h, d);
        Tensor[] dst = {q, k, v};
        for (int i = 0; i < 3; i++) {
            Tensor s = slice(parts, 2, i, i + 1);
            Tensor part = reshape(s, b, len, h, d);
            Tensor r = i == 2 ? part : rmsNormRope(part, i == 0 ? qWeight : kWeight, eps, cos, sin);
            writeSlice(dst[i], 1, offset, r);
            if (r != part) r.close();
            s.close();
        }
    }
}
