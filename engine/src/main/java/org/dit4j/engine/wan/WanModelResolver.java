package org.dit4j.engine.wan;

import org.dit4j.engine.hub.DiffusersFolder;
import static org.dit4j.engine.hub.DiffusersFolder.missingWeights;
import static org.dit4j.engine.hub.DiffusersFolder.readJson;
import static org.dit4j.engine.hub.DiffusersFolder.shardsOf;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.engine.flux.EmbeddedTokenizer;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.hub.HubException;
import org.dit4j.models.vae.wan.WanVaeWeights;
import org.dit4j.models.wan.WanWeights;

/**
 * Turns {@code --model} into {@link WanModelFiles}:
 * <ul>
 *   <li>a diffusers {@code WanPipeline} folder ({@code model_index.json}, {@code transformer/}, {@code vae/},
 *       {@code text_encoder/} (UMT5EncoderModel), {@code tokenizer/}, {@code scheduler/});</li>
 *   <li>ComfyUI-style files, in any order or as a folder: the diffusion model ({@code wan2.1_t2v_*.safetensors}), umT5
 *       ({@code umt5_xxl_*.safetensors}, fp16/bf16 or scaled fp8) and the VAE ({@code wan_2.1_vae.safetensors}); each
 *       file's role is read from its tensor names;</li>
 *   <li>a Hugging Face repository id in diffusers layout (e.g. {@value #DEFAULT_REPO}), from the cache, completed by
 *       downloading when online.</li>
 * </ul>
 * The umT5 tokenizer of single files is looked up in {@code <models-dir>/tokenizers/}{@value #TOKENIZER_NAME}
 * ({@code tokenizer.json} or {@code spiece.model}; the models dir given, or the folders above the files), then in the
 * umT5 file itself ({@code spiece_model}, as ComfyUI's files may carry it), then in the Hugging Face cache
 * ({@value #DEFAULT_REPO}'s {@code tokenizer/}), downloaded there when online.
 */
public final class WanModelResolver {
    /** The small Wan2.1 text-to-video model in diffusers layout (Apache-2.0). */
    public static final String DEFAULT_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers";
    public static final String TOKENIZER_NAME = "umt5-xxl";

    private static final String[] COMPONENTS = {"transformer", "vae", "text_encoder"};
    private static final String T5_PROBE = "encoder.block.0.layer.0.SelfAttention.q.weight";

    /** The parts of a Wan pipeline in checkpoint files. */
    public enum Role {
        TRANSFORMER("the Wan2.1 diffusion model (e.g. wan2.1_t2v_1.3B_fp16.safetensors)"),
        VAE("the Wan VAE (wan_2.1_vae.safetensors)"),
        T5("the umT5-XXL text encoder (umt5_xxl_fp8_e4m3fn_scaled.safetensors)");

        final String example;

        Role(String example) { this.example = example; }
    }

    private final HfHub hub;
    private final Path modelsDir;
    private final HfHub.Listener listener;

    public WanModelResolver(HfHub hub, Path modelsDir, HfHub.Listener listener) {
        this.hub = hub;
        this.modelsDir = modelsDir;
        this.listener = listener == null ? HfHub.Listener.NONE : listener;
    }

    // ------------------------------------------------------------------------------------------------ detection

    /**
     * Whether {@code --model} names a Wan model: a diffusers folder whose {@code model_index.json} class starts with
     * "Wan", files or a folder of files of which one holds a Wan transformer, or a repo id whose cached
     * {@code model_index.json} says Wan (uncached: whose name contains "wan"). Empty: false (Flux's default).
     */
    public static boolean isWan(List<String> specs, HfHub hub) {
        List<String> s = split(specs);
        if (s.isEmpty()) return false;
        for (String spec : s) {
            Path p = Path.of(spec);
            if (Files.isDirectory(p)) {
                Path idx = p.resolve("model_index.json");
                if (Files.isRegularFile(idx)) return readJson(idx).get("_class_name") instanceof String c && c.startsWith("Wan");
                for (Path f : safetensorsIn(p, false)) if (holdsWanTransformer(f)) return true;
            } else if (Files.isRegularFile(p)) {
                if (holdsWanTransformer(p)) return true;
            } else if (s.size() == 1 && HfHub.looksLikeRepoId(spec.split("@", 2)[0])) {
                String[] parts = spec.split("@", 2);
                Path cached = hub == null ? null : hub.cachedSnapshot(parts[0], parts.length > 1 ? parts[1] : "main");
                if (cached != null && Files.isRegularFile(cached.resolve("model_index.json")))
                    return readJson(cached.resolve("model_index.json")).get("_class_name") instanceof String c && c.startsWith("Wan");
                String name = parts[0].substring(parts[0].indexOf('/') + 1).toLowerCase(Locale.ROOT);
                return name.startsWith("wan") || name.contains("-wan") || name.contains("_wan");
            }
        }
        return false;
    }

