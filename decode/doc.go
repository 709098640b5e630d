// Package decode is bear's evaluation core: batched, trie-constrained beam search with the
// semantics of Hugging Face transformers' beam search as the official BEAR evaluation ran it,
// the beam-pruning analysis, and the ranking metrics. It imports nothing of the project: a
// model reaches it only through Scorer, the catalogue through Trie (*tokenize.Trie is one).
//
// Search(scorer, trie, prompts, cfg) returns, per prompt, its finished hypotheses best first:
// at most Config.Return, fewer only when the trie holds fewer items, each with its Tokens (EOS
// included), Items and Score. Results do not depend on how prompts are batched; a NaN or
// infinite score stops the search with a *NonFiniteError. Rank gives a target item's 0-based
// position (-1: absent), RankOfTitles with OfficialResponse the official string-matching rank,
// RankMetrics NDCG@K (mean of 1/log2(rank+2)) and HR@K (share of ranks below K), K in Ks.
//
// The Scorer contract: Start opens one row per prompt; each Step makes new rows, row r
// continuing row parents[r] of the previous call with tokens[r]. Each call returns, per row,
// the raw logits of its candidate tokens (the trie's allowed tokens, ascending) and LogZ, its
// log-sum-exp over the whole vocabulary. SeqScorer adapts a function of full sequences.
//
// Reproduced from transformers' BeamSearchScorer (num_beams B = Config.Beams, early_stopping
// False, no sampling, no other logits processors): every step ranks all (beam, token) pairs by
// summed log-probability and keeps the top 2B; an EOS pair among the first B ranks finishes a
// hypothesis, and the first B other pairs continue. At most B finished hypotheses are kept.
// Score = sum log p / generated_len^LengthPenalty, the EOS counted and the prompt not (HF's
// sequences_scores). Config.Stop picks the early-stopping test of one transformers generation;
// Config.MaxNewTokens finalises the open beams as HF's finalize does. A beam's allowed tokens
// are its trie node's children, [EOS] where it has none. Unlike HF, decode runs no filler beams
// (where fewer than B items are reachable its list is shorter instead of padded), sums in
// float64, breaks exact ties by beam slot then token id, and runs beam search also for B = 1.
//
// Config.Mode places the constraint: AfterSoftmax (HF's prefix_allowed_tokens_fn, the official
// default) takes log p = logit - LogZ; BeforeSoftmax (the official --constrained_before_softmax
// True, used for MSL and BEAR) renormalises over the allowed tokens and does not read LogZ.
//
// AnalysePruning runs the beam search with each prompt's target traced, then an exact top-B
// search over the same Scorer and Index (NewIndex, once per catalogue), ranking by sum log p /
// len^PruneConfig.ExactLengthPenalty (0: the sequence log-probability, the paper's ranking).
// Each PruneCase gives the target's beam and exact ranks, Pruned (in the exact top-B but not
// returned: the paper's incorrect pruning) and a Trace of how and at which step it was lost;
// Summarise aggregates them. The exact list is exact unless PruneConfig.MaxFrontier caps it
// (PruneCase.Truncated); a prompt that needs more than PruneConfig.MaxRows rows in one Scorer
// call fails with a *RowBudgetError.
package decode
