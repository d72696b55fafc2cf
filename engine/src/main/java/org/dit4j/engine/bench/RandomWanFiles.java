package org.dit4j.engine.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Shape;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.RandomWeightSource;
import org.dit4j.models.text.T5Config;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.vae.wan.WanVaeWeights;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanWeights;

/**
 * Writes full-size Wan2.1 text-to-video files with random bf16 weights, laid out as ComfyUI's files, so that
 * {@code dit4j generate} runs the whole pipeline at full size without downloading a checkpoint:
 * <pre>
 * DIR/common/umt5-xxl-random.safetensors        umT5-XXL encoder, Hugging Face UMT5EncoderModel names (11.4 GB)
 * DIR/common/wan_2.1_vae-random.safetensors     the Wan2.1 VAE, original names (0.25 GB)
 * DIR/wan14b/wan2.1_t2v_14B-random.safetensors  the 14B transformer, original names under model.diffusion_model. (28.6 GB)
 * DIR/wan1.3b/wan2.1_t2v_1.3B-random.safetensors the 1.3B transformer, original names, unprefixed (2.8 GB)
 * DIR/common/vae-diffusers/                     part "vae-diffusers" (not in the default list): the same VAE values as a
 *                                               diffusers AutoencoderKLWan folder (config.json + diffusers names)
 * </pre>
 * The tokenizer is not written: put a tokenizer.json whose ids are below 256384 into {@code DIR/tokenizers/umt5-xxl/}
 * (found as the files' grandparent's {@code tokenizers/}, see WanModelResolver). Then e.g.
 * {@code dit4j generate --model DIR/wan14b/wan2.1_t2v_14B-random.safetensors,DIR/common/umt5-xxl-random.safetensors,DIR/common/wan_2.1_vae-random.safetensors ...}.
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.RandomWanFiles DIR [parts: t5,vae,14B,1.3B (default all)] [seed] [--tiny]</pre>
 * A file that already exists is kept (so a device script can call this before every run). {@code --tiny} writes the same
 * files with tiny architectures ({@link #TINY}: transformer dim 128, 1 head, 2 layers; umT5 d 32, 2 layers, with the full
 * 32128-entry T5 vocabulary so that a real T5 tokenizer fits; VAE base 2) to check the commands on a CPU in seconds.
 */
public final class RandomWanFiles {
    private RandomWanFiles() {}

    public static final String T5_FILE = "common/umt5-xxl-random.safetensors";
    public static final String VAE_FILE = "common/wan_2.1_vae-random.safetensors";
    public static final String T2V_14B_FILE = "wan14b/wan2.1_t2v_14B-random.safetensors";
    public static final String T2V_1_3B_FILE = "wan1.3b/wan2.1_t2v_1.3B-random.safetensors";
    /** The VAE of {@link #VAE_FILE} (same values) as a diffusers {@code AutoencoderKLWan} folder, for the component check. */
    public static final String VAE_DIFFUSERS_DIR = "common/vae-diffusers";

    /** The architectures of one file set. */
    public record Architectures(WanConfig t2v14B, WanConfig t2v1_3B, T5Config umt5, WanVaeConfig vae) {}

    public static final Architectures FULL = new Architectures(WanConfig.t2v14B(), WanConfig.t2v1_3B(), T5Config.UMT5_XXL,
            WanVaeConfig.wan21());

    public static final Architectures TINY = new Architectures(
            new WanConfig(128, 1, 2, 96, 16, 16, 32, 256, new int[] {1, 2, 2}, true),
            new WanConfig(128, 1, 2, 96, 16, 16, 32, 256, new int[] {1, 2, 2}, true),
            new T5Config(32128, 32, 8, 4, 64, 2, 32, 128, true, 1e-6f),
            new WanVaeConfig(3, 3, 2, new int[] {2, 4, 8, 8}, 2, new boolean[] {false, true, true}, 16,
                    WanVaeConfig.WAN21_LATENTS_MEAN, WanVaeConfig.WAN21_LATENTS_STD, true, true));

    public static void main(String[] args) throws Exception {
        List<String> a = new java.util.ArrayList<>(List.of(args));
        boolean tiny = a.remove("--tiny");
        if (a.isEmpty()) {
            System.err.println("usage: RandomWanFiles DIR [t5,vae,14B,1.3B] [seed] [--tiny]");
            System.exit(2);
        }
        List<String> parts = List.of((a.size() > 1 ? a.get(1) : "t5,vae,14B,1.3B").split(","));
        write(Path.of(a.get(0)), parts, a.size() > 2 ? Long.parseLong(a.get(2)) : 0, tiny ? TINY : FULL);
    }

