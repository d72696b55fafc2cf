package org.dit4j.engine.cache;

/**
 * The classifier-free-guidance branch a transformer call belongs to. Every step cache keeps its state per branch,
 * because the conditional and unconditional predictions drift differently (the published Wan tables list their
 * γ values interleaved cond, uncond, cond, …). Models without CFG (Flux.1-dev is guidance-distilled) use only
 * {@link #COND}.
 */
public enum Branch {
    /** The prompt-conditioned prediction; the only branch of guidance-distilled models. */
    COND,
    /** The unconditional (negative-prompt) prediction of classifier-free guidance. */
    UNCOND;

    /** 0 for COND, 1 for UNCOND: the position of this branch in the published interleaved tables. */
    public int index() { return ordinal(); }

    /** Lower-case name for summaries and logs. */
    public String label() { return this == COND ? "cond" : "uncond"; }
}
