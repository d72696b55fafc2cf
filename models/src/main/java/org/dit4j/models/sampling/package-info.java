/**
 * Samplers for flow-matching models.
 * <ul>
 *   <li>Flux: {@link org.dit4j.models.sampling.FlowMatchSchedule} — σ schedules exactly as diffusers'
 *       FlowMatchEulerDiscreteScheduler computes them for Flux (float32; dynamic shift from the image token count,
 *       static shift, schnell's linear schedule) — and {@link org.dit4j.models.sampling.FlowMatchEuler}, the Euler
 *       update and true classifier-free guidance on {@link org.dit4j.core.ops.Ops} tensors.</li>
 *   <li>Wan: {@link org.dit4j.models.sampling.FlowShiftSchedule} (static-shift flow sigmas of the multistep solvers),
 *       {@link org.dit4j.models.sampling.FlowUniPcSampler} and {@link org.dit4j.models.sampling.FlowEulerSampler} over a
 *       {@link org.dit4j.models.sampling.LatentAlgebra}.</li>
 * </ul>
 */
package org.dit4j.models.sampling;
