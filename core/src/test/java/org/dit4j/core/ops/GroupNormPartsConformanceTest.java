package org.dit4j.core.ops;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The conformance suite on a backend that uses the interface's composed defaults of {@link Ops#groupStats} and
 * {@link Ops#groupNormWithStats} (what a backend without its own kernels, e.g. CUDA, gets), everything else from the CPU
 * backend.
 */
class GroupNormPartsConformanceTest extends OpsConformance {
    private static CpuBackend cpu;
    private static Ops ops;

    @BeforeAll static void start() {
        cpu = new CpuBackend();
        ops = new ForwardingOps(cpu) {
            @Override public Tensor groupStats(Tensor x, int groups, Tensor center) {
                return GroupNormParts.groupStats(this, x, groups, center);
            }

            @Override public Tensor groupNormWithStats(Tensor x, int groups, Tensor mean, Tensor var, Tensor weight, Tensor bias,
                                                       float eps) {
                return GroupNormParts.groupNormWithStats(this, x, groups, mean, var, weight, bias, eps);
            }
        };
    }

    @AfterAll static void stop() { cpu.close(); }

    @Override protected Ops ops() { return ops; }
}
