package org.dit4j.core.ops;

import org.dit4j.core.cpu.CpuBackend;
import org.dit4j.core.tensor.Tensor;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The conformance suite on a backend that uses the interface's host defaults of {@link Ops#attentionWithLse} and
 * {@link Ops#mergeAttention} (what a backend without its own kernels gets), everything else from the CPU backend.
 */
class HostAttentionConformanceTest extends OpsConformance {
    private static CpuBackend cpu;
    private static Ops ops;

    @BeforeAll static void start() {
        cpu = new CpuBackend();
        ops = new ForwardingOps(cpu) {
            @Override public PartialAttention attentionWithLse(Tensor q, Tensor k, Tensor v, Tensor bias, float scale) {
                return HostAttention.attentionWithLse(this, q, k, v, bias, scale);
            }

            @Override public PartialAttention mergeAttention(PartialAttention a, PartialAttention b) {
                return HostAttention.merge(this, a, b);
            }
        };
    }

    @AfterAll static void stop() { cpu.close(); }

    @Override protected Ops ops() { return ops; }
}
