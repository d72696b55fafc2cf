package org.dit4j.models.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.DType;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Schedules against reference values re-typed from the diffusers formulas (pipeline_flux.calculate_shift,
 * FlowMatchEulerDiscreteScheduler.set_timesteps with use_dynamic_shifting, _time_shift_exponential, static shift) and
 * evaluated with numpy 2.4 in float32 exactly as the scheduler does (numpy linspace in float64, cast to float32,
 * Python-float e^μ combined with the float32 array). The values are compared bit for bit.
 */
class FlowMatchScheduleTest {

    /** FLUX.1-dev at 1024² (4096 tokens, μ = 1.15), 28 steps: the numpy float32 σ (bit patterns as hex floats). */
    static final float[] DEV_1024_28 = {
        0x1.0p+0f, 0x1.fa10b2p-1f, 0x1.f3d36ep-1f, 0x1.ed4208p-1f, 0x1.e655b2p-1f, 0x1.df06d2p-1f, 0x1.d74cf4p-1f,
        0x1.cf1ea8p-1f, 0x1.c67156p-1f, 0x1.bd390ep-1f, 0x1.b36860p-1f, 0x1.a8f00cp-1f, 0x1.9dbeb2p-1f, 0x1.91c07ap-1f,
        0x1.84de9ep-1f, 0x1.76fed0p-1f, 0x1.680296p-1f, 0x1.57c64ep-1f, 0x1.462036p-1f, 0x1.32dee2p-1f, 0x1.1dc786p-1f,
        0x1.069382p-1f, 0x1.d9dab8p-2f, 0x1.a0d92ap-2f, 0x1.612014p-2f, 0x1.196c82p-2f, 0x1.904a80p-3f, 0x1.acefd2p-4f, 0f};

    /** 512² (1024 tokens, μ = 0.63), 28 steps. */
    static final float[] DEV_512_28 = {
        0x1.0p+0f, 0x1.f6188ap-1f, 0x1.ebd980p-1f, 0x1.e13e46p-1f, 0x1.d641eap-1f, 0x1.cadf1cp-1f, 0x1.bf1026p-1f,
        0x1.b2cee8p-1f, 0x1.a614cap-1f, 0x1.98daa6p-1f, 0x1.8b18d6p-1f, 0x1.7cc6f8p-1f, 0x1.6ddc12p-1f, 0x1.5e4e52p-1f,
        0x1.4e1318p-1f, 0x1.3d1ecep-1f, 0x1.2b64d0p-1f, 0x1.18d744p-1f, 0x1.05670cp-1f, 0x1.e20704p-2f, 0x1.b734c4p-2f,
        0x1.8a2ef4p-2f, 0x1.5ac902p-2f, 0x1.28d17ap-2f, 0x1.e822dcp-3f, 0x1.78973ap-3f, 0x1.027720p-3f, 0x1.0a51fep-4f, 0f};

    @Test void muFollowsCalculateShift() {
        assertEquals(1.15, FlowMatchSchedule.mu(4096), 1e-15);
        assertEquals(0.5, FlowMatchSchedule.mu(256), 1e-15);
        assertEquals(0.63, FlowMatchSchedule.mu(1024), 1e-15);
        // 1360×768 (BFL dev default): 85·48 = 4080 tokens; 1280² beyond max: 6400 tokens → 1.15 + 2304·(0.65/3840)
        assertEquals(0.5 + (4080 - 256) * (0.65 / 3840), FlowMatchSchedule.mu(4080), 1e-12);
        assertEquals(1.54, FlowMatchSchedule.mu(6400), 1e-12);
        assertEquals(0.4607291666666667, FlowMatchSchedule.mu(24), 1e-15);
    }

    @Test void devScheduleMatchesDiffusersBitForBit() {
        assertArrayEquals(DEV_1024_28, FlowMatchSchedule.forImageTokens(28, 4096).sigmas(), 0f);
        assertArrayEquals(DEV_512_28, FlowMatchSchedule.forImageTokens(28, 1024).sigmas(), 0f);
        // 4 steps on 24 tokens (the tiny end-to-end test's size): σ = 1, 0.82625884, 0.6131872, 0.34572524, 0
        assertArrayEquals(new float[] {1f, 0x1.a70b66p-1f, 0x1.39f3acp-1f, 0x1.6205ccp-2f, 0f},
                FlowMatchSchedule.forImageTokens(4, 24).sigmas(), 0f);
        // 20 steps at 256 tokens (μ = 0.5), spot values
        FlowMatchSchedule s20 = FlowMatchSchedule.forImageTokens(20, 256);
        assertEquals(0x1.f02944p-1f, s20.sigma(1), 0f);
        assertEquals(0x1.0c176ap-1f, s20.sigma(12), 0f);
        assertEquals(0x1.470cc6p-4f, s20.sigma(19), 0f);
        assertEquals(0f, s20.sigma(20), 0f);
    }

