package org.dit4j.core.parallel;

/** A collective could not complete because the group was aborted (another rank failed or timed out). */
public final class CommunicatorAbortedException extends RuntimeException {
    public CommunicatorAbortedException(String message, Throwable cause) {
        super(message, cause);
    }
}
