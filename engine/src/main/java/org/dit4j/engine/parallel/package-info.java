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
 * </ul>
 * Tests: {@code FluxParallelTest} runs every mesh of 1, 2, 4 and 8 in-process ranks against the one-rank forward;
 * {@code FluxMultiGpuTest} and {@code bench.FluxParallelBench} run on GPUs over NCCL (bench/mgpu-device.sh).
 */
package org.dit4j.engine.parallel;
