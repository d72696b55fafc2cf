package org.dit4j.models.vae.wan;

import static org.dit4j.models.vae.wan.WanVaeBlocks.swap;

import java.util.ArrayList;
import java.util.List;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.vae.wan.WanVaeBlocks.CausalCache;
import org.dit4j.models.vae.wan.WanVaeBlocks.CausalConv3d;
import org.dit4j.models.vae.wan.WanVaeBlocks.Layer;
import org.dit4j.models.vae.wan.WanVaeBlocks.MidBlock;
import org.dit4j.models.vae.wan.WanVaeBlocks.Mode;
import org.dit4j.models.vae.wan.WanVaeBlocks.Resample;
import org.dit4j.models.vae.wan.WanVaeBlocks.ResidualBlock;
import org.dit4j.models.vae.wan.WanVaeBlocks.RmsNorm;
import org.dit4j.models.vae.wan.WanVaeBlocks.Slots;

/**
 * The encoder, one chunk of the stream at a time: video [N, in, t, H, W] → moments [N, 2z, t', H/f, W/f] (before
 * {@code conv1}, which {@link #moments} applies to the whole latent). conv1 (causal 3³, in → base); per level
 * numResBlocks residual blocks then (all but the last level) downsample2d or downsample3d; mid block; RMS_norm, SiLU,
 * causal 3³ conv to 2z.
 */
final class WanVaeEncoder {
    private final Slots slots = new Slots();
    private final CausalConv3d convIn;
    private final List<Layer> layers = new ArrayList<>();
    private final MidBlock mid;
    private final RmsNorm normOut;
    private final CausalConv3d convOut;
    private final CausalConv3d quantConv;

    WanVaeEncoder(WanVaeWeights w) {
        WanVaeConfig cfg = w.config();
        convIn = CausalConv3d.of(w, "encoder.conv1", slots);
        for (int i = 0; i < cfg.levels(); i++) {
            for (int j = 0; j < cfg.numResBlocks(); j++)
                layers.add(ResidualBlock.of(w, "encoder.downsamples." + WanVaeWeights.encoderIndex(cfg, i, j), slots));
            if (i < cfg.levels() - 1)
                layers.add(Resample.of(w, "encoder.downsamples." + WanVaeWeights.encoderIndex(cfg, i, cfg.numResBlocks()),
                        cfg.temporalDownsample(i) ? Mode.DOWNSAMPLE_3D : Mode.DOWNSAMPLE_2D, slots));
        }
        mid = MidBlock.of(w, "encoder", slots);
        normOut = RmsNorm.of(w, "encoder.head.0");
        convOut = CausalConv3d.of(w, "encoder.head.2", slots);
        quantConv = CausalConv3d.of(w, "conv1", slots);
    }

    /** A fresh streaming state for one video. */
    CausalCache newCache() { return slots.newCache(); }

    /** One chunk: x:[N, in, t, H, W] → [N, 2z, t', H/f, W/f]. */
    Tensor forward(Ops ops, Tensor x, CausalCache cache) {
        try (Scope s = Scope.open()) {
            Tensor h = convIn.forward(ops, x, cache);
            for (Layer l : layers) h = swap(h, l.forward(ops, h, cache));
            h = swap(h, mid.forward(ops, h, cache));
            h = swap(h, normOut.forwardSilu(ops, h));
            h = swap(h, convOut.forward(ops, h, cache));
            return s.keep(h);
        }
    }

    /** conv1 (1³) on the concatenated chunks: [N, 2z, F, h, w] → mean ‖ log-variance, same shape. */
    Tensor moments(Ops ops, Tensor h) { return quantConv.forward(ops, h, null); }
}
