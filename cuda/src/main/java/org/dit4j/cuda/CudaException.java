package org.dit4j.cuda;

/**
 * A failed CUDA, NVRTC or cuBLASLt call, or a CUDA library that cannot be found. The message names the call,
 * the library's error code and its error string.
 */
public final class CudaException extends RuntimeException {
    private final int code;

    public CudaException(String message) {
        this(message, 0, null);
    }

    public CudaException(String message, int code) {
        this(message, code, null);
    }

    public CudaException(String message, int code, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    /** The library's status code (CUresult, nvrtcResult, cublasStatus_t), or 0 when none applies. */
    public int code() { return code; }
}
