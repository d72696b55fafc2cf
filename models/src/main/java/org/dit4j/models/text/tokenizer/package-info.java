/**
 * Text tokenizers of the Flux/Wan text encoders, exact against the Python references.
 *
 * <ul>
 *   <li>{@link org.dit4j.models.text.tokenizer.ClipTokenizer} — CLIP byte-level BPE (vocab.json + merges.txt, or
 *       tokenizer.json), BOS 49406 / EOS 49407, 77 tokens, padded with {@code <|endoftext|>}. Two cleanings:
 *       {@code HF_SLOW} (transformers ≤ 4 Python {@code CLIPTokenizer} without ftfy) and {@code HF_FAST}
 *       ({@code tokenizers}; transformers 5's {@code CLIPTokenizer}). The ftfy path of the slow tokenizer
 *       ({@code ftfy.fix_text}: mojibake repair, quote uncurling, …) is not implemented.</li>
 *   <li>{@link org.dit4j.models.text.tokenizer.T5Tokenizer} — SentencePiece Unigram (T5-v1.1, umT5) from
 *       tokenizer.json (as {@code tokenizers}) or spiece.model (as {@code sentencepiece}), with the precompiled
 *       "nmt_nfkc" charsmap, whitespace rules, byte fallback, unknown-run fusing, EOS, truncation and padding.
 *       Not implemented: SentencePiece user-defined symbols' protection from normalization, BPE-type
 *       SentencePiece models, sampling/n-best, and tokenizer.json components other than those listed on
 *       {@link org.dit4j.models.text.tokenizer.T5Tokenizer} (an error names any other).</li>
 * </ul>
 *
 * <p>Exactness is tested against {@code src/test/resources/tokenizer/reference.json}, made on the GPU machine by
 * {@code scripts/reference/tokenizer_reference.py} (transformers 5.17, tokenizers 0.23.2, sentencepiece 0.2.2).
 */
package org.dit4j.models.text.tokenizer;
