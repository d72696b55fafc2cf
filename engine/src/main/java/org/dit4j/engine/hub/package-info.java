/**
 * Hugging Face model repositories through the standard cache ({@code HF_HOME}/{@code HF_HUB_CACHE}, shared with
 * huggingface_hub, diffusers and transformers), with downloads over {@code java.net.http} ({@code HF_TOKEN},
 * {@code HF_HUB_OFFLINE}, {@code HF_ENDPOINT}). See {@link org.dit4j.engine.hub.HfHub}.
 */
package org.dit4j.engine.hub;
