package org.dit4j.models.vae;

import static org.dit4j.models.vae.VaeBlocks.swap;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Conv2d;
import org.dit4j.models.nn.GroupNorm;
import org.dit4j.models.vae.VaeBlocks.MidBlock;
import org.dit4j.models.vae.VaeBlocks.ResnetBlock;

/**
 * The decoder: raw latent [N, L, h, w] → image [N, out, h·f, w·f], f = 2^(levels−1).
 * post_quant_conv (1×1) when present; conv_in; mid block; levels from the coarsest (i = levels−1) to the finest
 * (i = 0), each layersPerBlock+1 ResnetBlocks then (all but level 0) Upsample = nearest ×2 + 3×3 conv;
 * GN; SiLU; conv_out. The output is not clamped.
 */
final class VaeDecoder {
    private final Conv2d postQuantConv;
    private final Conv2d convIn;
    private final MidBlock mid;
    /** Levels in the order they run: index 0 = canonical level levels−1 (diffusers up_blocks.0). */
    private final List<List<ResnetBlock>> levels = new ArrayList<>();
    private final List<Conv2d> upsamples = new ArrayList<>();
    private final GroupNorm normOut;
    private final Conv2d convOut;

    VaeDecoder(VaeWeights w) {
        VaeConfig cfg = w.config();
        postQuantConv = cfg.usePostQuantConv() ? w.conv("post_quant_conv") : null;
        convIn = w.conv("decoder.conv_in");
        mid = MidBlock.of(w, "decoder", cfg.midAttention());
        for (int i = cfg.levels() - 1; i >= 0; i--) {
            List<ResnetBlock> blocks = new ArrayList<>();
            for (int j = 0; j <= cfg.layersPerBlock(); j++) blocks.add(ResnetBlock.of(w, "decoder.up." + i + ".block." + j));
            levels.add(blocks);
            upsamples.add(i > 0 ? w.conv("decoder.up." + i + ".upsample.conv") : null);
        }
        normOut = w.norm("decoder.norm_out");
        convOut = w.conv("decoder.conv_out");
    }

    /** z:[N, L, h, w] (raw, unscaled) → [N, out, h·f, w·f]. */
    Tensor forward(Ops ops, Tensor z) {
        try (Scope s = Scope.open()) {
            Tensor h = postQuantConv == null ? convIn.forward(ops, z) : postQuantConv.forward(ops, z);
            if (postQuantConv != null) h = swap(h, convIn.forward(ops, h));
            h = swap(h, mid.forward(ops, h));
            for (int k = 0; k < levels.size(); k++) {
                for (ResnetBlock b : levels.get(k)) h = swap(h, b.forward(ops, h));
                Conv2d up = upsamples.get(k);
                if (up != null) {
                    h = swap(h, ops.upsampleNearest2d(h, 2));                      // [N, C, 2h, 2w]
                    h = swap(h, up.forward(ops, h));
                }
            }
            h = swap(h, normOut.forwardSilu(ops, h));
            h = swap(h, convOut.forward(ops, h));
            return s.keep(h);
        }
    }
}
