/**
 * Communication between ranks: the {@link org.dit4j.core.parallel.Communicator} SPI (all-reduce, all-gather,
 * all-to-all, send/recv ring pass, broadcast, barrier, split into sub-groups, abort) and its in-process implementation
 * {@link org.dit4j.core.parallel.LocalCommunicator}, N threads of one JVM exchanging host tensors exactly, so that every
 * parallel strategy runs in CI. The NCCL implementation is {@code org.dit4j.cuda.NcclCommunicator}; the strategies
 * built on top are in {@code org.dit4j.engine.parallel}.
 */
package org.dit4j.core.parallel;
