package org.dit4j.server.wan;

import org.dit4j.core.io.CheckpointException;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.engine.flux.EmbeddedTokenizer;
import org.dit4j.engine.hub.HfHub;
import org.dit4j.engine.wan.WanModelResolver;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.models.vae.wan.WanVae;
import org.dit4j.models.vae.wan.WanVaeConfig;
import org.dit4j.models.vae.wan.WanVaeWeights;
import org.dit4j.models.wan.WanConfig;
import org.dit4j.models.wan.WanWeights;
import org.dit4j.server.engine.DiffusionModel;
import org.dit4j.server.engine.MeshWorld;
import org.dit4j.server.engine.SampleJob;
import org.dit4j.server.engine.SampleResult;
import org.dit4j.server.engine.StepObserver;
import org.dit4j.server.engine.TextEncoder;
import org.dit4j.server.engine.Vae;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Supplier;

/**
 * The Wan2.1 text-to-video part of the engine behind {@code dit4j serve} (the Flux engine hands Wan files to it): loads
 * ComfyUI's Wan files with the engine's loaders ({@link WanWeights}, {@link T5Encoder} for umT5-XXL, {@link WanVae}) and
 * runs ComfyUI's sampling semantics ({@link WanSampler}). Files: the diffusion model ({@code wan2.1_t2v_1.3B_bf16.safetensors},
 * 14B; original names, with or without {@code model.diffusion_model.}), umT5-XXL ({@code umt5_xxl_fp8_e4m3fn_scaled.safetensors}
 * or fp16; tokenizer from {@code models/tokenizers/umt5-xxl/}, the file's {@code spiece_model} or the Hugging Face cache), the
 * VAE ({@code wan_2.1_vae.safetensors}). Precision as the Flux engine's: BF16 on GPUs (umT5 included), F32 on the CPU.
 */
public final class WanEngine implements AutoCloseable {

    private final Ops ops;
    private final DType act;
    private final WanModelResolver resolver;
    private final Supplier<Ops> cpu;
    private final WanMesh mesh;

    /**
     * @param ops       the device models load onto
     * @param act       compute dtype on it (BF16 on GPUs, F32 on the CPU)
     * @param modelsDir the models folder, searched for {@code tokenizers/umt5-xxl/}
     * @param hub       Hugging Face cache for the tokenizer when it is not found locally
     * @param cpu       the CPU backend (CLIPLoader device cpu)
     * @param meshWorld the ranks of multi-GPU sampling (num_gpus &gt; 1), shared with the Flux engine's mesh
     */
    public WanEngine(Ops ops, DType act, Path modelsDir, HfHub hub, Supplier<Ops> cpu, MeshWorld meshWorld) {
        this.ops = ops;
        this.act = act;
        this.resolver = new WanModelResolver(hub == null ? HfHub.fromEnvironment() : hub, modelsDir, null);
        this.cpu = cpu;
        this.mesh = new WanMesh(act, meshWorld);
    }

    /** Whether {@code w} holds a Wan transformer (original, ComfyUI or diffusers names). */
    public static boolean holdsTransformer(WeightSource w) {
        try {
            WanWeights.detectPrefix(w);
            return true;
        } catch (CheckpointException notWan) {
            return false;
        }
    }

    /** Whether {@code w} holds a Wan VAE. */
    public static boolean holdsVae(WeightSource w) {
        try {
            WanVaeWeights.detectPrefix(w);
            return true;
        } catch (CheckpointException notWan) {
            return false;
        }
    }

    /** UNETLoader of a Wan file; {@code weightDtype} as the Flux engine maps UNETLoader's weight_dtype. */
    public DiffusionModel loadDiffusionModel(WeightSource w, Path file, DType weightDtype) {
        WanConfig cfg = WanConfig.detect(w);
        if (cfg.inChannels() != 16)
            throw new CheckpointException(file.getFileName() + " is a Wan model with " + cfg.inChannels() + " input channels (image-to-video "
                    + "or another variant); dit4j's server runs Wan2.1 text-to-video (wan2.1_t2v_1.3B / 14B)");
        DType vectors = weightDtype == DType.F8_E4M3 || weightDtype == DType.F8_E5M2 ? act : weightDtype;
        String prefix = WanWeights.detectPrefix(w);
        WanWeights weights = WanWeights.load(ops, w, prefix, cfg, weightDtype, vectors);
        return new WanModel(file.getFileName().toString(), ops, cfg, weights, file, prefix, weightDtype, vectors);
    }

    /** CLIPLoader type wan: umT5-XXL and its tokenizer. */
    public TextEncoder loadTextEncoder(Path file, boolean onCpu) {
        if (!WanModelResolver.rolesOf(file).contains(WanModelResolver.Role.T5))
            throw new CheckpointException(file.getFileName() + " holds no umT5 text encoder (no encoder.block.0.layer.0.SelfAttention.q.weight); "
                    + "CLIPLoader type wan needs umT5-XXL, e.g. umt5_xxl_fp8_e4m3fn_scaled.safetensors or umt5_xxl_fp16.safetensors");
        Path tok = resolver.tokenizerFor(file);
        T5Tokenizer tokenizer = Files.isDirectory(tok) ? T5Tokenizer.fromFolder(tok)
                : T5Tokenizer.fromSentencePiece(EmbeddedTokenizer.spieceModel(tok), tok + " (embedded spiece_model)");
        Ops o = onCpu ? cpu.get() : ops;
        DType a = o.device().isCpu() ? DType.F32 : act == DType.F16 ? DType.BF16 : act;
        T5Encoder t5;
        try (WeightSource w = WeightSource.open(file)) {
            t5 = T5Encoder.load(o, w, a);
        }
        if (!t5.config().perLayerBias()) {
            t5.close();
            throw new CheckpointException(file.getFileName() + " is a T5 v1.1 encoder (one shared position bias), not umT5: Wan2.1 needs "
                    + "umT5-XXL (umt5_xxl_fp8_e4m3fn_scaled.safetensors or umt5_xxl_fp16.safetensors)");
        }
        return new WanTextEncoder(file.getFileName().toString(), o, tokenizer, t5);
    }

    /** VAELoader of the Wan VAE. */
    public Vae loadVae(WeightSource w, Path file) {
        WanVaeConfig cfg = WanVae.readConfig(w, file);
        if (!cfg.hasDecoder())
            throw new CheckpointException("the Wan VAE " + file.getFileName() + " has no decoder weights; give the full VAE "
                    + "(wan_2.1_vae.safetensors)");
        return new WanVideoVae(file.getFileName().toString(), ops, WanVae.load(ops, w, cfg, act), act);
    }

    /** Whether the job's model is one of this engine's. */
    public static boolean owns(SampleJob job) { return job.model().base() instanceof WanModel; }

    public SampleResult sample(SampleJob job, StepObserver observer) {
        return new WanSampler(ops, act, mesh).sample(job, observer);
    }

    /** The multi-GPU mesh of Wan models (ParallelUNETLoader num_gpus &gt; 1); its ranks are shared with the Flux mesh. */
    WanMesh mesh() { return mesh; }

    /** Releases the Wan ranks' weights (the shared ranks themselves are closed by their owner). */
    @Override public void close() { mesh.close(); }
}
