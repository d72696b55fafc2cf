package org.dit4j.core.io;

/**
 * A checkpoint that cannot be used: missing, truncated, malformed, or not holding what the caller asked for.
 * The message names the file (and tensor), what was expected, what was found, and what to do.
 */
public class CheckpointException extends RuntimeException {
    public CheckpointException(String message) { super(message); }

    public CheckpointException(String message, Throwable cause) { super(message, cause); }
}
