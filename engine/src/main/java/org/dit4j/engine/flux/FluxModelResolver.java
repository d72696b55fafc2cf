package org.dit4j.engine.flux;

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
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.hub.HubException;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.vae.VaeWeights;

/**
 * Turns what the user gave as {@code --model} into {@link FluxModelFiles}:
 * <ul>
 *   <li>a diffusers pipeline folder ({@code model_index.json}, {@code transformer/}, {@code vae/},
 *       {@code text_encoder/} (CLIP), {@code text_encoder_2/} (T5), {@code tokenizer/}, {@code tokenizer_2/},
 *       {@code scheduler/});</li>
 *   <li>ComfyUI-style files (transformer, {@code clip_l}, {@code t5xxl*}, {@code ae}), in any order, or one
 *       all-in-one checkpoint, or a folder holding such files: each file's role is read from its tensor names;</li>
 *   <li>a Hugging Face repository id ({@code org/name}, optionally {@code @revision}) in diffusers layout, taken
 *       from the Hugging Face cache and completed by downloading the missing files when online.</li>
 * </ul>
 * Single-file text encoders carry no tokenizer. They are looked up in {@code <models-dir>/tokenizers/}
 * ({@value #CLIP_TOKENIZER_NAME}, {@value #T5_TOKENIZER_NAME}) — the models dir given, or the folders above the
 * checkpoint files (ComfyUI's {@code models/}) — then in the T5 checkpoint itself ({@code spiece_model}), then in the
 * Hugging Face cache ({@value #TOKENIZER_REPO}'s {@code tokenizer/}, {@code tokenizer_2/}), downloaded there when online.
 */
public final class FluxModelResolver {
    /** The model used when none is given: Apache-2.0, ungated. */
    public static final String DEFAULT_REPO = "black-forest-labs/FLUX.1-schnell";
    /** Where tokenizers for single-file text encoders come from (the same tokenizers as every Flux.1 model). */
    public static final String TOKENIZER_REPO = "black-forest-labs/FLUX.1-schnell";
    public static final String CLIP_TOKENIZER_NAME = "clip-vit-large-patch14";
    public static final String T5_TOKENIZER_NAME = "t5-v1_1-xxl";

    private static final String[] COMPONENTS = {"transformer", "vae", "text_encoder", "text_encoder_2"};

    /** The parts a Flux pipeline needs from checkpoint files. */
    public enum Role {
        TRANSFORMER("a Flux transformer (e.g. flux1-dev.safetensors)"), VAE("the VAE (ae.safetensors)"),
        CLIP("the CLIP-L text encoder (clip_l.safetensors)"), T5("the T5-XXL text encoder (t5xxl_fp16.safetensors)");

        final String example;

        Role(String example) { this.example = example; }
    }

    private final HfHub hub;
    private final Path modelsDir;
    private final HfHub.Listener listener;

    /**
     * @param hub       the Hugging Face cache/downloader
     * @param modelsDir folder holding {@code tokenizers/<name>/} for single-file text encoders, or null
     * @param listener  download progress
     */
    public FluxModelResolver(HfHub hub, Path modelsDir, HfHub.Listener listener) {
        this.hub = hub;
        this.modelsDir = modelsDir;
        this.listener = listener == null ? HfHub.Listener.NONE : listener;
    }

    /** Resolves {@code --model} values (empty: {@value #DEFAULT_REPO}). */
    public FluxModelFiles resolve(List<String> specs) {
        List<String> s = new ArrayList<>();
        for (String spec : specs) for (String part : spec.split(",")) if (!part.isBlank()) s.add(part.strip());
        if (s.isEmpty()) return fromHub(DEFAULT_REPO);
        if (s.size() == 1) {
            Path p = Path.of(s.getFirst());
            if (Files.isDirectory(p)) {
                if (Files.isRegularFile(p.resolve("model_index.json"))) return fromDiffusersFolder(p);
                return fromFiles(safetensorsIn(p));
            }
            if (!Files.exists(p) && HfHub.looksLikeRepoId(s.getFirst().split("@", 2)[0])) return fromHub(s.getFirst());
        }
        List<Path> files = new ArrayList<>();
        for (String f : s) {
            Path p = Path.of(f);
            if (!Files.exists(p))
                throw new CheckpointException("model file " + p + " does not exist" + (HfHub.looksLikeRepoId(f)
                        ? " (a Hugging Face repository id must be given alone)" : "") + "; check the path");
            if (Files.isDirectory(p)) files.addAll(safetensorsIn(p));
            else files.add(p);
        }
        return fromFiles(files);
    }

