package org.dit4j.cuda;

/** Whether this machine can run the CUDA backend, and why not. */
public final class Cuda {
    private static volatile String reason;   // null until probed; "" when available

    private Cuda() {}

    /** True when the driver loads, at least one device exists, and NVRTC and cuBLASLt load. */
    public static boolean isAvailable() {
        return unavailableReason() == null;
    }

    /** Null when CUDA is usable, otherwise a one-paragraph explanation (for test skips and CLI messages). */
    public static String unavailableReason() {
        String r = reason;
        if (r == null) {
            synchronized (Cuda.class) {
                r = reason;
                if (r == null) reason = r = probe();
            }
        }
        return r.isEmpty() ? null : r;
    }

    private static String probe() {
        try {
            CudaDriver d = CudaDriver.get();
            int n = d.deviceCount();
            if (n == 0) return "the CUDA driver loaded but reports no GPU";
            Nvrtc.get().version();
            CublasLt.get().version();
            return "";
        } catch (CudaException | UnsatisfiedLinkError | IllegalArgumentException e) {
            return "CUDA is not usable here: " + e.getMessage();
        }
    }

    /** Number of visible CUDA devices (0 when CUDA is unavailable). */
    public static int deviceCount() {
        return isAvailable() ? CudaDriver.get().deviceCount() : 0;
    }
}
