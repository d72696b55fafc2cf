package org.dit4j.server.nodes;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.dit4j.server.engine.ImageBatch;
import org.dit4j.server.files.AtomicFiles;
import org.dit4j.server.files.SafePaths;
import org.dit4j.server.image.Images;
import org.dit4j.server.image.Png;
import org.dit4j.server.json.Json;
import org.dit4j.server.json.PyJson;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ThreadLocalRandom;

/** LoadImage, FluxKontextImageScale, SaveImage, PreviewImage, SaveAnimatedWEBP. */
final class ImageNodes {

    private ImageNodes() {}

    static final Set<String> IMAGE_EXTENSIONS = Set.of(".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff");

    /** PREFERED_KONTEXT_RESOLUTIONS (width, height) of comfy_extras/nodes_flux.py. */
    static final int[][] KONTEXT_RESOLUTIONS = {{672, 1568}, {688, 1504}, {720, 1456}, {752, 1392}, {800, 1328}, {832, 1248},
            {880, 1184}, {944, 1104}, {1024, 1024}, {1104, 944}, {1184, 880}, {1248, 832}, {1328, 800}, {1392, 752},
            {1456, 720}, {1504, 688}, {1568, 672}};

    static void register(NodeCatalog c) {
        c.register(new LoadImage());

        c.register(new SimpleNode("FluxKontextImageScale", env -> NodeSchema.builder("FluxKontextImageScale").category("advanced/conditioning/flux")
                .module("comfy_extras.nodes_flux").description("This node resizes the image to one that is more optimal for flux kontext.")
                .required("image", "IMAGE").output("IMAGE").build(),
                call -> {
                    ImageBatch img = call.get("image", ImageBatch.class);
                    int[] wh = kontextResolution(img.width(), img.height());
                    return NodeResult.of(Images.centerCropLanczos(img, wh[0], wh[1]));
                }));

        c.register(new SimpleNode("SaveImage", env -> NodeSchema.builder("SaveImage").display("Save Image").category("image")
                .description("Saves the input images to your ComfyUI output directory.")
                .required("images", InputSpec.of("IMAGE", "tooltip", "The images to save."))
                .required("filename_prefix", InputSpec.of("STRING", "default", "ComfyUI", "tooltip",
                        "The prefix for the file to save. This may include formatting information such as %date:yyyy-MM-dd% or %Empty Latent Image.width% to include values from nodes."))
                .hidden("prompt", "PROMPT").hidden("extra_pnginfo", "EXTRA_PNGINFO")
                .outputNode().build(),
                call -> NodeResult.ui(saveImages(call, call.get("images", ImageBatch.class), call.string("filename_prefix"),
                        call.env().outputDir(), "output", 4))));

        c.register(new SimpleNode("PreviewImage", env -> NodeSchema.builder("PreviewImage").display("Preview Image").category("image")
                .description("Saves the input images to your ComfyUI output directory.")
                .required("images", "IMAGE")
                .hidden("prompt", "PROMPT").hidden("extra_pnginfo", "EXTRA_PNGINFO")
                .outputNode().build(),
                call -> {
                    StringBuilder suffix = new StringBuilder("_temp_");
                    String letters = "abcdefghijklmnopqrstupvxyz";
                    for (int i = 0; i < 5; i++) suffix.append(letters.charAt(ThreadLocalRandom.current().nextInt(letters.length())));
                    return NodeResult.ui(saveImages(call, call.get("images", ImageBatch.class), "ComfyUI" + suffix, call.env().tempDir(), "temp", 1));
                }));

        c.register(new SimpleNode("SaveAnimatedWEBP", env -> NodeSchema.builder("SaveAnimatedWEBP").category("image/animation")
                .module("comfy_extras.nodes_images")
                .required("images", "IMAGE")
                .required("filename_prefix", InputSpec.of("STRING", "default", "ComfyUI"))
                .required("fps", InputSpec.of("FLOAT", "default", 6.0, "min", 0.01, "max", 1000.0, "step", 0.01))
                .required("lossless", InputSpec.of("BOOLEAN", "default", true))
                .required("quality", InputSpec.of("INT", "default", 80, "min", 0, "max", 100))
                .required("method", InputSpec.combo(WEBP_METHODS))
                .hidden("prompt", "PROMPT").hidden("extra_pnginfo", "EXTRA_PNGINFO")
                .outputNode().build(),
                call -> NodeResult.ui(saveAnimatedWebp(call))));
    }

