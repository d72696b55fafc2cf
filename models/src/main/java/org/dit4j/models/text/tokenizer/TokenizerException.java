package org.dit4j.models.text.tokenizer;

/** A tokenizer file is missing, unreadable, corrupt, or uses a feature dit4j does not implement. */
public class TokenizerException extends RuntimeException {
    public TokenizerException(String message) {
        super(message);
    }

    public TokenizerException(String message, Throwable cause) {
        super(message, cause);
    }
}
