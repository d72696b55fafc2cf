package org.dit4j.engine.wan;

import java.nio.file.Path;

/**
 * Where the parts of a Wan2.1 text-to-video pipeline are. Weight paths are what
 * {@link org.dit4j.core.io.WeightSource#open} accepts (a file, a sharded index or a folder).
 *
 * @param description one line for logs
 * @param layout      how the model was given
 * @param transformer the Wan transformer (original/ComfyUI or diffusers naming)
 * @param vae         the Wan VAE: a file, or a diffusers {@code vae/} folder
 * @param t5          the umT5-XXL encoder (Hugging Face {@code UMT5EncoderModel} naming)
 * @param tokenizer   folder with tokenizer.json or spiece.model, or a checkpoint file holding {@code spiece_model}
 * @param scheduler   the diffusers scheduler settings of the folder, or null (files: the Wan reference's defaults)
 */
public record WanModelFiles(String description, Layout layout, Path transformer, Path vae, Path t5, Path tokenizer,
                            WanScheduler scheduler) {

    /** How the model was given. */
    public enum Layout { DIFFUSERS, FILES }

    /** The scheduler for this model: the folder's, else the Wan reference's (UniPC, shift 5.0). */
    public WanScheduler schedulerOrDefault() { return scheduler != null ? scheduler : WanScheduler.WAN_REFERENCE; }
}
