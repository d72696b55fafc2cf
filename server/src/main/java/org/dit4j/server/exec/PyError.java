package org.dit4j.server.exec;

/**
 * A failure that ComfyUI's Python code would raise as an exception during validation (KeyError for a link to a
 * missing node, IndexError for a slot past the outputs...). Carries the Python exception type and {@code str(ex)}
 * so the reported error reads as ComfyUI's.
 */
final class PyError extends RuntimeException {
    final String pyType;

    PyError(String pyType, String message) {
        super(message, null, false, false);
        this.pyType = pyType;
    }
}
