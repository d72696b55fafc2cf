package org.dit4j.cuda;

import org.dit4j.core.ops.Ops;
import org.dit4j.core.ops.OpsConformance;
import org.dit4j.core.tensor.DType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * The core conformance suite on the CUDA backend (skipped without a GPU). Tolerances: f32 and f16 as the suite's
 * defaults; bf16 rel-L2 ≤ 1e-2 (bf16 tensor-core products and the flash kernel's bf16 probabilities).
 */
class CudaOpsConformanceTest extends OpsConformance {
    private static CudaBackend backend;

    @BeforeAll static void start() {
        CudaTestSupport.requireCuda();
        backend = new CudaBackend();
    }

    @AfterAll static void stop() {
        if (backend != null) backend.close();
    }

    @Override protected Ops ops() { return backend; }

    @Override protected double tolerance(DType activation) {
        return activation == DType.BF16 ? 1e-2 : super.tolerance(activation);
    }
}