    private static List<Path> safetensorsIn(Path dir) {
        try (Stream<Path> st = Files.list(dir)) {
            List<Path> out = st.filter(f -> Files.isRegularFile(f) && f.getFileName().toString().endsWith(".safetensors")).sorted().toList();
            if (out.isEmpty())
                throw new CheckpointException("folder " + dir + " has no model_index.json (not a diffusers pipeline) and no "
                        + "*.safetensors files; give a diffusers pipeline folder, checkpoint files, or a Hugging Face repo id");
            return out;
        } catch (IOException e) {
            throw new CheckpointException("cannot list " + dir + ": " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------ diffusers folder

    /** A diffusers FluxPipeline / FluxKontextPipeline folder. */
    public static FluxModelFiles fromDiffusersFolder(Path dir) {
        Path index = dir.resolve("model_index.json");
        Object cls = readJson(index).get("_class_name");
        if (cls instanceof String c && !c.startsWith("Flux"))
            throw new CheckpointException(index + " describes a " + c + "; dit4j's Flux pipeline loads FluxPipeline and "
                    + "FluxKontextPipeline folders");
        List<String> missing = missingInDiffusersFolder(dir);
        if (!missing.isEmpty())
            throw new CheckpointException("diffusers pipeline folder " + dir + " is incomplete; missing: " + String.join(", ", missing));
        Path sched = dir.resolve("scheduler/scheduler_config.json");
        return new FluxModelFiles("diffusers folder " + dir, FluxModelFiles.Layout.DIFFUSERS, dir.resolve("transformer"),
                dir.resolve("vae"), dir.resolve("text_encoder"), dir.resolve("text_encoder_2"), dir.resolve("tokenizer"),
                dir.resolve("tokenizer_2"), Files.isRegularFile(sched) ? SchedulerConfig.read(sched) : null);
    }

    /** What a diffusers Flux folder lacks (empty when complete), as paths relative to it. */
    static List<String> missingInDiffusersFolder(Path dir) {
        List<String> missing = new ArrayList<>();
        if (!Files.isRegularFile(dir.resolve("model_index.json"))) missing.add("model_index.json");
        for (String c : COMPONENTS) missing.addAll(missingWeights(dir, c));
        if (!Files.isRegularFile(dir.resolve("vae/config.json"))) missing.add("vae/config.json");
        Path tok = dir.resolve("tokenizer");
        if (!(Files.isRegularFile(tok.resolve("vocab.json")) && Files.isRegularFile(tok.resolve("merges.txt")))
                && !Files.isRegularFile(tok.resolve("tokenizer.json")))
            missing.add("tokenizer/vocab.json + tokenizer/merges.txt");
        Path tok2 = dir.resolve("tokenizer_2");
        if (!Files.isRegularFile(tok2.resolve("tokenizer.json")) && !Files.isRegularFile(tok2.resolve("spiece.model")))
            missing.add("tokenizer_2/tokenizer.json");
        return missing;
    }

    // ------------------------------------------------------------------------------------------------ hub

    /** {@code org/name} or {@code org/name@revision} through the Hugging Face cache. */
    public FluxModelFiles fromHub(String spec) {
        String[] parts = spec.split("@", 2);
        String repo = parts[0], revision = parts.length > 1 ? parts[1] : "main";
        Path cached = hub.cachedSnapshot(repo, revision);
        if (cached != null && missingInDiffusersFolder(cached).isEmpty()) return described(fromDiffusersFolder(cached), repo, revision, cached);
        if (hub.offline())
            throw offlineError(repo, revision, cached, "HF_HUB_OFFLINE is set");
        HfHub.Listing listing;
        try {
            listing = hub.list(repo, revision);
        } catch (HubException e) {
            if (e.offlineLike()) throw offlineError(repo, revision, cached, e.getMessage());
            throw e;
        }
        List<String> small = new ArrayList<>(), shards = new ArrayList<>();
        Set<String> files = listing.files();
        if (!files.contains("model_index.json"))
            throw new HubException("Hugging Face repository " + repo + "@" + revision + " has no model_index.json: it is not a "
                    + "diffusers pipeline. Download its files and pass them to --model instead");
        small.add("model_index.json");
        addIfListed(files, small, "scheduler/scheduler_config.json");
        List<String> indexes = new ArrayList<>();
        for (String c : COMPONENTS) {
            addIfListed(files, small, c + "/config.json");
            String chosen = null;
            for (String stem : DiffusersFolder.WEIGHT_STEMS) {
                if (files.contains(c + "/" + stem + ".safetensors.index.json")) { chosen = c + "/" + stem + ".safetensors.index.json"; indexes.add(chosen); small.add(chosen); break; }
                if (files.contains(c + "/" + stem + ".safetensors")) { chosen = c + "/" + stem + ".safetensors"; shards.add(chosen); break; }
            }
            if (chosen == null)
                throw new HubException("Hugging Face repository " + repo + " has no safetensors weights for " + c + "/ (dit4j reads "
                        + "safetensors only)");
        }
        for (String f : files) {
            if ((f.startsWith("tokenizer/") || f.startsWith("tokenizer_2/")) && f.matches(".*\\.(json|txt|model)$")) small.add(f);
        }
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

    private static void addIfListed(Set<String> files, List<String> out, String f) {
        if (files.contains(f)) out.add(f);
    }

    private static FluxModelFiles described(FluxModelFiles f, String repo, String revision, Path snap) {
        return new FluxModelFiles("Hugging Face " + repo + "@" + revision + " (" + snap + ")", f.layout(), f.transformer(), f.vae(),
                f.clip(), f.t5(), f.clipTokenizer(), f.t5Tokenizer(), f.scheduler());
    }

    private HubException offlineError(String repo, String revision, Path cached, String why) {
        String what;
        if (cached == null) {
            what = "nothing of it is in the cache " + hub.repoFolder(repo) + " (expected model_index.json, transformer/, vae/, "
                    + "text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/ with their config and safetensors files)";
        } else {
            what = "the cached snapshot " + cached + " lacks: " + String.join(", ", missingInDiffusersFolder(cached));
        }
        return new HubException("cannot load " + repo + "@" + revision + " without downloading: " + why + ", and " + what
                + ". Run once with network access (HF_TOKEN for gated repos such as black-forest-labs/FLUX.1-dev), or "
                + "`huggingface-cli download " + repo + "`, or pass local files to --model.", true);
    }

    // ------------------------------------------------------------------------------------------------ single files

    /** ComfyUI-style files; each file's roles are read from its tensor names. */
    public FluxModelFiles fromFiles(List<Path> files) {
        Map<Role, Path> roles = new EnumMap<>(Role.class);
        for (Path f : files) {
            List<Role> found = rolesOf(f);
            if (found.isEmpty())
                throw new CheckpointException(f + " is none of the parts of a Flux pipeline (no Flux transformer, VAE, CLIP or "
                        + "T5 tensors); `dit4j inspect " + f + "` shows what it holds");
            for (Role r : found) {
                Path prev = roles.putIfAbsent(r, f);
                if (prev != null)
                    throw new CheckpointException("both " + prev + " and " + f + " hold " + r.example + "; give one of them");
            }
        }
        List<String> missing = new ArrayList<>();
        for (Role r : Role.values()) if (!roles.containsKey(r)) missing.add(r.example);
        if (!missing.isEmpty())
            throw new CheckpointException("the Flux pipeline needs a transformer, a VAE, CLIP-L and T5-XXL; the files " + files
                    + " lack " + String.join(", ", missing) + ". Add them to --model (comma-separated or repeated)");
        Tokenizers tok = tokenizersFor(List.copyOf(roles.values()), roles.get(Role.T5));
        StringBuilder d = new StringBuilder("files ");
        for (Role r : Role.values()) d.append(r.name().toLowerCase()).append('=').append(roles.get(r).getFileName()).append(' ');
        return new FluxModelFiles(d.toString().strip(), FluxModelFiles.Layout.FILES, roles.get(Role.TRANSFORMER), roles.get(Role.VAE),
                roles.get(Role.CLIP), roles.get(Role.T5), tok.clip(), tok.t5(), null);
    }

    /** Tokenizer locations for single-file text encoders: a CLIP folder, and a T5 folder or checkpoint with an embedded model. */
    public record Tokenizers(Path clip, Path t5) {}

    /**
     * The tokenizers for single-file text encoders (see the class comment for the search order): {@code files} are the
     * checkpoint files given (their folder and its parent are searched after the models dir), {@code t5File} the one
     * holding the T5 encoder (its embedded {@code spiece_model} is used when no tokenizer folder is found).
     */
    public Tokenizers tokenizersFor(List<Path> files, Path t5File) {
        List<Path> searchRoots = new ArrayList<>();
        if (modelsDir != null) searchRoots.add(modelsDir);
        for (Path f : files) {
            Path parent = f.toAbsolutePath().getParent();
            if (parent != null) {
                searchRoots.add(parent);
                if (parent.getParent() != null) searchRoots.add(parent.getParent());
            }
        }
        return new Tokenizers(clipTokenizer(searchRoots), t5Tokenizer(searchRoots, t5File));
    }

    /** The roles a checkpoint file plays, from its tensor names. */
    public static List<Role> rolesOf(Path file) {
        List<Role> out = new ArrayList<>();
        try (WeightSource w = WeightSource.open(file)) {
            try {
                FluxWeights.detectPrefix(w);
                out.add(Role.TRANSFORMER);
            } catch (CheckpointException notFlux) {
                // not a transformer
            }
            for (String p : VaeWeights.KNOWN_PREFIXES) {
                if (w.contains(p + "decoder.conv_in.weight")) {
                    out.add(Role.VAE);
                    break;
                }
            }
            boolean clip = false, t5 = false;
            for (String n : w.names()) {
                if (n.endsWith("embeddings.token_embedding.weight") && !n.contains("vision")) clip = true;
                if (n.endsWith("encoder.block.0.layer.0.SelfAttention.q.weight")) t5 = true;
            }
            if (clip) out.add(Role.CLIP);
            if (t5) out.add(Role.T5);
        }
        return out;
    }

    private Path clipTokenizer(List<Path> roots) {
        for (Path r : roots) {
            Path d = r.resolve("tokenizers").resolve(CLIP_TOKENIZER_NAME);
            if ((Files.isRegularFile(d.resolve("vocab.json")) && Files.isRegularFile(d.resolve("merges.txt")))
                    || Files.isRegularFile(d.resolve("tokenizer.json"))) return d;
        }
        return hubTokenizer("tokenizer", List.of("tokenizer/vocab.json", "tokenizer/merges.txt"),
                List.of("tokenizer/special_tokens_map.json", "tokenizer/tokenizer_config.json"), roots, CLIP_TOKENIZER_NAME,
                "vocab.json and merges.txt of openai/clip-vit-large-patch14");
    }

    private Path t5Tokenizer(List<Path> roots, Path t5File) {
        for (Path r : roots) {
            Path d = r.resolve("tokenizers").resolve(T5_TOKENIZER_NAME);
            if (Files.isRegularFile(d.resolve("tokenizer.json")) || Files.isRegularFile(d.resolve("spiece.model"))) return d;
        }
        if (EmbeddedTokenizer.hasSpieceModel(t5File)) return t5File;
        return hubTokenizer("tokenizer_2", List.of("tokenizer_2/tokenizer.json"),
                List.of("tokenizer_2/special_tokens_map.json", "tokenizer_2/tokenizer_config.json", "tokenizer_2/spiece.model"),
                roots, T5_TOKENIZER_NAME, "tokenizer.json (or spiece.model) of google/t5-v1_1-xxl");
    }

    /** A tokenizer folder of {@value #TOKENIZER_REPO} from the cache, downloaded when missing and online. */
    private Path hubTokenizer(String folder, List<String> required, List<String> optional, List<Path> roots, String name, String what) {
        Path cached = hub.cachedSnapshot(TOKENIZER_REPO, "main");
        if (cached != null && required.stream().allMatch(f -> Files.isRegularFile(cached.resolve(f)))) return cached.resolve(folder);
        String why;
        if (hub.offline()) {
            why = "HF_HUB_OFFLINE is set";
        } else {
            try {
                HfHub.Listing l = hub.list(TOKENIZER_REPO, "main");
                List<String> files = new ArrayList<>(required);
                for (String f : optional) if (l.files().contains(f)) files.add(f);
                return hub.ensure(TOKENIZER_REPO, "main", l.commit(), files, listener).resolve(folder);
            } catch (HubException e) {
                if (!e.offlineLike()) throw e;
                why = e.getMessage();
            }
        }
        Path fill = (modelsDir != null ? modelsDir : roots.isEmpty() ? Path.of("models") : roots.getLast()).resolve("tokenizers").resolve(name);
        throw new HubException("no tokenizer for the single-file text encoder: put the " + what + " into " + fill
                + " (or pass --models-dir), or run once online so that dit4j can fetch " + TOKENIZER_REPO + "/" + folder
                + " into the Hugging Face cache (" + why + ")", true);
    }
}
