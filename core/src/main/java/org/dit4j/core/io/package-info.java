/**
 * Reading and writing checkpoints.
 * <ul>
 *   <li>{@link org.dit4j.core.io.SafeTensorsFile}: one .safetensors file, memory-mapped once (FFM, shared arena);
 *       tensors are zero-copy host views of the mapping.</li>
 *   <li>{@link org.dit4j.core.io.WeightSource}: a checkpoint as a single file, a sharded
 *       {@code *.safetensors.index.json}, or a folder; name lookup across shards.</li>
 *   <li>{@link org.dit4j.core.io.SafeTensorsWriter}: host tensors to a .safetensors file.</li>
 *   <li>{@link org.dit4j.core.io.Json}: the strict JSON parser used for headers, indexes and configs.</li>
 * </ul>
 * Decisions:
 * <ul>
 *   <li>Validation is as strict as the reference (Rust) implementation, so a file dit4j accepts loads everywhere:
 *       tensors must tile the data section exactly (no overlap, no hole, no trailing bytes); header at most
 *       100 MB; duplicate JSON keys are rejected. Every failure is a {@link org.dit4j.core.io.CheckpointException}
 *       naming the file (and tensor), what was expected, what was found, and what to do.</li>
 *   <li>Dtypes the format defines but {@link org.dit4j.core.tensor.DType} lacks (F64, I8, U8, I16, U16, U32, U64,
 *       F8_E8M0, C64, F4, F6_*) do not stop a file from opening; asking for such a tensor fails, naming it and its
 *       dtype. Dtypes the format does not define fail at open (their byte ranges cannot be checked).</li>
 *   <li>A sharded index is authoritative: its weight_map names are the checkpoint's names; shards must sit in the
 *       index's folder; tensors a shard holds beyond the index are ignored.</li>
 * </ul>
 */
package org.dit4j.core.io;
