package org.dit4j.server.nodes;

import org.dit4j.server.engine.ModelProvider;
import org.dit4j.server.engine.Sampling;
import org.dit4j.server.files.ModelFolders;

import java.nio.file.Path;

/**
 * What nodes may use: the model folders, the input/output/temp directories, the engine, and server options.
 *
 * @param defaultGpus     the {@code --gpus} value: ParallelUNETLoader's default num_gpus
 * @param disableMetadata true: SaveImage writes no prompt/workflow text chunks (ComfyUI's --disable-metadata)
 */
public record NodeEnv(ModelFolders models, Path inputDir, Path outputDir, Path tempDir, ModelProvider provider, Sampling sampling,
                      int defaultGpus, boolean disableMetadata) {}
