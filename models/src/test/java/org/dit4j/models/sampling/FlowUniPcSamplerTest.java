package org.dit4j.models.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.io.Json;
import org.dit4j.core.ops.Ops;
import org.dit4j.core.tensor.Scope;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Flow UniPC and Euler against diffusers' schedulers (sampling/flow_unipc.json, written by
 * scripts/reference/unipc_reference.py): schedules bit for bit, and trajectories driven by the model outputs diffusers
 * recorded, compared step by step.
 */
class FlowUniPcSamplerTest {
    static Map<String, Object> ref;

    @BeforeAll @SuppressWarnings("unchecked") static void load() throws IOException {
        try (InputStream in = FlowUniPcSamplerTest.class.getResourceAsStream("/sampling/flow_unipc.json")) {
            if (in == null) throw new IllegalStateException("test resource sampling/flow_unipc.json is missing");
            ref = (Map<String, Object>) Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
        }
    }

    @SuppressWarnings("unchecked")
    static List<Map<String, Object>> list(String key) { return (List<Map<String, Object>>) ref.get(key); }

    static Map<String, Object> run(String name) {
        for (Map<String, Object> r : list("trajectories")) if (r.get("name").equals(name)) return r;
        throw new IllegalStateException("no trajectory " + name);
    }

    @SuppressWarnings("unchecked")
    static double[] doubles(Object row) {
        List<Object> l = (List<Object>) row;
        double[] out = new double[l.size()];
        for (int i = 0; i < out.length; i++) out[i] = ((Number) l.get(i)).doubleValue();
        return out;
    }

    static float[] floats(Object row) {
        double[] d = doubles(row);
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    @SuppressWarnings("unchecked")
    static List<Object> rows(Map<String, Object> r, String key) { return (List<Object>) r.get(key); }

    static double relL2(double[] a, double[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        return Math.sqrt(num / den);
    }

    static double[] widen(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    @Test void schedulesMatchBitForBit() {
        for (Map<String, Object> s : list("schedules")) {
            int steps = ((Number) s.get("steps")).intValue();
            double shift = ((Number) s.get("shift")).doubleValue();
            FlowShiftSchedule mine = s.get("variant").equals("diffusers") ? FlowShiftSchedule.diffusers(steps, shift)
                    : FlowShiftSchedule.wanOriginal(steps, shift);
            String what = s.get("variant") + " " + steps + " steps, shift " + shift;
            assertArrayEquals(floats(s.get("sigmas")), mine.sigmas(), 0f, what);
            long[] ts = new long[steps];
            for (int i = 0; i < steps; i++) ts[i] = ((Number) rows(s, "timesteps").get(i)).longValue();
            assertArrayEquals(ts, mine.timesteps(), what);
            assertEquals(0f, mine.sigma(steps), what);
        }
        // Wan's default: σ₀ = 1 nudged to 1 − 1e-6, first timestep 999
        FlowShiftSchedule wan = FlowShiftSchedule.diffusers(50, FlowShiftSchedule.WAN_T2V_SHIFT);
        assertEquals((float) (1 - 1e-6), wan.sigma(0));
        assertEquals(999, wan.timestep(0));
    }

    /** Wan's configuration in float64 (coefficients and latents): the reference of the algorithm itself. */
    @Test void wanTrajectoryFloat64() {
        Map<String, Object> r = run("wan_f64");
        double err = trajectory(r, new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(20, 5.0), LatentAlgebra.DOUBLES),
                FlowUniPcSamplerTest::doubles, x -> x);
        System.out.printf("flow UniPC wan f64: max rel-L2 over 20 steps %.3e%n", err);
        assertTrue(err <= 1e-6, "rel-L2 " + err);
    }

    /** Wan's configuration as diffusers runs it in float32 (float32 coefficients there, double here). */
    @Test void wanTrajectoryFloat32() {
        Map<String, Object> r = run("wan_f32");
        double err = trajectory(r, new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(20, 5.0), LatentAlgebra.FLOATS),
                FlowUniPcSamplerTest::floats, FlowUniPcSamplerTest::widen);
        System.out.printf("flow UniPC wan f32 arrays: max rel-L2 over 20 steps %.3e%n", err);
        assertTrue(err <= 1e-5, "rel-L2 " + err);
    }

    /** The same on F32 tensors of the CPU backend (what a pipeline on a GPU uses), steps with no scope open. */
    @Test void wanTrajectoryOnTensors() {
        try (Ops ops = new CpuBackend()) {
            Map<String, Object> r = run("wan_f32");
            double err = trajectory(r, new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(20, 5.0), LatentAlgebra.tensors(ops)),
                    row -> ops.upload(Tensor.of(floats(row), 24)), t -> widen(ops.toHost(t).toFloatArray()));
            System.out.printf("flow UniPC wan f32 tensors: max rel-L2 over 20 steps %.3e%n", err);
            assertTrue(err <= 1e-5, "rel-L2 " + err);
        }
    }

