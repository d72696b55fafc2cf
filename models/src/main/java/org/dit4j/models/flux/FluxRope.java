package org.dit4j.models.flux;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.models.nn.Rope;

/**
 * Flux's 3-axis RoPE (models.md §1.4). Positions are ids (axis0, row, col) per token: text tokens (0,0,0), image
 * tokens (0, h, w), Kontext reference tokens (1, h, w). The sequence is text first, then image, so the tables'
 * rows are [txt ids ‖ img ids]. Tables are built on the host in double and uploaded as F32 [L, d/2].
 */
public final class FluxRope {
    private FluxRope() {}

    /** Uploaded cos/sin tables, split into the text rows [0, Ntxt) and the image rows [Ntxt, L). */
    public record Tables(Tensor cos, Tensor sin, Tensor cosTxt, Tensor sinTxt, Tensor cosImg, Tensor sinImg) implements AutoCloseable {
        @Override public void close() {
            cos.close();
            sin.close();
            cosTxt.close();
            sinTxt.close();
            cosImg.close();
            sinImg.close();
        }
    }

    /** Host F32 tables [Ntxt+Nimg, d/2] for ids txtIds:[Ntxt, 3] then imgIds:[Nimg, 3]. */
    public static Rope.Tables hostTables(FluxConfig cfg, float[][] txtIds, float[][] imgIds) {
        float[][] pos = new float[txtIds.length + imgIds.length][];
        System.arraycopy(txtIds, 0, pos, 0, txtIds.length);
        System.arraycopy(imgIds, 0, pos, txtIds.length, imgIds.length);
        return Rope.tables(pos, cfg.axesDim(), cfg.theta());
    }

    /** Builds and uploads the tables for one forward. */
    public static Tables tables(Ops ops, FluxConfig cfg, float[][] txtIds, float[][] imgIds) {
        Rope.Tables h = hostTables(cfg, txtIds, imgIds);
        int nTxt = txtIds.length, len = txtIds.length + imgIds.length;
        Tensor cos = ops.upload(h.cos()), sin = ops.upload(h.sin());
        h.cos().close();
        h.sin().close();
        return new Tables(cos, sin, ops.slice(cos, 0, 0, nTxt), ops.slice(sin, 0, 0, nTxt),
                ops.slice(cos, 0, nTxt, len), ops.slice(sin, 0, nTxt, len));
    }

    /** Rows of an ids tensor [N, 3] (host or device, any float dtype) as float triples. */
    public static float[][] ids(Ops ops, Tensor ids) {
        if (ids.rank() != 2 || ids.dim(1) != 3)
            throw new IllegalArgumentException("Flux position ids must be [N, 3] (axis0, row, col), got " + ids.shape());
        Tensor h = ids.device().isCpu() ? ids : ops.toHost(ids);
        float[] flat = h.toFloatArray();
        if (h != ids) h.close();
        float[][] out = new float[Math.toIntExact(ids.dim(0))][3];
        for (int i = 0; i < out.length; i++) System.arraycopy(flat, 3 * i, out[i], 0, 3);
        return out;
    }
}
