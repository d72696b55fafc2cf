/**
 * Step caches: policies that decide, per transformer call of a denoising run, whether to run the transformer or to
 * reuse the cached residual (output − input) of the branch's last computed call. Model-agnostic: the pipeline
 * measures the signal a policy needs and applies the decision; this package decides and keeps the books.
 *
 * <h2>Policies and where their constants come from</h2>
 * <table>
 *   <tr><th>class</th><th>decides from</th><th>reproduces</th></tr>
 *   <tr><td>{@link org.dit4j.engine.cache.TeaCache}</td><td>relative L1 of a per-model signal (block-0 modulated
 *       input for Flux, the time embedding for Wan2.1 / CogVideoX), rescaled by a polynomial and accumulated</td>
 *       <td>ali-vilab/TeaCache TeaCache4FLUX, TeaCache4Wan2.1 (incl. ret mode), TeaCache4CogVideoX1.5;
 *       welltop-cn/ComfyUI-TeaCache (start/end percent, batched CFG)</td></tr>
 *   <tr><td>{@link org.dit4j.engine.cache.MagCache}</td><td>a calibrated table of residual-magnitude ratios γ —
 *       no run-time measurement</td><td>Zehong-Ma/MagCache MagCache4FLUX, MagCache4Wan2.1 (nearest_interp, interleaved
 *       cond/uncond); Zehong-Ma/ComfyUI-MagCache</td></tr>
 *   <tr><td>{@link org.dit4j.engine.cache.FirstBlockCache}</td><td>relative L1 of block 0's residual against the
 *       last computed one</td><td>chengzeyi/ParaAttention first_block_cache</td></tr>
 *   <tr><td>{@link org.dit4j.engine.cache.NoCache}</td><td>—</td><td>every step computed</td></tr>
 * </table>
 * {@link org.dit4j.engine.cache.MagCacheCalibration} records a γ table for a new model or step count.
 * {@link org.dit4j.engine.cache.CacheSpec} parses the CLI's {@code --cache} value and picks per-model defaults
 * ({@link org.dit4j.engine.cache.CacheModel}).
 *
 * <h2>What a pipeline does per transformer call</h2>
 * <pre>
 * try (CacheRun&lt;Tensor&gt; run = policy.begin(requestId, steps)) {        // one per request and rank
 *   for step i, for each CFG branch b:
 *     x = the policy's signal tensor (TeaCache: e.g. block-0 modulated input; FBCache: out₀ − in after block 0)
 *     Signals s = run.needsSignal(i, b) &amp;&amp; run.reference(b) != null
 *         ? allReduce(RelL1 sums of |x − ref| and |ref| with element counts) : Signals.NONE;
 *     Decision d = run.decide(i, b, s);
 *     if (d.updateSignalReference()) run.storeReference(b, x);
 *     if (d.skip()) out = in + run.residual(b, HIDDEN)                   // FBCache: out₀ + cached (final − out₀)
 *     else { out = transformer(in); run.storeResidual(b, HIDDEN, out − in); }
 *   print(run.summary());
 * }
 * </pre>
 * The Flux pipeline does this in {@code org.dit4j.engine.flux.FluxCachedTransformer}, recording every call in a
 * {@link org.dit4j.engine.cache.CacheTrace} (signals and decisions, replayable through a fresh policy).
 * {@link org.dit4j.engine.cache.CacheRun} checks that every computed call stored its residual and every requested
 * reference was stored, and releases replaced values. With CFG batched in one forward,
 * {@link org.dit4j.engine.cache.CacheRun#decideJointly} combines the branches as the ComfyUI nodes do.
 *
 * <h2>Parallel runs</h2>
 * Signals are sums plus element counts: a sequence-parallel group all-reduces the four numbers and every rank feeds
 * the identical result to its own policy instance, so decisions agree on every rank and the mean is the exact
 * global mean even for uneven shards (ParaAttention averages per-rank means instead). MagCache needs no
 * communication. {@link org.dit4j.engine.cache.StepCache#needsSignal} depends only on the step and configuration,
 * so all ranks agree whether to reduce.
 *
 * <h2>Where dit4j departs from the published code, on purpose</h2>
 * <ul>
 *   <li>Threshold 0 turns a policy off (every step computed, as the ComfyUI nodes do); the raw scripts could still
 *       skip when TeaCache's polynomial is negative or MagCache's error is exactly 0.</li>
 *   <li>A branch never skips before it has computed once: the scripts fail there (no residual yet), ComfyUI-MagCache
 *       adds nothing.</li>
 *   <li>ComfyUI-TeaCache evaluates its polynomial and accumulator in the tensors' dtype; dit4j in double (the
 *       float32 accumulation of ComfyUI-MagCache is reproduced). {@link org.dit4j.engine.cache.ScalarRounding}
 *       reproduces the rounding of the scalar means to the model dtype that {@code tensor.mean()} performs.</li>
 *   <li>ComfyUI-MagCache takes a branch's γ column by its position in the batch; dit4j by the branch.</li>
 * </ul>
 */
package org.dit4j.engine.cache;
