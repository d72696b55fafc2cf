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
 * The encoder: image [N, in, H, W] → moments [N, 2·L, H/f, W/f] (mean ‖ log-variance), f = 2^(levels−1).
 * conv_in; per level i: layersPerBlock ResnetBlocks, then (all but the last level) Downsample = zero-pad
 * (left 0, right 1, top 0, bottom 1) + 3×3 conv stride 2 without padding; mid block; GN; SiLU; conv_out;
 * quant_conv (1×1) when present.
 */
final class VaeEncoder {
    private final Conv2d convIn;
    private final List<List<ResnetBlock>> levels = new ArrayList<>();
    private final List<Conv2d> downsamples = new ArrayList<>();
    private final MidBlock mid;
    private final GroupNorm normOut;
    private final Conv2d convOut;
    private final Conv2d quantConv;

    VaeEncoder(VaeWeights w) {
        VaeConfig cfg = w.config();
        convIn = w.conv("encoder.conv_in");
        for (int i = 0; i < cfg.levels(); i++) {
            List<ResnetBlock> blocks = new ArrayList<>();
            for (int j = 0; j < cfg.layersPerBlock(); j++) blocks.add(ResnetBlock.of(w, "encoder.down." + i + ".block." + j));
            levels.add(blocks);
            downsamples.add(i < cfg.levels() - 1 ? w.conv("encoder.down." + i + ".downsample.conv", 2, 0) : null);
        }
        mid = MidBlock.of(w, "encoder", cfg.midAttention());
        normOut = w.norm("encoder.norm_out");
        convOut = w.conv("encoder.conv_out");
        quantConv = cfg.useQuantConv() ? w.conv("quant_conv") : null;
    }

    /** x:[N, in, H, W] (H, W multiples of f) → moments [N, 2L, H/f, W/f]. */
    Tensor forward(Ops ops, Tensor x) {
        try (Scope s = Scope.open()) {
            Tensor h = convIn.forward(ops, x);
            for (int i = 0; i < levels.size(); i++) {
                for (ResnetBlock b : levels.get(i)) h = swap(h, b.forward(ops, h));
                Conv2d down = downsamples.get(i);
                if (down != null) {
                    h = swap(h, ops.pad(h, new long[] {0, 1, 0, 1}, 0f));           // [N, C, H+1, W+1]
                    h = swap(h, down.forward(ops, h));                             // [N, C, H/2, W/2]
                }
            }
            h = swap(h, mid.forward(ops, h));
            h = swap(h, normOut.forwardSilu(ops, h));
            h = swap(h, convOut.forward(ops, h));
            if (quantConv != null) h = swap(h, quantConv.forward(ops, h));
            return s.keep(h);
        }
    }
}
