/**
 * The CPU reference backend, {@link org.dit4j.core.cpu.CpuBackend}: every {@link org.dit4j.core.ops.Ops} method on
 * host memory, f32 arithmetic with double reductions, results rounded once to the activation dtype.
 *
 * <ul>
 *   <li>{@code Gemm}: packed, register-blocked f32 GEMM (6×2-vector FMA micro-kernel, BLIS loop order). Its right-hand
 *       operand is a {@code BSource}, so linear weights of any dtype (bf16, fp8) and convolution inputs (implicit
 *       im2col) are converted while packing. Results are bit-identical for any thread count.</li>
 *   <li>{@code Attention}: per (batch, head, 64-query block) S = Q·Kᵀ and O = P·V with the GEMM, row softmax with the
 *       broadcast bias in between; fully masked rows give zeros.</li>
 *   <li>{@code Conv}: grouped conv2d/conv3d as one GEMM per (batch, group) over a zero-padded copy of the input.</li>
 *   <li>{@code Layout}: dtype-agnostic strided box copies for permute, slice, concat, pad and upsampling.</li>
 *   <li>{@code HostArrays}: tensor ↔ float[] conversion with PyTorch's rounding ({@link org.dit4j.core.tensor.DType}).</li>
 *   <li>{@code Parallel}: the backend's fork-join pool; nested parallel loops run sequentially.</li>
 * </ul>
 *
 * <p>Tests: {@code OpsConformance} (core test-jar) compares any backend with the naive {@code ReferenceOps};
 * {@code GemmBench} (test sources) measures the GEMM.
 */
package org.dit4j.core.cpu;
