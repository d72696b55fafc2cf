package org.dit4j.cli;

import org.dit4j.core.io.TensorInfo;
import org.dit4j.core.io.WeightSource;
import org.dit4j.core.tensor.DType;
import org.dit4j.engine.ModelDetector;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.nio.file.Path;
import java.util.EnumMap;
import java.util.Map;

/** {@code dit4j inspect CHECKPOINT}: what a checkpoint holds and which model it is. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a checkpoint's tensors, dtypes, metadata and detected model "
                + "(a .safetensors file, a *.safetensors.index.json, or a folder).")
final class InspectCommand implements Runnable {

    @Parameters(paramLabel = "CHECKPOINT", description = "safetensors file, sharded index or folder")
    Path path;

    @Option(names = "--tensors", description = "list every tensor (name, dtype, shape)")
    boolean listTensors;

    @Override public void run() {
        try (WeightSource w = WeightSource.open(path)) {
            Map<DType, long[]> byType = new EnumMap<>(DType.class);   // dtype -> {count, bytes}
            long params = 0;
            for (String name : w.names()) {
                TensorInfo t = w.info(name);
                long[] acc = byType.computeIfAbsent(t.dtype(), d -> new long[2]);
                acc[0]++;
                acc[1] += t.byteSize();
                params += t.shape().numel();
                if (listTensors) System.out.printf("%-70s %-8s %s%n", name, t.dtype(), t.shape());
            }
            System.out.println("checkpoint: " + w.path());
            System.out.printf("tensors:    %d (%.3f B parameters)%n", w.names().size(), params / 1e9);
            byType.forEach((d, acc) -> System.out.printf("  %-8s %6d tensors %10.1f MB%n", d, acc[0], acc[1] / 1e6));
            if (!w.metadata().isEmpty()) {
                System.out.println("metadata:");
                w.metadata().forEach((k, v) -> System.out.println("  " + k + " = " + (v.length() > 120 ? v.substring(0, 117) + "..." : v)));
            }
            System.out.println("model:      " + ModelDetector.describe(w));
        }
    }
}
