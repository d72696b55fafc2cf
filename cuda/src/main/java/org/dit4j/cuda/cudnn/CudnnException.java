package org.dit4j.cuda.cudnn;

/**
 * A cuDNN call returned a status other than {@code CUDNN_STATUS_SUCCESS}. The message names the call,
 * what it was doing, the numeric status, cuDNN's name for it and cuDNN's last error message (which often
 * says which attribute or engine refused).
 */
public final class CudnnException extends RuntimeException {
    private final String call;
    private final int status;

    public CudnnException(String call, int status, String statusName, String lastError) {
        super(call + " failed: " + status + " " + statusName
                + (lastError == null || lastError.isBlank() ? "" : " (cuDNN says: " + lastError.strip() + ")"));
        this.call = call;
        this.status = status;
    }

    /** The failing call, with the attribute or descriptor it was working on. */
    public String call() { return call; }

    /** The raw {@code cudnnStatus_t}. Categories: 1xxx init, 2xxx bad parameter, 3xxx not supported, 4xxx internal, 5xxx execution. */
    public int status() { return status; }

    /** True for the 3xxx "not supported" family: the graph/engine cannot run this, try another. */
    public boolean notSupported() { return status / 1000 == 3; }
}
