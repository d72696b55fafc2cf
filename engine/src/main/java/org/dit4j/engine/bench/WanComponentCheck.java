package org.dit4j.engine.bench;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.dit4j.core.io.SafeTensorsWriter;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.dit4j.engine.Backends;
import org.dit4j.engine.wan.WanModelFiles;
import org.dit4j.engine.wan.WanModelResolver;
import org.dit4j.engine.wan.WanText;
import org.dit4j.models.text.T5Encoder;
import org.dit4j.models.text.tokenizer.Encoding;
import org.dit4j.models.text.tokenizer.T5Tokenizer;
import org.dit4j.models.vae.wan.WanVae;

/**
 * The Wan2.1 pipeline's parts one at a time, on inputs written by {@code scripts/reference/wan_pipeline_reference.py},
 * for the per-component comparison with diffusers ({@code UMT5EncoderModel} through {@code WanPipeline._get_t5_prompt_embeds},
 * {@code AutoencoderKLWan.decode} and {@code .encode}).
 * <pre>java -cp dit4j.jar org.dit4j.engine.bench.WanComponentCheck MODEL INPUTS OUT BACKEND DTYPE</pre>
 * MODEL: a diffusers Wan folder, or {@code UMT5_FILE,TOKENIZER_DIR,VAE} (a umT5 safetensors file, a folder with
 * tokenizer.json, a VAE file or diffusers vae/ folder; what RandomWanFiles writes). INPUTS (safetensors): {@code vae.latent} F32 [N, z, F, h, w] (the transformer's
 * normalised latent space), {@code vae.video} F32 [N, 3, T, H, W] in [−1, 1], metadata {@code prompt.0}, {@code prompt.1}, …
 * OUT (safetensors, all F32): {@code text.ids} [P, 512] and {@code text.mask} [P, 512] (umT5 token ids and attention mask of
 * the cleaned prompts), {@code text.states} [P, 512, D] (umT5 states, rows past each prompt zeroed: what the transformer
 * reads), {@code vae.decoded} [N, 3, T', H', W'] (unclamped), {@code vae.encoded} [N, z, F', h', w'] (the raw posterior
 * mean). BACKEND: cpu, cuda, cuda:N; DTYPE: F32 or BF16 (umT5 activations and VAE weights/activations, as {@code dit4j
 * generate --dtype} sets them). Prints the wall time of each part.
 */