    /** SaveAnimatedWEBP's method names (libwebp effort 0–6 in ComfyUI; dit4j's encoder has one effort). */
    static final List<String> WEBP_METHODS = List.of("default", "fastest", "slowest");

    private static volatile boolean lossyNoted;

    /**
     * SaveAnimatedWEBP: the batch as one animated WebP (one frame per image, duration int(1000/fps) ms, looping), with
     * ComfyUI's EXIF metadata (0x0110 "prompt:…", then 0x010F, 0x010E, … "key:…" per extra_pnginfo entry). dit4j writes
     * lossless WebP only: lossless=false is written losslessly too (quality and method then have no effect), with a note.
     */
    static ObjectNode saveAnimatedWebp(NodeCall call) throws IOException {
        ImageBatch images = call.get("images", ImageBatch.class);
        double fps = call.number("fps");
        if (images.channels() != 3 && images.channels() != 4)
            throw new IllegalArgumentException("SaveAnimatedWEBP needs RGB images (3 channels), got " + images.channels());
        if (!call.bool("lossless") && !lossyNoted) {
            lossyNoted = true;
            System.err.println("dit4j server: SaveAnimatedWEBP lossless=false: dit4j has no lossy WebP encoder; writing lossless WebP "
                    + "(larger files, exact pixels; quality and method are ignored)");
        }
        SavePath sp = savePath(call.string("filename_prefix"), call.env().outputDir(), images.width(), images.height());
        List<org.dit4j.engine.image.RgbImage> frames = new ArrayList<>();
        float[] src = images.pixels();
        for (int b = 0; b < images.batch(); b++) {
            byte[] rgb = new byte[images.width() * images.height() * 3];
            int i = 0;
            for (int y = 0; y < images.height(); y++)
                for (int x = 0; x < images.width(); x++)
                    for (int c = 0; c < 3; c++) rgb[i++] = (byte) Png.toByte(src[images.index(b, y, x, c)]);
            frames.add(new org.dit4j.engine.image.RgbImage(images.width(), images.height(), rgb));
        }
        byte[] exif = null;
        if (!call.env().disableMetadata()) {
            List<Map.Entry<Integer, String>> tags = new ArrayList<>();
            if (call.prompt() != null) tags.add(Map.entry(0x0110, "prompt:" + PyJson.dumps(call.prompt())));
            JsonNode extra = call.extraPngInfo();
            int tag = 0x010F;
            if (extra != null && extra.isObject())
                for (var e : extra.properties()) tags.add(Map.entry(tag--, e.getKey() + ":" + PyJson.dumps(e.getValue())));
            if (!tags.isEmpty()) exif = tiffAscii(tags);
        }
        String file = sp.filename + "_" + String.format("%05d", sp.counter) + "_.webp";
        AtomicFiles.write(sp.folder.resolve(file), org.dit4j.engine.video.WebpWriter.encodeAnimated(frames, (int) (1000.0 / fps), 0, exif));
        ObjectNode ui = Json.obj("images", Json.array().add(Json.obj("filename", file, "subfolder", sp.subfolder, "type", "output")));
        ui.set("animated", Json.array().add(images.batch() != 1));
        return ui;
    }