    @Test void schnellIsLinearWithoutShift() {
        assertArrayEquals(new float[] {1f, 0.75f, 0.5f, 0.25f, 0f}, FlowMatchSchedule.linear(4).sigmas(), 0f);
        // static shift 3 (SD3-style): 3σ/(1+2σ) in float32 → 1, 0.9 (0.89999998), 0.75, 0.5, 0
        assertArrayEquals(new float[] {1f, 0.8999999761581421f, 0.75f, 0.5f, 0f}, FlowMatchSchedule.staticShift(4, 3).sigmas(), 0f);
        assertArrayEquals(new float[] {1f, 0f}, FlowMatchSchedule.linear(1).sigmas(), 0f);
    }

    @Test void modelTimestepsRoundTripThroughThousand() {
        FlowMatchSchedule s = FlowMatchSchedule.forImageTokens(28, 4096);
        // diffusers hands the transformer fl(fl(σ·1000)/1000); for steps 23 and 26 that is one ulp off σ (numpy values)
        assertEquals(0.40707844495773315f, s.modelTimestep(23), 0f);
        assertEquals(0.40707841515541077f, s.sigma(23), 0f);
        assertEquals(0.19545458257198334f, s.modelTimestep(26), 0f);
        assertEquals(0.19545459747314453f, s.sigma(26), 0f);
        assertEquals(0.9762224555015564f, s.modelTimestep(2), 0f);
        FlowMatchSchedule s512 = FlowMatchSchedule.forImageTokens(28, 1024);
        assertEquals(0.9606438279151917f, s512.modelTimestep(2), 0f);
        assertEquals(0.7716737985610962f, s512.modelTimestep(10), 0f);
    }

    @Test void timeShiftEndpointsAndMonotonicity() {
        assertEquals(1f, FlowMatchSchedule.timeShift(1.15, 1f), 0f);
        float prev = 1f;
        for (int i = 1; i < 100; i++) {
            float v = FlowMatchSchedule.timeShift(1.15, 1f - i / 100f);
            assertTrue(v < prev && v > 0, "shifted sigma must decrease with sigma");
            assertTrue(v >= 1f - i / 100f, "a positive mu shifts sigma up");
            prev = v;
        }
    }

    @Test void rejectsBadArguments() {
        assertThrows(IllegalArgumentException.class, () -> FlowMatchSchedule.forImageTokens(0, 4096));
        assertThrows(IllegalArgumentException.class, () -> FlowMatchSchedule.staticShift(4, 0));
        assertThrows(IllegalArgumentException.class, () -> FlowMatchSchedule.of(0.5f, 0.7f));
        assertArrayEquals(new float[] {0.9f, 0.3f, 0f}, FlowMatchSchedule.of(0.9f, 0.3f).sigmas(), 0f);
    }

    @Test void eulerStepAndTrueCfg() {
        try (Ops ops = new CpuBackend(); Scope s = Scope.open()) {
            FlowMatchSchedule sch = FlowMatchSchedule.linear(4);
            Tensor x = Tensor.of(new float[] {1f, -2f, 0.5f, 3f}, 1, 2, 2);
            Tensor v = Tensor.of(DType.BF16, new float[] {0.5f, 1f, -4f, 2f}, 1, 2, 2);
            // x + (0.75 − 1)·v
            assertArrayEquals(new float[] {0.875f, -2.25f, 1.5f, 2.5f}, FlowMatchEuler.step(ops, sch, 0, x, v).toFloatArray(), 0f);
            // the last step goes to σ = 0: x + (0 − 0.25)·v
            assertArrayEquals(new float[] {0.875f, -2.25f, 1.5f, 2.5f}, FlowMatchEuler.step(ops, sch, 3, x, v).toFloatArray(), 0f);
            Tensor pos = Tensor.of(new float[] {1f, 2f, 3f, 4f}, 1, 2, 2), neg = Tensor.of(new float[] {0f, 1f, 5f, 4f}, 1, 2, 2);
            // neg + 3.5·(pos − neg)
            assertArrayEquals(new float[] {3.5f, 4.5f, -2f, 4f}, FlowMatchEuler.trueCfg(ops, pos, neg, 3.5f).toFloatArray(), 0f);
            assertThrows(IllegalArgumentException.class, () -> FlowMatchEuler.step(ops, v, v, 0.1f));
        }
    }
}
