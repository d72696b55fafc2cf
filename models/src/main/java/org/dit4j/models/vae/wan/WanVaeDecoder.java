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
 * The decoder, one chunk of latent frames at a time: raw latent [N, z, f, h, w] (after {@code conv2}, which
 * {@link #postQuant} applies to the whole latent) → video [N, out, t, h·s, w·s]. conv1 (causal 3³, z → C_deepest);
 * mid block; levels from the deepest to the finest, each numResBlocks+1 residual blocks then (all but the last)
 * upsample3d or upsample2d (which halve the channels); RMS_norm, SiLU, causal 3³ conv to the output channels.
 * The stream's first latent frame gives 1 video frame, every later one temporalFactor frames.
 */
final class WanVaeDecoder {
    private final Slots slots = new Slots();
    private final CausalConv3d postQuantConv;
    private final CausalConv3d convIn;
    private final MidBlock mid;
    private final List<Layer> layers = new ArrayList<>();
    private final RmsNorm normOut;
    private final CausalConv3d convOut;

    WanVaeDecoder(WanVaeWeights w) {
        WanVaeConfig cfg = w.config();
        int levels = cfg.levels();
        postQuantConv = CausalConv3d.of(w, "conv2", slots);
        convIn = CausalConv3d.of(w, "decoder.conv1", slots);
        mid = MidBlock.of(w, "decoder", slots);
        for (int i = 0; i < levels; i++) {
            for (int j = 0; j <= cfg.numResBlocks(); j++)
                layers.add(ResidualBlock.of(w, "decoder.upsamples." + WanVaeWeights.decoderIndex(cfg, i, j), slots));
            if (i < levels - 1)
                layers.add(Resample.of(w, "decoder.upsamples." + WanVaeWeights.decoderIndex(cfg, i, cfg.numResBlocks() + 1),
                        cfg.temporalDownsample(levels - 2 - i) ? Mode.UPSAMPLE_3D : Mode.UPSAMPLE_2D, slots));
        }
        normOut = RmsNorm.of(w, "decoder.head.0");
        convOut = CausalConv3d.of(w, "decoder.head.2", slots);
    }

    /** A fresh streaming state for one latent. */
    CausalCache newCache() { return slots.newCache(); }

    /** conv2 (1³) on the whole raw latent [N, z, F, h, w] → same shape. */
    Tensor postQuant(Ops ops, Tensor z) { return postQuantConv.forward(ops, z, null); }

    /** One chunk: x:[N, z, f, h, w] (after {@link #postQuant}) → [N, out, t, h·s, w·s]. */
    Tensor forward(Ops ops, Tensor x, CausalCache cache) {
        try (Scope s = Scope.open()) {
            Tensor h = convIn.forward(ops, x, cache);
            h = swap(h, mid.forward(ops, h, cache));
            for (Layer l : layers) h = swap(h, l.forward(ops, h, cache));
            h = swap(h, normOut.forwardSilu(ops, h));
            h = swap(h, convOut.forward(ops, h, cache));
            return s.keep(h);
        }
    }
}
