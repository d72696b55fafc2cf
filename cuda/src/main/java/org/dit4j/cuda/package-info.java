/**
 * The CUDA runtime of dit4j, through the Foreign Function &amp; Memory API (no JNI, no native build).
 *
 * <ul>
 *   <li>{@link org.dit4j.cuda.CudaLibraries} finds libcuda, NVRTC, cuBLASLt (and cuDNN, NCCL) and explains what it
 *       searched when one is missing; {@link org.dit4j.cuda.Cuda#isAvailable()} says whether this machine can run
 *       the backend.</li>
 *   <li>{@link org.dit4j.cuda.CudaDriver}, {@link org.dit4j.cuda.Nvrtc}, {@link org.dit4j.cuda.CublasLt}: thin typed
 *       bindings, one class per library; every status is checked and turned into a
 *       {@link org.dit4j.cuda.CudaException} naming the call and the library's error string.</li>
 *   <li>{@link org.dit4j.cuda.CudaBackend}: {@link org.dit4j.core.ops.Ops} on one GPU. One stream per backend, a
 *       caching {@link org.dit4j.cuda.DeviceAllocator} ({@link org.dit4j.cuda.DeviceBuffer#release()} returns
 *       blocks to the pool), kernels from {@code kernels/*.cu} compiled by NVRTC for the exact architecture and cached
 *       on disk, GEMMs through cuBLASLt with per-shape plans, attention through an
 *       {@link org.dit4j.cuda.AttentionKernel}.</li>
 *   <li>{@link org.dit4j.cuda.CudaGraph}: capture and replay of a backend's work, with a private memory pool per
 *       graph.</li>
 * </ul>
 */
package org.dit4j.cuda;
