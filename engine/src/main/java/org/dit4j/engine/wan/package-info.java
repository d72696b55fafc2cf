/**
 * Wan2.1 text-to-video end to end: {@link org.dit4j.engine.wan.WanPipeline} (umT5 text conditioning with Wan's
 * trimming and zero padding, torch-compatible noise, UniPC/Euler flow sampling with CFG, streamed VAE decode),
 * {@link org.dit4j.engine.wan.WanModelResolver} (diffusers folders, ComfyUI-style files, Hugging Face repo ids).
 */
package org.dit4j.engine.wan;