    /** A little-endian TIFF with one IFD of ASCII entries (sorted by tag, NUL-terminated, ASCII with '?' for others). */
    static byte[] tiffAscii(List<Map.Entry<Integer, String>> tags) {
        List<Map.Entry<Integer, String>> sorted = new ArrayList<>(tags);
        sorted.sort(Map.Entry.comparingByKey());
        int n = sorted.size();
        int dataStart = 8 + 2 + 12 * n + 4;
        java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
        java.nio.ByteBuffer ifd = java.nio.ByteBuffer.allocate(dataStart).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        ifd.put((byte) 'I').put((byte) 'I').putShort((short) 42).putInt(8).putShort((short) n);
        for (Map.Entry<Integer, String> e : sorted) {
            byte[] v = e.getValue().getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            byte[] z = java.util.Arrays.copyOf(v, v.length + 1);
            ifd.putShort((short) (int) e.getKey()).putShort((short) 2).putInt(z.length);
            if (z.length <= 4) {
                ifd.put(java.util.Arrays.copyOf(z, 4));
            } else {
                ifd.putInt(dataStart + data.size());
                data.writeBytes(z);
                if ((z.length & 1) != 0) data.write(0);                    // word-aligned values
            }
        }
        ifd.putInt(0);
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        out.writeBytes(ifd.array());
        out.writeBytes(data.toByteArray());
        return out.toByteArray();
    }

    /** The Kontext resolution nearest in aspect ratio: min over (|aspect − w/h|, w, h) as ComfyUI's tuple comparison. */
    static int[] kontextResolution(int width, int height) {
        double aspect = (double) width / height;
        int[] best = null;
        double bestD = Double.MAX_VALUE;
        for (int[] r : KONTEXT_RESOLUTIONS) {
            double d = Math.abs(aspect - (double) r[0] / r[1]);
            if (best == null || d < bestD || (d == bestD && (r[0] < best[0] || (r[0] == best[0] && r[1] < best[1])))) {
                best = r;
                bestD = d;
            }
        }
        return best;
    }

    /** SaveImage.save_images: numbered PNGs with prompt/workflow text chunks, written atomically; returns the UI dict. */
    static ObjectNode saveImages(NodeCall call, ImageBatch images, String prefix, Path dir, String type, int level) throws IOException {
        SavePath sp = savePath(prefix, dir, images.width(), images.height());
        List<Map.Entry<String, String>> texts = new ArrayList<>();
        if (!call.env().disableMetadata()) {
            if (call.prompt() != null) texts.add(Map.entry("prompt", PyJson.dumps(call.prompt())));
            JsonNode extra = call.extraPngInfo();
            if (extra != null && extra.isObject())
                for (var e : extra.properties()) texts.add(Map.entry(e.getKey(), PyJson.dumps(e.getValue())));
        }
        ArrayNode results = Json.array();
        int counter = sp.counter;
        for (int b = 0; b < images.batch(); b++) {
            String file = sp.filename.replace("%batch_num%", Integer.toString(b)) + "_" + String.format("%05d", counter) + "_.png";
            AtomicFiles.write(sp.folder.resolve(file), Png.encode(images, b, texts, level));
            results.add(Json.obj("filename", file, "subfolder", sp.subfolder, "type", type));
            counter++;
        }
        return Json.obj("images", results);
    }

    record SavePath(Path folder, String filename, int counter, String subfolder) {}