    /**
     * Order 3, bh1, correctors disabled after steps 0 and 4, in float64. diffusers' last sample is NaN there (bh1 has
     * B(h) = −h = −∞ at σ = 0, times a zero residual); the sampler returns the limit x̂₀ = x − σ·v.
     */
    @Test void order3Bh1WithDisabledCorrectors() {
        Map<String, Object> r = run("order3_bh1_f64");
        assertEquals(List.of(0L, 4L), r.get("disable_corrector"));
        FlowUniPcSampler<double[]> s = new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(12, 3.0), LatentAlgebra.DOUBLES, 3,
                FlowUniPcSampler.Variant.BH1, true, Set.of(0, 4));
        List<Object> outs = rows(r, "model_outputs"), samples = rows(r, "samples");
        assertNull(samples.get(12));
        double[] x = doubles(samples.get(0));
        double worst = 0;
        for (int i = 0; i < 12; i++) {
            double[] v = doubles(outs.get(i)), prev = x;
            x = s.step(v, i, x);
            if (i < 11) {
                worst = Math.max(worst, relL2(x, doubles(samples.get(i + 1))));
            } else {
                double sigma = s.schedule().sigma(11);
                for (int j = 0; j < x.length; j++) assertEquals(prev[j] - sigma * v[j], x[j], 0.0, "x̂₀ at the last step");
            }
        }
        System.out.printf("flow UniPC order 3 bh1 f64: max rel-L2 over 11 steps %.3e%n", worst);
        assertTrue(worst <= 1e-6, "rel-L2 " + worst);
    }

    /** Flow Euler on the same schedule against diffusers' FlowMatchEulerDiscreteScheduler in float32. */
    @Test void eulerTrajectory() {
        Map<String, Object> r = run("euler_f32");
        double err = trajectory(r, new FlowEulerSampler<>(FlowShiftSchedule.diffusers(20, 5.0), LatentAlgebra.FLOATS),
                FlowUniPcSamplerTest::floats, FlowUniPcSamplerTest::widen);
        System.out.printf("flow Euler f32: max rel-L2 over 20 steps %.3e%n", err);
        assertTrue(err <= 1e-6, "rel-L2 " + err);
    }

    /** The last step (σ = 0) returns x̂₀ = x − σ·v exactly, computed without infinities. */
    @Test void lastStepReturnsDataPredictionExactly() {
        FlowShiftSchedule sched = FlowShiftSchedule.diffusers(3, 5.0);
        FlowUniPcSampler<double[]> s = new FlowUniPcSampler<>(sched, LatentAlgebra.DOUBLES);
        double[] x = {0.5, -1.25, 2.0};
        for (int i = 0; i < 3; i++) {
            double[] v = {x[0] * 0.3 + 0.1, -x[1], 0.7};
            double[] next = s.step(v, i, x);
            for (double d : next) assertTrue(Double.isFinite(d));
            if (i == 2)
                for (int j = 0; j < 3; j++) assertEquals(x[j] - (double) sched.sigma(2) * v[j], next[j], 0.0);
            x = next;
        }
    }

    @Test void stepsMustComeInOrder() {
        FlowUniPcSampler<double[]> s = new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(4, 5.0), LatentAlgebra.DOUBLES);
        double[] x = {1, 2}, v = {0.5, 0.25};
        var e = assertThrows(IllegalStateException.class, () -> s.step(v, 1, x));
        assertTrue(e.getMessage().contains("expected step 0"), e.getMessage());
        double[] a = s.step(v, 0, x);
        s.step(v, 1, a);
        var again = assertThrows(IllegalStateException.class, () -> s.step(v, 0, x));
        assertTrue(again.getMessage().contains("reset()"), again.getMessage());
        s.reset();
        assertArrayEquals(a, s.step(v, 0, x), 0.0, "a reset sampler repeats the run");
        assertThrows(IllegalArgumentException.class, () -> s.step(v, 4, x));
    }

    @Test void tensorStepsRefuseAnOpenScope() {
        try (Ops ops = new CpuBackend()) {
            FlowUniPcSampler<Tensor> s = new FlowUniPcSampler<>(FlowShiftSchedule.diffusers(4, 5.0), LatentAlgebra.tensors(ops));
            Tensor x = ops.upload(Tensor.of(new float[] {1, 2}, 2)), v = ops.upload(Tensor.of(new float[] {0.5f, 0.25f}, 2));
            try (Scope scope = Scope.open()) {
                var e = assertThrows(IllegalStateException.class, () -> s.step(v, 0, x));
                assertTrue(e.getMessage().contains("Scope"), e.getMessage());
            }
            Tensor next = s.step(v, 0, x);
            assertTrue(!next.isReleased() && !x.isReleased() && !v.isReleased(), "inputs and result stay alive");
            next.close();
            x.close();
            v.close();
        }
    }

    /**
     * Runs the sampler on the recorded model outputs from the recorded start; returns the largest per-step rel-L2
     * of the samples against the reference.
     */
    static <T> double trajectory(Map<String, Object> r, FlowSampler<T> s, java.util.function.Function<Object, T> in,
                                 java.util.function.Function<T, double[]> out) {
        List<Object> outs = rows(r, "model_outputs"), samples = rows(r, "samples");
        int steps = ((Number) r.get("steps")).intValue();
        assertEquals(steps, s.schedule().steps());
        T x = in.apply(samples.get(0));
        double worst = 0;
        for (int i = 0; i < steps; i++) {
            x = s.step(in.apply(outs.get(i)), i, x);
            worst = Math.max(worst, relL2(out.apply(x), doubles(samples.get(i + 1))));
        }
        return worst;
    }
}