    private static boolean holdsWanTransformer(Path f) {
        if (!f.getFileName().toString().endsWith(".safetensors") && !f.getFileName().toString().endsWith(".json")) return false;
        try (WeightSource w = WeightSource.open(f)) {
            WanWeights.detectPrefix(w);
            return true;
        } catch (RuntimeException notWan) {
            return false;
        }
    }

    // ------------------------------------------------------------------------------------------------ resolve

    /** Resolves {@code --model} values (empty: {@value #DEFAULT_REPO}). */
    public WanModelFiles resolve(List<String> specs) {
        List<String> s = split(specs);
        if (s.isEmpty()) return fromHub(DEFAULT_REPO);
        if (s.size() == 1) {
            Path p = Path.of(s.getFirst());
            if (Files.isDirectory(p)) {
                if (Files.isRegularFile(p.resolve("model_index.json"))) return fromDiffusersFolder(p);
                return fromFiles(safetensorsIn(p, true));
            }
            if (!Files.exists(p) && HfHub.looksLikeRepoId(s.getFirst().split("@", 2)[0])) return fromHub(s.getFirst());
        }
        List<Path> files = new ArrayList<>();
        for (String f : s) {
            Path p = Path.of(f);
            if (!Files.exists(p))
                throw new CheckpointException("model file " + p + " does not exist" + (HfHub.looksLikeRepoId(f)
                        ? " (a Hugging Face repository id must be given alone)" : "") + "; check the path");
            if (Files.isDirectory(p)) files.addAll(safetensorsIn(p, true));
            else files.add(p);
        }
        return fromFiles(files);
    }

    private static List<String> split(List<String> specs) {
        List<String> s = new ArrayList<>();
        for (String spec : specs) for (String part : spec.split(",")) if (!part.isBlank()) s.add(part.strip());
        return s;
    }

