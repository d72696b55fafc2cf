/**
 * Samplers. {@link org.dit4j.models.sampling.FlowMatchSchedule}: Flux's σ schedules exactly as diffusers'
 * FlowMatchEulerDiscreteScheduler computes them (float32), {@link org.dit4j.models.sampling.FlowMatchEuler}: the Euler
 * update and true classifier-free guidance on {@link org.dit4j.core.ops.Ops}.
 */
package org.dit4j.models.sampling;