public final class WanComponentCheck {
    private WanComponentCheck() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: WanComponentCheck FOLDER INPUTS.safetensors OUT.safetensors BACKEND DTYPE(F32|BF16)");
            System.exit(2);
        }
        DType dtype = DType.valueOf(args[4].toUpperCase(Locale.ROOT));
        if (dtype != DType.F32 && dtype != DType.BF16)
            throw new IllegalArgumentException("DTYPE must be F32 or BF16, got " + args[4]);
        try (Ops ops = Backends.open(args[3])) {
            String[] m = args[0].split(",");
            Map<String, Tensor> out = m.length == 3 ? run(ops, Path.of(m[0]), Path.of(m[1]), Path.of(m[2]), Path.of(args[1]), dtype)
                    : run(ops, Path.of(args[0]), Path.of(args[1]), dtype);
            SafeTensorsWriter.write(Path.of(args[2]), out, Map.of("dit4j", "WanComponentCheck " + ops.name() + " " + dtype));
            for (Tensor t : out.values()) t.close();
        }
    }

    /** {@link #run(Ops, Path, Path, Path, Path, DType)} on a diffusers Wan folder's umT5, tokenizer and VAE. */
    public static Map<String, Tensor> run(Ops ops, Path folder, Path inputs, DType dtype) {
        WanModelFiles files = WanModelResolver.fromDiffusersFolder(folder);
        return run(ops, files.t5(), files.tokenizer(), files.vae(), inputs, dtype);
    }

    /** Runs the three parts; returns host F32 tensors owned by the caller. */
    public static Map<String, Tensor> run(Ops ops, Path t5File, Path tok, Path vaePath, Path inputs, DType dtype) {
        Map<String, Tensor> out = new LinkedHashMap<>();
        try (WeightSource in = WeightSource.open(inputs)) {
            List<String> prompts = new ArrayList<>();
            for (int i = 0; in.metadata().containsKey("prompt." + i); i++) prompts.add(in.metadata().get("prompt." + i));
            if (prompts.isEmpty())
                throw new IllegalArgumentException(inputs + " has no prompt.0 metadata entry: write it with wan_pipeline_reference.py");

            // umT5, as WanPipeline runs it
            long t0 = System.nanoTime();
            T5Tokenizer tokenizer = Files.isDirectory(tok) ? T5Tokenizer.fromFolder(tok) : T5Tokenizer.fromTokenizerJson(tok);
            List<Encoding> enc = WanText.tokenize(tokenizer, prompts, WanText.MAX_LENGTH);
            int len = WanText.MAX_LENGTH;
            float[] ids = new float[prompts.size() * len], mask = new float[ids.length];
            for (int i = 0; i < enc.size(); i++)
                for (int j = 0; j < len; j++) {
                    ids[i * len + j] = enc.get(i).ids()[j];
                    mask[i * len + j] = enc.get(i).attentionMask()[j];
                }
            out.put("text.ids", Tensor.of(ids, prompts.size(), len));
            out.put("text.mask", Tensor.of(mask, prompts.size(), len));
            try (WeightSource w = WeightSource.open(t5File); T5Encoder t5 = T5Encoder.load(ops, w, dtype)) {
                try (Scope s = Scope.open()) {
                    Tensor h = WanText.encode(ops, tokenizer, t5, prompts, len, DType.F32);
                    out.put("text.states", host(ops, s, h));
                }
            }
            ops.synchronize();
            System.out.printf(Locale.ROOT, "umT5: %d prompts in %.2f s%n", prompts.size(), (System.nanoTime() - t0) / 1e9);

            // VAE decode and encode
            t0 = System.nanoTime();
            try (WanVae vae = WanVae.load(ops, vaePath, dtype)) {
                try (Scope s = Scope.open()) {
                    Tensor z = device(ops, in.tensor("vae.latent"), dtype);
                    out.put("vae.decoded", host(ops, s, vae.decode(z)));
                }
                ops.synchronize();
                System.out.printf(Locale.ROOT, "VAE decode in %.2f s%n", (System.nanoTime() - t0) / 1e9);
                t0 = System.nanoTime();
                try (Scope s = Scope.open()) {
                    Tensor x = device(ops, in.tensor("vae.video"), dtype);
                    out.put("vae.encoded", host(ops, s, vae.encodeRaw(x)));
                }
                ops.synchronize();
                System.out.printf(Locale.ROOT, "VAE encode in %.2f s%n", (System.nanoTime() - t0) / 1e9);
            }
        } catch (RuntimeException | Error e) {
            for (Tensor t : out.values()) t.close();
            throw e;
        }
        return out;
    }

    /** A host F32 input on the device in {@code dtype} (owned by the current scope). */
    private static Tensor device(Ops ops, Tensor hostF32, DType dtype) {
        Tensor d = ops.device().isCpu() ? ops.copy(hostF32) : ops.upload(hostF32);
        hostF32.close();
        return d.dtype() == dtype ? d : ops.cast(d, dtype);
    }

    /** x as a host F32 tensor that outlives scope {@code s}. */
    private static Tensor host(Ops ops, Scope s, Tensor x) {
        Tensor f = x.dtype() == DType.F32 ? x : ops.cast(x, DType.F32);
        Tensor h = ops.device().isCpu() ? ops.copy(f) : ops.toHost(f);
        return Scope.detach(h);
    }
}
