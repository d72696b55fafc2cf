/**
 * Multi-rank runs: what each rank (GPU) computes, with models unchanged.
 *
 * <ul>
 *   <li>{@link org.dit4j.engine.parallel.ParallelConfig} (degrees dp × cfg × ring × ulysses, validated with messages
 *       that name the fix) and {@link org.dit4j.engine.parallel.Mesh} (rank ↔ coordinates, groups per axis; ulysses
 *       innermost).</li>
 *   <li>{@link org.dit4j.engine.parallel.MeshComms}: one rank's communicators per axis, split from the world;
 *       {@link org.dit4j.engine.parallel.MeshRunner}: one thread per rank in one JVM, failures abort the others.</li>
 *   <li>{@link org.dit4j.engine.parallel.SequenceParallelOps}: an {@code Ops} decorator whose attention is Ulysses
 *       (all-to-all heads↔sequence), Ring (K/V blocks around the ring, log-sum-exp merge via
 *       {@code Ops.attentionWithLse}/{@code mergeAttention}) or both (USP); every other op is the local backend's.</li>
 *   <li>{@link org.dit4j.engine.parallel.FluxSequenceParallel}: how Flux's joint [txt ‖ img] sequence is split (both
 *       parts, into equal contiguous shards; RoPE rows follow their tokens), sharding, conditioning and gathering.</li>
 *   <li>{@link org.dit4j.engine.parallel.CfgParallel} (cond/uncond on two ranks, results exchanged) and
 *       {@link org.dit4j.engine.parallel.DataParallel} (requests or batch rows per dp group).</li>
 *   <li>{@link org.dit4j.engine.parallel.SpatialParallelOps}: an {@code Ops} decorator for images split into row slabs
 *       ({@link org.dit4j.engine.parallel.RowSplit}, uneven heights allowed): 3×3 convolutions get one halo row from each
 *       neighbour, group norms use the whole image's statistics (all-reduced {@code Ops.groupStats}), attention gathers
 *       K/V; {@link org.dit4j.engine.parallel.PatchParallelVaeDecoder} runs the unchanged VAE decoder on it.</li>
 *   <li>{@link org.dit4j.engine.parallel.ParallelVerification}: one rank vs the mesh, max |Δ| and rel-L2 per rank
 *       ({@code --verify-parallel}).</li>
 *   <li>{@link org.dit4j.engine.flux.ParallelFluxPipeline}: the whole Flux generation with the denoising loop on a mesh
 *       (CLI {@code generate --gpus/--ulysses/--ring/--cfg-parallel/--dp/--verify-parallel}); text encoders and VAE on
 *       rank 0.</li>
 * </ul>
 * Tests: {@code FluxParallelTest} runs every mesh of 1, 2, 4 and 8 in-process ranks against the one-rank forward;
 * {@code PatchParallelVaeDecoderTest} decodes on 2, 3 and 4 ranks against one rank (and checks per-rank memory);
 * {@code FluxMultiGpuTest} and {@code bench.FluxParallelBench} run on GPUs over NCCL (bench/mgpu-device.sh).
 */
package org.dit4j.engine.parallel;
