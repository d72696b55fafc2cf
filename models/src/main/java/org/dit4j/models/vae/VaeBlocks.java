package org.dit4j.models.vae;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Conv2d;
import org.dit4j.models.nn.GroupNorm;
import org.dit4j.models.nn.Linear;

/** The building blocks of the KL autoencoder (models.md §1.10), each reading its weights by canonical name. */
final class VaeBlocks {
    private VaeBlocks() {}

    /** Closes {@code old} (an intermediate this code owns) and returns {@code next}: h = swap(h, f(h)). */
    static Tensor swap(Tensor old, Tensor next) {
        old.close();
        return next;
    }

    /**
     * ResnetBlock(cin → cout): h = conv2(SiLU(GN2(conv1(SiLU(GN1(x)))))); out = shortcut(x) + h, where shortcut is a
     * 1×1 conv when cin ≠ cout, else the identity. (diffusers ResnetBlock2D without time embedding, dropout 0,
     * output_scale_factor 1.)
     */
    record ResnetBlock(GroupNorm norm1, Conv2d conv1, GroupNorm norm2, Conv2d conv2, Conv2d shortcut) {

        static ResnetBlock of(VaeWeights w, String p) {
            boolean sc = w.has(p + ".nin_shortcut.weight");
            return new ResnetBlock(w.norm(p + ".norm1"), w.conv(p + ".conv1"), w.norm(p + ".norm2"), w.conv(p + ".conv2"),
                    sc ? w.conv(p + ".nin_shortcut") : null);
        }

        /** x:[N, cin, H, W] → [N, cout, H, W]. */
        Tensor forward(Ops ops, Tensor x) {
            try (Scope s = Scope.open()) {
                Tensor h = norm1.forwardSilu(ops, x);
                h = swap(h, conv1.forward(ops, h));
                h = swap(h, norm2.forwardSilu(ops, h));
                h = swap(h, conv2.forward(ops, h));
                Tensor res = shortcut == null ? x : shortcut.forward(ops, x);
                return s.keep(ops.add(res, h));
            }
        }
    }

    /**
     * Mid-block self-attention over the H·W positions, one head of width C: n = GN(x); q, k, v = Linear(n) per
     * position; out = x + proj_out(softmax(q·kᵀ/√C)·v). (diffusers Attention with group norm, residual connection,
     * rescale 1; BFL AttnBlock with 1×1 convs.)
     */
    record AttnBlock(GroupNorm norm, Linear q, Linear k, Linear v, Linear proj) {

        static AttnBlock of(VaeWeights w, String p) {
            return new AttnBlock(w.norm(p + ".norm"), w.linear(p + ".q"), w.linear(p + ".k"), w.linear(p + ".v"),
                    w.linear(p + ".proj_out"));
        }

        /** x:[N, C, H, W] → same shape. */
        Tensor forward(Ops ops, Tensor x) {
            long n = x.dim(0), c = x.dim(1), h = x.dim(2), w = x.dim(3), l = h * w;
            try (Scope s = Scope.open()) {
                Tensor normed = norm.forward(ops, x);
                Tensor tokens = ops.permute(normed.view(n, c, l), 0, 2, 1);             // [N, HW, C]
                normed.close();
                Tensor qh = q.forward(ops, tokens).view(n, l, 1, c);                    // [N, HW, 1, C]
                Tensor kh = k.forward(ops, tokens).view(n, l, 1, c);
                Tensor vh = v.forward(ops, tokens).view(n, l, 1, c);
                tokens.close();
                Tensor a = ops.attention(qh, kh, vh, null, (float) (1.0 / Math.sqrt(c)));
                qh.close();
                kh.close();
                vh.close();
                Tensor o = proj.forward(ops, a.view(n, l, c));                          // [N, HW, C]
                a.close();
                Tensor back = ops.permute(o, 0, 2, 1);                                  // [N, C, HW]
                o.close();
                return s.keep(ops.add(x, back.view(n, c, h, w)));
            }
        }
    }

    /** Mid block: ResnetBlock, attention (optional), ResnetBlock, at the coarsest level's channels. */
    record MidBlock(ResnetBlock block1, AttnBlock attn, ResnetBlock block2) {

        static MidBlock of(VaeWeights w, String part, boolean attention) {
            String p = part + ".mid.";
            return new MidBlock(ResnetBlock.of(w, p + "block_1"), attention ? AttnBlock.of(w, p + "attn_1") : null,
                    ResnetBlock.of(w, p + "block_2"));
        }

        /** x:[N, C, h, w] → same shape. */
        Tensor forward(Ops ops, Tensor x) {
            Tensor h = block1.forward(ops, x);
            if (attn != null) h = swap(h, attn.forward(ops, h));
            return swap(h, block2.forward(ops, h));
        }
    }
}
