package org.dit4j.cuda.cudnn;

import org.dit4j.cuda.Cuda;
import org.dit4j.cuda.CudaDriver;

/** Device 0's primary context made current on the calling thread, for the cuDNN tests and benchmark. */
final class Gpu {
    private static long context;

    private Gpu() {}

    /** Null when this machine cannot run the cuDNN tests, else why not. */
    static String unavailableReason() {
        if (!Cuda.isAvailable()) return Cuda.unavailableReason();
        if (!Cudnn.isAvailable()) {
            try {
                Cudnn.get();
            } catch (UnsatisfiedLinkError e) {
                return e.getMessage();
            }
        }
        return null;
    }

    /** The driver, with device 0's primary context current on this thread. */
    static synchronized CudaDriver driver() {
        CudaDriver d = CudaDriver.get();
        if (context == 0) context = d.primaryContextRetain(d.device(0));
        d.contextSetCurrent(context);
        return d;
    }
}
