package org.dit4j.engine.hub;

/**
 * A Hugging Face hub request that failed, or a model that is not in the cache while downloads are impossible.
 * {@link #offlineLike()} is true when the cause is the network or HF_HUB_OFFLINE (as opposed to a refusal or a
 * missing repository), so callers can fall back to what the cache holds.
 */
public class HubException extends RuntimeException {
    private final boolean offlineLike;

    public HubException(String message) { this(message, false); }

    public HubException(String message, boolean offlineLike) {
        super(message);
        this.offlineLike = offlineLike;
    }

    public boolean offlineLike() { return offlineLike; }
}