    private static List<Path> safetensorsIn(Path dir, boolean required) {
        try (Stream<Path> st = Files.list(dir)) {
            List<Path> out = st.filter(f -> Files.isRegularFile(f) && f.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (out.isEmpty() && required)
                throw new CheckpointException("folder " + dir + " has no model_index.json (not a diffusers pipeline) and no "
                        + "*.safetensors files; give a diffusers Wan folder, checkpoint files, or a Hugging Face repo id");
            return out;
        } catch (IOException e) {
            throw new CheckpointException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ diffusers folder

    /** A diffusers {@code WanPipeline} folder. */
    public static WanModelFiles fromDiffusersFolder(Path dir) {
        Path index = dir.resolve("model_index.json");
        Object cls = readJson(index).get("_class_name");
        if (cls instanceof String c && !c.equals("WanPipeline"))
            throw new CheckpointException(index + " describes a " + c + "; dit4j's Wan pipeline loads WanPipeline (text-to-video) "
                    + "folders" + (c.startsWith("Wan") ? " (image-to-video and Wan2.2 pipelines are not supported yet)" : ""));
        List<String> missing = missingInDiffusersFolder(dir);
        if (!missing.isEmpty())
            throw new CheckpointException("diffusers Wan folder " + dir + " is incomplete; missing: " + String.join(", ", missing));
        Path sched = dir.resolve("scheduler/scheduler_config.json");
        return new WanModelFiles("diffusers folder " + dir, WanModelFiles.Layout.DIFFUSERS, dir.resolve("transformer"), dir.resolve("vae"),
                dir.resolve("text_encoder"), dir.resolve("tokenizer"), Files.isRegularFile(sched) ? WanScheduler.read(sched) : null);
    }

    /** What a diffusers Wan folder lacks (empty when complete), relative to it. */
    static List<String> missingInDiffusersFolder(Path dir) {
        List<String> missing = new ArrayList<>();
        if (!Files.isRegularFile(dir.resolve("model_index.json"))) missing.add("model_index.json");
        for (String c : COMPONENTS) missing.addAll(missingWeights(dir, c));
        Path tok = dir.resolve("tokenizer");
        if (!Files.isRegularFile(tok.resolve("tokenizer.json")) && !Files.isRegularFile(tok.resolve("spiece.model")))
            missing.add("tokenizer/tokenizer.json (or tokenizer/spiece.model)");
        return missing;
    }

    // ------------------------------------------------------------------------------------------------ hub

    /** {@code org/name} or {@code org/name@revision} in diffusers layout through the Hugging Face cache. */
    public WanModelFiles fromHub(String spec) {
        String[] parts = spec.split("@", 2);
        String repo = parts[0], revision = parts.length > 1 ? parts[1] : "main";
        Path cached = hub.cachedSnapshot(repo, revision);
        if (cached != null && missingInDiffusersFolder(cached).isEmpty()) return described(fromDiffusersFolder(cached), repo, revision, cached);
        if (hub.offline()) throw offlineError(repo, revision, cached, "HF_HUB_OFFLINE is set");
        HfHub.Listing listing;
        try {
            listing = hub.list(repo, revision);
        } catch (HubException e) {
            if (e.offlineLike()) throw offlineError(repo, revision, cached, e.getMessage());
            throw e;
        }
        Set<String> files = listing.files();
        if (!files.contains("model_index.json"))
            throw new HubException("Hugging Face repository " + repo + "@" + revision + " has no model_index.json: it is not a "
                    + "diffusers pipeline (the original Wan-AI/Wan2.1-T2V-* repositories are not; use the -Diffusers ones, or "
                    + "download ComfyUI's files and pass them to --model)");
        List<String> small = new ArrayList<>(List.of("model_index.json")), shards = new ArrayList<>(), indexes = new ArrayList<>();
        if (files.contains("scheduler/scheduler_config.json")) small.add("scheduler/scheduler_config.json");
        for (String c : COMPONENTS) {
            if (files.contains(c + "/config.json")) small.add(c + "/config.json");
            String chosen = null;
            for (String stem : DiffusersFolder.WEIGHT_STEMS) {
                if (files.contains(c + "/" + stem + ".safetensors.index.json")) {
                    chosen = c + "/" + stem + ".safetensors.index.json";
                    indexes.add(chosen);
                    small.add(chosen);
                    break;
                }
                if (files.contains(c + "/" + stem + ".safetensors")) {
                    chosen = c + "/" + stem + ".safetensors";
                    shards.add(chosen);
                    break;
                }
            }
            if (chosen == null)
                throw new HubException("Hugging Face repository " + repo + " has no safetensors weights for " + c + "/ (dit4j reads "
                        + "safetensors only)");
        }
        for (String f : files) if (f.startsWith("tokenizer/") && f.matches(".*\\.(json|model)$")) small.add(f);
        try {
            Path snap = hub.ensure(repo, revision, listing.commit(), small, listener);
            for (String idx : indexes) {
                String comp = idx.substring(0, idx.indexOf('/'));
                for (String shard : shardsOf(snap.resolve(idx))) shards.add(comp + "/" + shard);
            }
            snap = hub.ensure(repo, revision, listing.commit(), shards, listener);
            return described(fromDiffusersFolder(snap), repo, revision, snap);
        } catch (HubException e) {
            if (e.offlineLike()) throw offlineError(repo, revision, hub.cachedSnapshot(repo, listing.commit()), e.getMessage());
            throw e;
        }
    }

    private static WanModelFiles described(WanModelFiles f, String repo, String revision, Path snap) {
        return new WanModelFiles("Hugging Face " + repo + "@" + revision + " (" + snap + ")", f.layout(), f.transformer(), f.vae(), f.t5(),
                f.tokenizer(), f.scheduler());
    }

    private HubException offlineError(String repo, String revision, Path cached, String why) {
        String what = cached == null
                ? "nothing of it is in the cache " + hub.repoFolder(repo) + " (expected model_index.json, transformer/, vae/, "
                  + "text_encoder/, tokenizer/ with their config and safetensors files)"
                : "the cached snapshot " + cached + " lacks: " + String.join(", ", missingInDiffusersFolder(cached));
        return new HubException("cannot load " + repo + "@" + revision + " without downloading: " + why + ", and " + what
                + ". Run once with network access, or `huggingface-cli download " + repo + "`, or pass local files to --model.", true);
    }

    // ------------------------------------------------------------------------------------------------ single files

    /** ComfyUI-style files; each file's role is read from its tensor names. */
    public WanModelFiles fromFiles(List<Path> files) {
        Map<Role, Path> roles = new EnumMap<>(Role.class);
        for (Path f : files) {
            List<Role> found = rolesOf(f);
            if (found.isEmpty())
                throw new CheckpointException(f + " is none of the parts of a Wan2.1 pipeline (no Wan transformer, Wan VAE or "
                        + "umT5 tensors); `dit4j inspect " + f + "` shows what it holds");
            for (Role r : found) {
                Path prev = roles.putIfAbsent(r, f);
                if (prev != null)
                    throw new CheckpointException("both " + prev + " and " + f + " hold " + r.example + "; give one of them");
            }
        }
        List<String> missing = new ArrayList<>();
        for (Role r : Role.values()) if (!roles.containsKey(r)) missing.add(r.example);
        if (!missing.isEmpty())
            throw new CheckpointException("the Wan2.1 pipeline needs the diffusion model, the VAE and umT5-XXL; the files " + files
                    + " lack " + String.join(", ", missing) + ". Add them to --model (comma-separated or repeated)");
        List<Path> roots = new ArrayList<>();
        if (modelsDir != null) roots.add(modelsDir);
        for (Path f : roles.values()) {
            Path parent = f.toAbsolutePath().getParent();
            if (parent != null) {
                roots.add(parent);
                if (parent.getParent() != null) roots.add(parent.getParent());
            }
        }
        Path tok = tokenizer(roots, roles.get(Role.T5));
        StringBuilder d = new StringBuilder("files ");
        for (Role r : Role.values()) d.append(r.name().toLowerCase(Locale.ROOT)).append('=').append(roles.get(r).getFileName()).append(' ');
        return new WanModelFiles(d.toString().strip(), WanModelFiles.Layout.FILES, roles.get(Role.TRANSFORMER), roles.get(Role.VAE),
                roles.get(Role.T5), tok, null);
    }

    /** The roles a checkpoint file plays, from its tensor names. */
    public static List<Role> rolesOf(Path file) {
        List<Role> out = new ArrayList<>();
        try (WeightSource w = WeightSource.open(file)) {
            try {
                WanWeights.detectPrefix(w);
                out.add(Role.TRANSFORMER);
            } catch (CheckpointException notWan) {
                // not a transformer
            }
            try {
                WanVaeWeights.detectPrefix(w);
                out.add(Role.VAE);
            } catch (CheckpointException notVae) {
                // not a VAE
            }
            for (String n : w.names()) {
                if (n.endsWith(T5_PROBE)) {
                    out.add(Role.T5);
                    break;
                }
            }
        }
        return out;
    }

    /**
     * The umT5 tokenizer for a single umT5 file, looked up as {@link #fromFiles} does: {@code tokenizers/}{@value #TOKENIZER_NAME}
     * under the models dir and the folders above the file, the file's own {@code spiece_model}, then the Hugging Face cache.
     */
    public Path tokenizerFor(Path t5File) {
        List<Path> roots = new ArrayList<>();
        if (modelsDir != null) roots.add(modelsDir);
        Path parent = t5File.toAbsolutePath().getParent();
        if (parent != null) {
            roots.add(parent);
            if (parent.getParent() != null) roots.add(parent.getParent());
        }
        return tokenizer(roots, t5File);
    }

    private Path tokenizer(List<Path> roots, Path t5File) {
        for (Path r : roots) {
            Path d = r.resolve("tokenizers").resolve(TOKENIZER_NAME);
            if (Files.isRegularFile(d.resolve("tokenizer.json")) || Files.isRegularFile(d.resolve("spiece.model"))) return d;
        }
        if (EmbeddedTokenizer.hasSpieceModel(t5File)) return t5File;
        Path cached = hub.cachedSnapshot(DEFAULT_REPO, "main");
        if (cached != null && Files.isRegularFile(cached.resolve("tokenizer/tokenizer.json"))) return cached.resolve("tokenizer");
        String why;
        if (hub.offline()) {
            why = "HF_HUB_OFFLINE is set";
        } else {
            try {
                HfHub.Listing l = hub.list(DEFAULT_REPO, "main");
                List<String> files = new ArrayList<>(List.of("tokenizer/tokenizer.json"));
                for (String f : List.of("tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json", "tokenizer/spiece.model"))
                    if (l.files().contains(f)) files.add(f);
                return hub.ensure(DEFAULT_REPO, "main", l.commit(), files, listener).resolve("tokenizer");
            } catch (HubException e) {
                if (!e.offlineLike()) throw e;
                why = e.getMessage();
            }
        }
        Path fill = (modelsDir != null ? modelsDir : roots.isEmpty() ? Path.of("models") : roots.getLast()).resolve("tokenizers")
                .resolve(TOKENIZER_NAME);
        throw new HubException("no tokenizer for the umT5 text encoder " + t5File + ": put tokenizer.json (or spiece.model) of "
                + "google/umt5-xxl into " + fill + " (or pass --models-dir), or run once online so that dit4j can fetch "
                + DEFAULT_REPO + "/tokenizer into the Hugging Face cache (" + why + ")", true);
    }
}
