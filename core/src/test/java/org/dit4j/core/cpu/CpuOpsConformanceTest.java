package org.dit4j.core.cpu;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.OpsConformance;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/** The conformance suite on the CPU backend with its default thread count. */
class CpuOpsConformanceTest extends OpsConformance {
    private static CpuBackend backend;

    @BeforeAll static void start() { backend = new CpuBackend(); }

    @AfterAll static void stop() { backend.close(); }

    @Override protected Ops ops() { return backend; }
}
