package org.dit4j.server.flux;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.cuda.CudaBackend;
import org.dit4j.cuda.CudaDriver;
import org.dit4j.engine.Backends;
import org.dit4j.engine.flux.FluxModelResolver;
import org.dit4j.engine.flux.FluxPipeline;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.models.flux.FluxConfig;
import org.dit4j.models.flux.FluxWeights;
import org.dit4j.models.flux.lora.LoraFile;
import org.dit4j.models.text.ClipTextModel;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.vae.AutoencoderKL;
import org.dit4j.models.vae.VaeConfig;
import org.dit4j.server.engine.Checkpoint;
import org.dit4j.server.engine.DeviceInfo;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.LoraWeights;
import org.dit4j.server.engine.MeshWorld;
import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;
import org.dit4j.server.wan.WanEngine;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * The engine behind {@code dit4j serve}: Flux.1 here — loads ComfyUI model files with the engine's loaders
 * ({@link FluxWeights}, {@link ClipTextModel}, {@link T5Encoder}, {@link AutoencoderKL}; roles and tokenizers as
 * {@link FluxModelResolver} finds them) and runs ComfyUI's sampling semantics ({@link FluxSampler}) — and Wan2.1
 * text-to-video through {@link WanEngine}: a Wan transformer or VAE file (told by its tensor names) and CLIPLoader type
 * {@code wan} load there, and MODELs loaded there sample there.
 *
 * <h2>Precision</h2>
 * On a GPU the transformer, text encoders and VAE compute in BF16 (ComfyUI's choice for Flux on recent GPUs); on the CPU
 * everything is F32. UNETLoader's weight_dtype: {@code default} loads the weights in the compute dtype (a file stored in
 * fp8 is widened exactly, so the products equal ComfyUI's manual cast); {@code fp8_e4m3fn} / {@code fp8_e5m2} keep the
 * linear weights in that fp8 format and widen them per product as ComfyUI does; {@code fp8_e4m3fn_fast} is treated as
 * {@code fp8_e4m3fn} (dit4j has no fp8 matrix product yet). Biases and norm scales stay in the compute dtype (ComfyUI
 * rounds them to fp8 too).
 *
 * <p>All calls come from the server's single prompt worker; the engine is not meant for concurrent use.
 */
public final class FluxEngine implements ModelProvider, Sampling, AutoCloseable {

    /** ComfyUI's minimum T5 length for Flux (its T5XXL tokenizer pads to at least this many tokens). */
    public static final int COMFY_T5_MIN_LENGTH = 256;

    private final Ops ops;
    private final FluxModelResolver resolver;
    private final boolean ownsOps;
    private final long deviceTotalBytes;
    private Ops cpu;
    private final MeshWorld meshWorld;
    private final FluxMesh mesh;
    private final WanEngine wan;

    /**
     * @param ops       the device models load onto
     * @param modelsDir the models folder, searched for {@code tokenizers/<name>/} (single-file text encoders)
     * @param hub       Hugging Face cache for tokenizers not found locally (null: the environment's)
     */
    public FluxEngine(Ops ops, Path modelsDir, HfHub hub) { this(ops, modelsDir, hub, false); }

    private FluxEngine(Ops ops, Path modelsDir, HfHub hub, boolean ownsOps) {
        this.ops = ops;
        this.ownsOps = ownsOps;
        this.resolver = new FluxModelResolver(hub == null ? HfHub.fromEnvironment() : hub, modelsDir, null);
        this.meshWorld = new MeshWorld(ops);       // one set of ranks for the Flux and the Wan mesh
        this.mesh = new FluxMesh(this, meshWorld);
        this.wan = new WanEngine(ops, activation(), modelsDir, hub, this::cpu, meshWorld);
        if (ops.device().isCpu()) cpu = ops;
        long total = -1;
        if (ops instanceof CudaBackend cuda) {
            try {
                cuda.synchronize();                          // makes the backend's context current on this thread
                total = CudaDriver.get().memoryInfo()[1];
            } catch (RuntimeException e) {
                total = -1;                                  // reported as unknown
            }
        }
        this.deviceTotalBytes = total;
    }

    /** Opens a backend ({@code auto}, {@code cpu}, {@code cuda}, {@code cuda:N}) and an engine on it, which owns it. */
    public static FluxEngine open(String backend, Path modelsDir) {
        return new FluxEngine(Backends.open(backend), modelsDir, null, true);
    }

    public Ops ops() { return ops; }

    /** Compute dtype of the transformer, text encoders (on the main device) and VAE. */
    DType activation() { return ops.device().isCpu() ? DType.F32 : DType.BF16; }

    private Ops cpu() {
        if (cpu == null) cpu = new CpuBackend();
        return cpu;
    }

    // ------------------------------------------------------------------------------------------------ loading

    /** Opens a model file; pickle checkpoints are refused by name before any byte is read. */
    static WeightSource open(Path file) {
        requireSafetensors(file);
        return WeightSource.open(file);
    }

    private static void requireSafetensors(Path file) {
        String n = file.getFileName().toString().toLowerCase(Locale.ROOT);
        for (String ext : List.of(".ckpt", ".pt", ".pt2", ".pth", ".bin", ".pkl"))
            if (n.endsWith(ext))
                throw new CheckpointException(file.getFileName() + " is a PyTorch pickle checkpoint (" + ext + "); dit4j loads safetensors "
                        + "files only (pickles can run code when loaded): convert it to .safetensors or use the .safetensors release");
    }

    /** The weight dtype of UNETLoader's {@code weight_dtype} on this device. */
    DType weightDtype(String weightDtype) {
        return switch (weightDtype == null ? "default" : weightDtype) {
            case "default" -> activation();
            case "fp8_e4m3fn", "fp8_e4m3fn_fast" -> DType.F8_E4M3;
            case "fp8_e5m2" -> DType.F8_E5M2;
            default -> throw new IllegalArgumentException("weight_dtype '" + weightDtype
                    + "' is not one of default, fp8_e4m3fn, fp8_e4m3fn_fast, fp8_e5m2");
        };
    }

    @Override public DiffusionModel loadDiffusionModel(Path file, String weightDtype) {
        DType wd = weightDtype(weightDtype);
        try (WeightSource w = open(file)) {
            if (WanEngine.holdsTransformer(w)) return wan.loadDiffusionModel(w, file, wd);
            return loadTransformer(w, file, wd);
        }
    }

    private FluxModel loadTransformer(WeightSource w, Path file, DType wd) {
        String prefix;
        FluxConfig cfg;
        try {
            prefix = FluxWeights.detectPrefix(w);
            cfg = FluxConfig.detect(w, prefix);
        } catch (CheckpointException e) {
            throw new CheckpointException(file.getFileName() + " is not a Flux.1 transformer (dit4j's server runs Flux.1 dev, "
                    + "schnell and Kontext): " + e.getMessage(), e);
        }
        DType vectors = wd == DType.F8_E4M3 || wd == DType.F8_E5M2 ? activation() : wd;
        FluxWeights weights = FluxWeights.load(ops, w, prefix, cfg, wd, vectors);
        String name = file.getFileName().toString();
        String family = !cfg.guidanceEmbed() ? "flux-schnell" : name.toLowerCase(Locale.ROOT).contains("kontext") ? "flux-kontext" : "flux-dev";
        return new FluxModel(name, family, file, prefix, ops, cfg, wd, vectors, weights);
    }

    @Override public TextEncoder loadTextEncoder(List<Path> files, String type, String device) {
        if ("wan".equals(type)) {
            if (files.size() != 1)
                throw new IllegalArgumentException("type 'wan' takes one text encoder (umT5-XXL); load it with CLIPLoader");
            requireSafetensors(files.getFirst());
            return wan.loadTextEncoder(files.getFirst(), "cpu".equals(device));
        }
        if (files.size() == 2 && !"flux".equals(type))
            throw new IllegalArgumentException("DualCLIPLoader type '" + type + "' is not supported: dit4j's engine runs Flux.1, "
                    + "whose text encoders are clip_l + t5xxl with type 'flux'");
        Path clipFile = null, t5File = null;
        for (Path f : files) {
            requireSafetensors(f);
            for (FluxModelResolver.Role r : FluxModelResolver.rolesOf(f)) {
                if (r == FluxModelResolver.Role.CLIP) clipFile = pick(clipFile, f, "CLIP-L");
                if (r == FluxModelResolver.Role.T5) t5File = pick(t5File, f, "T5-XXL");
            }
        }
        if (clipFile == null || t5File == null) {
            StringBuilder names = new StringBuilder();
            for (Path f : files) names.append(names.isEmpty() ? "" : ", ").append(f.getFileName());
            throw new CheckpointException("Flux needs the CLIP-L and the T5-XXL text encoder; " + names + " hold"
                    + (files.size() == 1 ? "s" : "") + " no " + (clipFile == null && t5File == null ? "CLIP-L or T5-XXL"
                    : clipFile == null ? "CLIP-L (clip_l.safetensors)" : "T5-XXL (t5xxl_fp16.safetensors)")
                    + " text encoder" + (files.size() == 1 ? "; load both with DualCLIPLoader (type flux)" : ""));
        }
        return loadText(files, clipFile, t5File, "cpu".equals(device));
    }

    private static Path pick(Path prev, Path f, String what) {
        if (prev != null && !prev.equals(f))
            throw new CheckpointException("both " + prev.getFileName() + " and " + f.getFileName() + " hold a " + what
                    + " text encoder; give one of them");
        return f;
    }

    private FluxTextEncoder loadText(List<Path> files, Path clipFile, Path t5File, boolean onCpu) {
        FluxModelResolver.Tokenizers tok = resolver.tokenizersFor(files, t5File);
        Ops o = onCpu ? cpu() : ops;
        DType act = o.device().isCpu() ? DType.F32 : activation();
        var clipTok = FluxPipeline.loadClipTokenizer(tok.clip());
        var t5Tok = FluxPipeline.loadT5Tokenizer(tok.t5());
        ClipTextModel clip;
        try (WeightSource w = open(clipFile)) {
            clip = ClipTextModel.load(o, w, act);
        }
        T5Encoder t5;
        try (WeightSource w = open(t5File)) {
            t5 = T5Encoder.load(o, w, act);
        } catch (RuntimeException e) {
            clip.close();
            throw e;
        }
        try {
            return new FluxTextEncoder(clipFile.getFileName() + "+" + t5File.getFileName(), o, clipTok, clip, t5Tok, t5);
        } catch (RuntimeException e) {
            clip.close();
            t5.close();
            throw e;
        }
    }

    @Override public Vae loadVae(Path file) {
        try (WeightSource w = open(file)) {
            if (WanEngine.holdsVae(w)) return wan.loadVae(w, file);
            return loadVae(w, file);
        }
    }

    private FluxVae loadVae(WeightSource w, Path file) {
        VaeConfig cfg;
        try {
            cfg = AutoencoderKL.readConfig(w, file);
        } catch (CheckpointException e) {
            throw new CheckpointException(file.getFileName() + " is not a VAE dit4j can load (expected the Flux VAE, ae.safetensors): "
                    + e.getMessage(), e);
        }
        DType dt = activation();
        return new FluxVae(file.getFileName().toString(), ops, AutoencoderKL.load(ops, w, cfg, dt), dt);
    }

    @Override public Checkpoint loadCheckpoint(Path file) {
        requireSafetensors(file);
        List<FluxModelResolver.Role> roles = FluxModelResolver.rolesOf(file);
        if (!roles.contains(FluxModelResolver.Role.TRANSFORMER))
            throw new CheckpointException("checkpoint " + file.getFileName() + " holds no Flux.1 transformer (no 'model.diffusion_model.img_in.weight' "
                    + "or similar); dit4j's server runs Flux.1 checkpoints");
        FluxModel model;
        try (WeightSource w = open(file)) {
            model = loadTransformer(w, file, activation());
        }
        TextEncoder clip = null;
        Vae vae = null;
        try {
            if (roles.contains(FluxModelResolver.Role.CLIP) && roles.contains(FluxModelResolver.Role.T5))
                clip = loadText(List.of(file), file, file, false);
            if (roles.contains(FluxModelResolver.Role.VAE)) {
                try (WeightSource w = open(file)) {
                    vae = loadVae(w, file);
                }
            }
        } catch (RuntimeException e) {
            model.close();
            if (clip != null) clip.close();
            throw e;
        }
        return new Checkpoint(model, clip, vae);
    }

    /**
     * A LoRA file (LoraLoaderModelOnly, ParallelLoraLoader…): checked to be a LoRA here, bound to the model and merged
     * into its weights when a sampler runs ({@link FluxModel#transformer(List)}).
     */
    @Override public LoraWeights loadLora(Path file) {
        try (WeightSource w = open(file)) {
            if (!LoraFile.looksLikeLora(w))
                throw new CheckpointException(file.getFileName() + " is not a LoRA file (no lora_up/lora_down, lora_A/lora_B or alpha "
                        + "tensors); put LoRAs into models/loras");
            LoraFile.read(w);                                   // key styles understood (fails naming what is not)
        }
        return new FluxLora(file);
    }

    /** Returns pooled device memory to the driver (the loaded weights stay with the node outputs that hold them). */
    @Override public void unloadModels() {
        if (ops instanceof CudaBackend cuda) cuda.allocator().emptyCache();
    }

    @Override public List<DeviceInfo> devices() {
        List<DeviceInfo> out = new ArrayList<>();
        if (ops instanceof CudaBackend cuda) {
            // the driver answers memory queries only on a thread with the context current; /system_stats runs on an HTTP
            // thread, so free memory is the total less what dit4j's allocator holds (other processes are not seen)
            long free = deviceTotalBytes < 0 ? -1 : Math.max(0, deviceTotalBytes - cuda.allocator().reservedBytes());
            out.add(new DeviceInfo(cuda.name(), "cuda", cuda.device().index(), deviceTotalBytes, free));
        } else {
            var mem = org.dit4j.server.HostMemory.read();
            out.add(new DeviceInfo("cpu", "cpu", 0, mem.total(), mem.free()));
        }
        return out;
    }

    // ------------------------------------------------------------------------------------------------ sampling

    @Override public List<String> samplerNames() { return FluxSampler.SAMPLERS; }

    @Override public SampleResult sample(SampleJob job, StepObserver observer) {
        if (WanEngine.owns(job)) return wan.sample(job, observer);
        return new FluxSampler(this).sample(job, observer);
    }

    /** The multi-GPU mesh (built on the first prompt with num_gpus > 1, rebuilt when the layout changes). */
    FluxMesh mesh() { return mesh; }

    /** The ranks of multi-GPU sampling shared by the Flux and the Wan mesh. */
    public MeshWorld meshWorld() { return meshWorld; }

    @Override public void close() {
        mesh.close();
        wan.close();
        if (cpu != null && cpu != ops && cpu instanceof AutoCloseable c) closeQuietly(c);
        if (ownsOps && ops instanceof AutoCloseable c) closeQuietly(c);
    }

    private static void closeQuietly(AutoCloseable c) {
        try {
            c.close();
        } catch (Exception e) {
            System.err.println("dit4j server: closing " + c + " failed: " + e);
        }
    }

    @Override public String toString() { return "FluxEngine[" + ops.name() + "]"; }
}