    /** folder_paths.get_save_image_path: %width%/%height%/date variables, subfolder from the prefix, next free counter. */
    static SavePath savePath(String prefix, Path outputDir, int width, int height) throws IOException {
        String p = prefix;
        if (p.contains("%")) {
            LocalDateTime now = LocalDateTime.now();
            p = p.replace("%width%", Integer.toString(width)).replace("%height%", Integer.toString(height))
                    .replace("%year%", Integer.toString(now.getYear()))
                    .replace("%month%", String.format("%02d", now.getMonthValue())).replace("%day%", String.format("%02d", now.getDayOfMonth()))
                    .replace("%hour%", String.format("%02d", now.getHour())).replace("%minute%", String.format("%02d", now.getMinute()))
                    .replace("%second%", String.format("%02d", now.getSecond()));
        }
        String norm = p.replace('\\', '/');
        int slash = norm.lastIndexOf('/');
        String subfolder = slash < 0 ? "" : norm.substring(0, slash);
        String filename = slash < 0 ? norm : norm.substring(slash + 1);
        Path base = outputDir.toAbsolutePath().normalize();
        Path folder = subfolder.isEmpty() ? base : SafePaths.inside(base, subfolder).orElseThrow(() -> new IllegalArgumentException(
                "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: " + base.resolve(subfolder).normalize()
                        + "\n         output_dir: " + base + "\n         commonpath: " + base));
        if (filename.isEmpty()) throw new IllegalArgumentException("filename_prefix '" + prefix + "' has no file name part");
        Files.createDirectories(folder);
        int max = 0;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(folder)) {
            for (Path f : ds) {
                String name = f.getFileName().toString();
                if (name.length() <= filename.length()) continue;
                String head = name.substring(0, filename.length() + 1);
                if (!head.toLowerCase(Locale.ROOT).equals(filename.toLowerCase(Locale.ROOT) + "_")) continue;
                String rest = name.substring(filename.length() + 1);
                int us = rest.indexOf('_');
                String digits = us < 0 ? rest : rest.substring(0, us);
                try {
                    max = Math.max(max, Integer.parseInt(digits.strip()));
                } catch (NumberFormatException e) {
                    // ComfyUI counts such names as 0
                }
            }
        }
        return new SavePath(folder, filename, max + 1, subfolder);
    }

    /** LoadImage: an image from the input folder (upload one with /upload/image); IS_CHANGED is the file's SHA-256. */
    static final class LoadImage implements Node {

        @Override public String name() { return "LoadImage"; }

        @Override public NodeSchema schema(NodeEnv env) {
            return NodeSchema.builder("LoadImage").display("Load Image").category("image")
                    .required("image", InputSpec.combo(inputImages(env.inputDir()), "image_upload", true))
                    .output("IMAGE").output("MASK").build();
        }

        @Override public Set<String> selfValidated() { return Set.of("image"); }

        @Override public String validate(NodeEnv env, Map<String, JsonNode> literals) {
            JsonNode v = literals.get("image");
            String name = v == null ? "" : PyJson.str(v);
            return resolve(env, name).filter(Files::isRegularFile).isPresent() ? null : "Invalid image file: " + name;
        }

        @Override public String fingerprint(NodeEnv env, Map<String, JsonNode> literals) {
            JsonNode v = literals.get("image");
            if (v == null) return null;
            return resolve(env, PyJson.str(v)).map(p -> {
                try {
                    return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(p)));
                } catch (Exception e) {
                    return "unreadable";
                }
            }).orElse("missing");
        }

        @Override public NodeResult execute(NodeCall call) throws Exception {
            String name = call.string("image");
            Path p = resolve(call.env(), name).filter(Files::isRegularFile)
                    .orElseThrow(() -> new IllegalArgumentException("Invalid image file: " + name));
            Images.Loaded l = Images.read(p);
            return NodeResult.of(l.image(), l.mask());
        }

        /** folder_paths.get_annotated_filepath: "name [input|output|temp]" selects the folder; input by default. */
        static java.util.Optional<Path> resolve(NodeEnv env, String name) {
            Path dir = env.inputDir();
            String n = name;
            if (n.endsWith("[output]")) {
                dir = env.outputDir();
                n = n.substring(0, n.length() - 8).strip();
            } else if (n.endsWith("[input]")) {
                n = n.substring(0, n.length() - 7).strip();
            } else if (n.endsWith("[temp]")) {
                dir = env.tempDir();
                n = n.substring(0, n.length() - 6).strip();
            }
            return SafePaths.inside(dir, n);
        }

        static List<String> inputImages(Path dir) {
            TreeSet<String> out = new TreeSet<>();
            if (!Files.isDirectory(dir)) return List.of();
            try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
                for (Path f : ds) {
                    String n = f.getFileName().toString();
                    int dot = n.lastIndexOf('.');
                    if (Files.isRegularFile(f) && dot >= 0 && IMAGE_EXTENSIONS.contains(n.substring(dot).toLowerCase(Locale.ROOT))) out.add(n);
                }
            } catch (IOException e) {
                return List.of();
            }
            return List.copyOf(out);
        }
    }
}
