package org.dit4j.engine.flux;

import java.nio.file.Path;

/**
 * Where the parts of a Flux pipeline are. Each weight path is what {@link org.dit4j.core.io.WeightSource#open}
 * accepts (a file, a sharded index, or a folder); an all-in-one checkpoint may be the path of several parts.
 *
 * @param description   one line for logs ("diffusers folder …", "files …", "hub repo@commit")
 * @param layout        how the model was given (decides the loader names in the ComfyUI prompt chunk)
 * @param transformer   the Flux transformer
 * @param vae           the VAE: a file, or a diffusers {@code vae/} folder (whose config.json is read)
 * @param clip          the CLIP-L text encoder
 * @param t5            the T5-XXL encoder
 * @param clipTokenizer folder with vocab.json + merges.txt or tokenizer.json
 * @param t5Tokenizer   folder with tokenizer.json or spiece.model, or a checkpoint file holding a {@code spiece_model} tensor
 * @param scheduler     diffusers scheduler settings, or null for the defaults of the model kind
 */
public record FluxModelFiles(String description, Layout layout, Path transformer, Path vae, Path clip, Path t5,
                             Path clipTokenizer, Path t5Tokenizer, SchedulerConfig scheduler) {

    /** How the model was given. */
    public enum Layout { DIFFUSERS, FILES }

    public FluxModelFiles withTokenizers(Path clipTok, Path t5Tok) {
        return new FluxModelFiles(description, layout, transformer, vae, clip, t5, clipTok, t5Tok, scheduler);
    }

    /** The scheduler settings for a model with or without a guidance embedder. */
    public SchedulerConfig schedulerFor(boolean guidanceEmbed) {
        return scheduler != null ? scheduler : SchedulerConfig.forModel(guidanceEmbed);
    }
}
