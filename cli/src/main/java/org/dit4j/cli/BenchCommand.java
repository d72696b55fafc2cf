package org.dit4j.cli;

import org.dit4j.engine.bench.FluxBench;
import org.dit4j.engine.bench.WanBench;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.List;

/** {@code dit4j bench}: transformer forward timing with random weights (the README's main job). */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Time one transformer forward (batch 1). Without --weights the full-size architecture runs with random "
                + "weights. On a GPU: bf16, eager and CUDA-graph replay; without one: a reduced configuration on the CPU backend.")
final class BenchCommand implements Runnable {

    @Option(names = "--model", defaultValue = "flux-dev", description = "flux-dev, flux-schnell, flux-kontext, wan-1.3b or wan-14b (default ${DEFAULT-VALUE})")
    String model;

    @Option(names = "--random-weights", description = "use random weights (the default when --weights is not given)")
    boolean randomWeights;

    @Option(names = "--weights", description = "a Flux transformer checkpoint (file, index or folder) instead of random weights")
    Path weights;

    @Option(names = "--resolution", split = ",", defaultValue = "1024", description = "image side(s) in pixels, e.g. 512,1024,2048")
    List<Integer> resolutions;

    @Option(names = "--frames", description = "Wan: video frames, 4k + 1 (default 81 for wan-1.3b, 65 for wan-14b)")
    Integer frames;

    @Option(names = "--width", description = "Wan: video width in pixels, a multiple of 16 (default 832 for wan-1.3b, 640 for wan-14b)")
    Integer width;

    @Option(names = "--height", description = "Wan: video height in pixels, a multiple of 16 (default 480 for wan-1.3b, 640 for wan-14b)")
    Integer height;

    @Option(names = "--text-tokens", defaultValue = "512", description = "text sequence length (default ${DEFAULT-VALUE})")
    int textTokens;

    @Option(names = "--backend", defaultValue = "auto", description = "auto, cpu, cuda or cuda:N (default ${DEFAULT-VALUE})")
    String backend;

    @Option(names = "--warmup", defaultValue = "3") int warmup;

    @Option(names = "--iters", defaultValue = "10", description = "timed iterations; the median is reported") int iters;

    @Option(names = "--no-compile", description = "skip the CUDA-graph capture") boolean noCompile;

    @Option(names = "--seed", defaultValue = "0") long seed;

    @Option(names = "--json", description = "also write the results as JSON to this file") Path json;

    @Option(names = "--profile", description = "on a GPU, also time every launch of one eager forward and print the breakdown "
            + "(GEMM / attention / other, per kernel and GEMM shape)") boolean profile;

    @Override public void run() {
        if (randomWeights && weights != null) throw new IllegalArgumentException("--random-weights and --weights exclude each other");
        if (model.startsWith("wan")) {
            if (weights != null) throw new IllegalArgumentException("--weights is not supported for " + model + ": the Wan bench runs random weights");
            int[] size = WanBench.defaultSize(model);
            var r = new WanBench(System.out).profile(profile).run(new WanBench.Options(model, frames != null ? frames : size[2],
                    width != null ? width : size[0], height != null ? height : size[1], backend, warmup, iters, !noCompile,
                    textTokens, seed));
            if (json != null) WanBench.writeJson(json, r);
            return;
        }
        if (frames != null || width != null || height != null)
            throw new IllegalArgumentException("--frames/--width/--height apply to the Wan models; Flux takes --resolution");
        var results = new FluxBench(System.out).profile(profile).run(new FluxBench.Options(model, resolutions, backend, warmup,
                iters, !noCompile, textTokens, weights, seed));
        if (json != null) FluxBench.writeJson(json, results);
    }
}