    /** Writes the named parts (t5, vae, 14B, 1.3B) that do not exist yet under {@code dir}. */
    public static void write(Path dir, List<String> parts, long seed, Architectures arch) throws Exception {
        for (String part : parts) {
            switch (part.strip().toLowerCase(Locale.ROOT)) {
                case "t5", "umt5" -> file(dir.resolve(T5_FILE), RandomFluxFiles.t5Shapes(arch.umt5()), seed + 1);
                case "vae" -> file(dir.resolve(VAE_FILE), WanVaeWeights.expectedShapes(arch.vae()), seed + 2);
                case "vae-diffusers" -> diffusersVae(dir.resolve(VAE_DIFFUSERS_DIR), arch.vae(), seed + 2);
                case "14b" -> file(dir.resolve(T2V_14B_FILE), transformerShapes(arch.t2v14B(), WanWeights.COMFY_PREFIX), seed);
                case "1.3b" -> file(dir.resolve(T2V_1_3B_FILE), transformerShapes(arch.t2v1_3B(), ""), seed + 3);
                default -> throw new IllegalArgumentException("unknown part '" + part + "': expected t5, vae, vae-diffusers, 14B or 1.3B");
            }
        }
    }

    static Map<String, Shape> transformerShapes(WanConfig c, String prefix) {
        Map<String, Shape> m = new LinkedHashMap<>();
        for (Map.Entry<String, Shape> e : WanWeights.expectedShapes(c).entrySet()) m.put(prefix + e.getKey(), e.getValue());
        return m;
    }

    /** The VAE's random tensors (drawn under their original names, so equal to {@link #VAE_FILE}'s) under diffusers names, with config.json. */
    static void diffusersVae(Path folder, WanVaeConfig c, long seed) throws Exception {
        Path weights = folder.resolve("diffusion_pytorch_model.safetensors");
        if (Files.isRegularFile(weights)) {
            System.out.printf(Locale.ROOT, "kept %s (%.2f GB)%n", weights, Files.size(weights) / 1e9);
            return;
        }
        Files.createDirectories(folder);
        int base = c.baseDim();
        StringBuilder mult = new StringBuilder(), down = new StringBuilder(), mean = new StringBuilder(), std = new StringBuilder();
        for (int i = 0; i < c.levels(); i++) mult.append(i == 0 ? "" : ", ").append(c.channels(i) / base);
        boolean[] td = c.temporalDownsample();
        for (int i = 0; i < td.length; i++) down.append(i == 0 ? "" : ", ").append(td[i]);
        for (int i = 0; i < c.zDim(); i++) {
            mean.append(i == 0 ? "" : ", ").append(c.latentsMean()[i]);
            std.append(i == 0 ? "" : ", ").append(c.latentsStd()[i]);
        }
        Files.writeString(folder.resolve("config.json"), """
                {
                  "_class_name": "AutoencoderKLWan",
                  "_diffusers_version": "0.35.0",
                  "attn_scales": [], "base_dim": %d, "dim_mult": [%s], "dropout": 0.0, "num_res_blocks": %d,
                  "temperal_downsample": [%s], "z_dim": %d,
                  "latents_mean": [%s],
                  "latents_std": [%s]
                }
                """.formatted(base, mult, c.numResBlocks(), down, c.zDim(), mean, std));
        long t0 = System.nanoTime();
        try (Scope scope = Scope.open();
             RandomWeightSource src = new RandomWeightSource(WanVaeWeights.expectedShapes(c), DType.BF16, seed)) {
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            for (String name : src.names()) tensors.put(WanVaeWeights.toDiffusers(name, c.numResBlocks()), src.tensor(name));
            Path tmp = folder.resolve("diffusion_pytorch_model.safetensors.part");
            SafeTensorsWriter.write(tmp, tensors, Map.of("dit4j", "random weights (RandomWanFiles), seed " + seed));
            Files.move(tmp, weights);
        }
        System.out.printf(Locale.ROOT, "wrote %s in %.1f s%n", folder, (System.nanoTime() - t0) / 1e9);
    }

    private static void file(Path path, Map<String, Shape> shapes, long seed) throws Exception {
        if (Files.isRegularFile(path)) {
            System.out.printf(Locale.ROOT, "kept %s (%.2f GB)%n", path, Files.size(path) / 1e9);
            return;
        }
        Files.createDirectories(path.getParent());
        Path tmp = path.resolveSibling(path.getFileName() + ".part");
        RandomFluxFiles.file(tmp, shapes, seed);
        Files.move(tmp, path);
    }
}
