package org.dit4j.core.io;

import org.dit4j.core.tensor.Tensor;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;

/**
 * A checkpoint, whatever its packaging, with lookup of tensors by name across its files:
 * <ul>
 *   <li>a single {@code .safetensors} file;</li>
 *   <li>a sharded checkpoint's {@code *.safetensors.index.json} (the Hugging Face {@code "weight_map"} from tensor
 *       name to shard file, shards resolved next to the index);</li>
 *   <li>a directory: its {@code *.safetensors.index.json} when it has exactly one, otherwise all of its
 *       {@code *.safetensors} files together (a name found in two files is an error).</li>
 * </ul>
 * All files are opened (mapped and validated) by {@link #open}; tensors are zero-copy views of the mappings,
 * valid until {@link #close()}.
 */
public interface WeightSource extends AutoCloseable {

    /** Opens a file, index or directory as described above; fails with {@link CheckpointException}. */
    static WeightSource open(Path path) { return CheckpointFiles.open(path); }

    /** The path this source was opened from. */
    Path path();

    /** All tensor names, sorted. */
    Set<String> names();

    boolean contains(String name);

    /** Where tensor {@code name} lies; {@link CheckpointException} naming the checkpoint and close names if missing. */
    TensorInfo info(String name);

    /** The dtype of {@code name} as spelled in its file's header (also for dtypes dit4j does not support). */
    String dtypeName(String name);

    /** A zero-copy host tensor of {@code name}. */
    Tensor tensor(String name);

    /** The path of the file holding {@code name}. */
    Path fileOf(String name);

    /** The "__metadata__" of all files merged; where files disagree on a key, the file whose path sorts first wins. */
    Map<String, String> metadata();

    /** Unmaps all files. Idempotent. */
    @Override void close();
}
