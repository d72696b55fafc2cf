package org.dit4j.server.nodes;

import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.engine.Latent;
import org.dit4j.server.engine.Vae;

/** EmptySD3LatentImage, EmptyLatentImage, EmptyHunyuanLatentVideo, VAEDecode, VAEDecodeTiled, VAEEncode. */
final class LatentNodes {

    private LatentNodes() {}

    static final int MAX_RESOLUTION = 16384;

    static void register(NodeCatalog c) {
        c.register(new SimpleNode("EmptySD3LatentImage", env -> NodeSchema.builder("EmptySD3LatentImage").category("latent/sd3")
                .module("comfy_extras.nodes_sd3")
                .required("width", InputSpec.of("INT", "default", 1024, "min", 16, "max", MAX_RESOLUTION, "step", 16))
                .required("height", InputSpec.of("INT", "default", 1024, "min", 16, "max", MAX_RESOLUTION, "step", 16))
                .required("batch_size", InputSpec.of("INT", "default", 1, "min", 1, "max", 4096))
                .output("LATENT").build(),
                call -> NodeResult.of(Latent.zeros(call.integer("batch_size"), 16, call.integer("height") / 8, call.integer("width") / 8))));

        c.register(new SimpleNode("EmptyLatentImage", env -> NodeSchema.builder("EmptyLatentImage").display("Empty Latent Image")
                .category("latent").description("Create a new batch of empty latent images to be denoised via sampling.")
                .required("width", InputSpec.of("INT", "default", 512, "min", 16, "max", MAX_RESOLUTION, "step", 8,
                        "tooltip", "The width of the latent images in pixels."))
                .required("height", InputSpec.of("INT", "default", 512, "min", 16, "max", MAX_RESOLUTION, "step", 8,
                        "tooltip", "The height of the latent images in pixels."))
                .required("batch_size", InputSpec.of("INT", "default", 1, "min", 1, "max", 4096,
                        "tooltip", "The number of latent images in the batch."))
                .output("LATENT").build(),
                call -> NodeResult.of(Latent.zeros(call.integer("batch_size"), 4, call.integer("height") / 8, call.integer("width") / 8))));

        c.register(new SimpleNode("EmptyHunyuanLatentVideo", env -> NodeSchema.builder("EmptyHunyuanLatentVideo").category("latent/video")
                .module("comfy_extras.nodes_hunyuan")
                .required("width", InputSpec.of("INT", "default", 848, "min", 16, "max", MAX_RESOLUTION, "step", 16))
                .required("height", InputSpec.of("INT", "default", 480, "min", 16, "max", MAX_RESOLUTION, "step", 16))
                .required("length", InputSpec.of("INT", "default", 25, "min", 1, "max", MAX_RESOLUTION, "step", 4))
                .required("batch_size", InputSpec.of("INT", "default", 1, "min", 1, "max", 4096))
                .output("LATENT").build(),
                call -> NodeResult.of(Latent.zeros(call.integer("batch_size"), 16, ((call.integer("length") - 1) / 4) + 1,
                        call.integer("height") / 8, call.integer("width") / 8))));

        c.register(new SimpleNode("VAEDecode", env -> NodeSchema.builder("VAEDecode").display("VAE Decode").category("latent")
                .description("Decodes latent images back into pixel space images.")
                .required("samples", InputSpec.of("LATENT", "tooltip", "The latent to be decoded."))
                .required("vae", InputSpec.of("VAE", "tooltip", "The VAE model used for decoding the latent."))
                .output("IMAGE").build(),
                call -> NodeResult.of(call.get("vae", Vae.class).decode(call.get("samples", Latent.class)))));

        c.register(new SimpleNode("VAEDecodeTiled", env -> NodeSchema.builder("VAEDecodeTiled").display("VAE Decode (Tiled)").category("_for_testing")
                .required("samples", "LATENT").required("vae", "VAE")
                .required("tile_size", InputSpec.of("INT", "default", 512, "min", 64, "max", 4096, "step", 32))
                .required("overlap", InputSpec.of("INT", "default", 64, "min", 0, "max", 4096, "step", 32))
                .required("temporal_size", InputSpec.of("INT", "default", 64, "min", 8, "max", 4096, "step", 4,
                        "tooltip", "Only used for video VAEs: Amount of frames to decode at a time."))
                .required("temporal_overlap", InputSpec.of("INT", "default", 8, "min", 4, "max", 4096, "step", 4,
                        "tooltip", "Only used for video VAEs: Amount of frames to overlap."))
                .output("IMAGE").build(),
                call -> {
                    int tile = call.int32("tile_size"), overlap = call.int32("overlap");
                    if (tile < overlap * 4) overlap = tile / 4;
                    return NodeResult.of(call.get("vae", Vae.class).decodeTiled(call.get("samples", Latent.class), tile, overlap));
                }));

        c.register(new SimpleNode("VAEEncode", env -> NodeSchema.builder("VAEEncode").display("VAE Encode").category("latent")
                .required("pixels", "IMAGE").required("vae", "VAE")
                .output("LATENT").build(),
                call -> {
                    Vae vae = call.get("vae", Vae.class);
                    return NodeResult.of(vae.encode(cropToMultiple(rgb(call.get("pixels", ImageBatch.class)), vae.downscale())));
                }));
    }

    /** {@code pixels[:, :, :, :3]}. */
    static ImageBatch rgb(ImageBatch in) {
        if (in.channels() == 3) return in;
        if (in.channels() < 3) throw new IllegalArgumentException("VAEEncode needs RGB images, got " + in.channels() + " channels");
        float[] px = new float[in.batch() * in.height() * in.width() * 3];
        for (int i = 0, n = in.batch() * in.height() * in.width(); i < n; i++)
            System.arraycopy(in.pixels(), i * in.channels(), px, i * 3, 3);
        return new ImageBatch(in.batch(), in.height(), in.width(), 3, px);
    }

    /** VAE.vae_encode_crop_pixels: centre-crops each side down to a multiple of the down-scale factor. */
    static ImageBatch cropToMultiple(ImageBatch in, int f) {
        int h = (in.height() / f) * f, w = (in.width() / f) * f;
        if (h == in.height() && w == in.width()) return in;
        if (h == 0 || w == 0)
            throw new IllegalArgumentException("image " + in.height() + "x" + in.width() + " is smaller than the VAE's " + f + "-pixel cell");
        int yo = (in.height() % f) / 2, xo = (in.width() % f) / 2, c = in.channels();
        float[] px = new float[in.batch() * h * w * c];
        for (int b = 0; b < in.batch(); b++)
            for (int y = 0; y < h; y++)
                System.arraycopy(in.pixels(), in.index(b, y + yo, xo, 0), px, ((b * h + y) * w) * c, w * c);
        return new ImageBatch(in.batch(), h, w, c, px);
    }
}
