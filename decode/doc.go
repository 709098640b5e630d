// Package decode is bear's evaluation core in pure Go: batched, trie-constrained beam search
// with the semantics of Hugging Face transformers' beam search as the official BEAR evaluation
// ran it, the exact top-B search behind the pruning analysis, and the ranking metrics. It
// imports nothing of the project; a model reaches it only through the Scorer interface, so
// every part is testable with fake scorers.
//
// # Using it
//
//	ix := decode.NewIndex(trie)                      // once per catalogue (*tokenize.Trie satisfies decode.Trie)
//	res, err := decode.Search(scorer, trie, prompts, decode.DefaultConfig())
//	// res[i].Hyps: best first, each with Tokens (EOS included), Node, Items and Score
//	ranks[i] = decode.Rank(res[i].Hyps, targetItem[i])   // -1: not found
//	m := decode.RankMetrics(ranks, nil)                   // NDCG@1/5/10, HR@1/5/10
//
// For --official-match, decode each hypothesis' tokens with the tokenizer (skip special tokens),
// apply OfficialResponse if the text includes the prompt, and use RankOfTitles(predicted,
// "\"TITLE\"") instead of Rank. For the pruning analysis: AnalysePruning (beam search with the
// targets traced + exactTopB) and Summarise.
//
// Search takes all its prompts as one batch: one Scorer.Start, then one Scorer.Step per
// decoding step holding the live beams of every unfinished prompt (at most B rows each). The
// caller picks the batch size (8 to 64 prompts is sensible); results do not depend on it.
// Search never asks for more than len(prompts)*B rows in one call; exactTopB for at most
// exactConfig.MaxRows (unbounded without it: up to the width of the trie's widest level per
// prompt).
//
// # The Scorer contract
//
// Start(prompts, cands) opens one row per prompt; Step(parents, tokens, cands) makes new rows,
// row r continuing row parents[r] of the previous call with tokens[r]. Each call returns, per
// row, the raw logits of that row's candidate tokens only (cands[r], the trie's allowed tokens
// in ascending order) and LogZ, the log-sum-exp of the row's logits over the whole vocabulary.
// A KV-cache scorer gathers its cache rows by parents, appends tokens, runs one decode step,
// and gathers the candidate logits and the log-sum-exp where the logits live (on the device),
// so that only a few numbers per row cross to Go. Previous rows that no parent names are
// finished beams or finished prompts and can be dropped. SeqScorer (with newFuncScorer) is the
// no-cache reference: it keeps full sequences and rescores them each step.
//
// Log-probabilities from Scores, by Mode:
//
//   - AfterSoftmax (HF prefix_allowed_tokens_fn; official --constrained_before_softmax False,
//     the default): log p = logit - LogZ, i.e. log-softmax over the whole vocabulary, then the
//     disallowed tokens are dropped (HF sets them to -inf).
//   - BeforeSoftmax (the official custom CBS, --constrained_before_softmax True, which the
//     official scripts use for MSL and BEAR): the disallowed logits are masked before the
//     log-softmax, so log p = logit - logsumexp(candidate logits): renormalised over the
//     allowed set. LogZ is not read.
//
// # HF semantics implemented
//
// As read in transformers' generation/beam_search.py (BeamSearchScorer, BeamHypotheses) and
// the vectorised _beam_search of generation/utils.py:
//
//   - num_beams = B (Config.Beams, default 10), num_return_sequences = Config.Return (default
//     B), length_penalty = Config.LengthPenalty (default 1.0), early_stopping False, no sampling,
//     no other logits processors (temperature, repetition penalty, ... are never applied: the
//     official GenerationConfig sets none).
//   - First step from one beam: HF starts rows 1..B-1 at -1e9, so all first candidates come from
//     beam 0; decode starts with a single row per prompt.
//   - Every step ranks all (beam, token) pairs by accumulated log-probability (sum over the
//     generated tokens) and takes the top 2B. Walking them in rank order, an EOS pair within
//     the first B ranks is offered to the finished hypotheses, an EOS pair at rank >= B is
//     skipped, and the first B non-EOS pairs become the next beams.
//   - Finished hypotheses (BeamHypotheses): at most B kept; a new one enters if fewer than B
//     are kept or its score is strictly above the worst kept; when over B, the lowest (the
//     earliest among equal lowest) is dropped.
//   - Score = sum of log-probabilities / generated_len^length_penalty, where generated_len is
//     the number of generated tokens INCLUDING the EOS (HF: cur_len = input_ids.shape[-1] + 1,
//     minus decoder_prompt_len, in BeamSearchScorer.process; cur_len + 1 - decoder_prompt_len in
//     the vectorised version). The prompt does not count. (transformers versions before
//     decoder_prompt_len existed divided by the whole row length — left-padded prompt included,
//     EOS excluded — which made scores depend on the batch's padding; the issue asks for the
//     generated length.) Hypothesis.Score is what HF returns as sequences_scores.
//   - early_stopping False: after each step a prompt is done once B hypotheses are finished and
//     the worst of them is >= best / generated_len^length_penalty, with generated_len = the
//     current step (tokens generated, the new one included). "best" depends on the
//     transformers generation (Config.Stop): StopScorer (BeamSearchScorer, default) takes the
//     best of the step's top-2B candidate scores, EOS pairs included; StopVectorized (the
//     vectorised _beam_search of newer versions) takes the best running, non-EOS beam. A done
//     prompt's open beams are discarded.
//   - max_new_tokens (Config.MaxNewTokens, 0 = none): at that step a prompt's open beams are
//     finalised like BeamSearchScorer.finalize (all added, score = sum / tokens so far). With a
//     trie no path outlives the longest title (Index.Depth), so the official 128 only bites
//     where a title has 128 tokens or more (two Office titles have 138 and 176, quotes
//     included): such beams are finalised without EOS, on an inner node with no Items, and
//     take a slot of the returned list as HF's do. The evaluation passes 128.
//   - The returned list is the finished hypotheses sorted by score, best first, ties as HF's
//     stable sort-then-pop gives them (the later-added first), cut to Return.
//   - The constraint: the allowed tokens of a beam are the children of its trie node; where a
//     node has none (a sequence stored without EOS, a prefix outside the trie), [EOS], as the
//     official prefix_allowed_tokens_fn returns. EOS finishes a hypothesis on the node after
//     the EOS edge, whose ItemsAt are its item ids (several for duplicate titles). A node can
//     offer EOS and other tokens at once, so titles that are token-prefixes of other titles are
//     reachable. (In the official trie the sequences carry no EOS and EOS is allowed only where
//     nothing else is, so such a title cannot be generated there; that is a property of the
//     trie handed in, i.e. of package tokenize, not of decode.)
//
// # Deviations from HF kept on purpose
//
//  1. No junk rows. HF always computes B rows per prompt: at step 1 all B copies of the prompt,
//     and wherever fewer than B allowed continuations exist it keeps running filler beams (copies
//     scored near -1e9 from the initial rows, or disallowed tokens at -inf whose prefixes then
//     only allow EOS). decode runs one row at Start, afterwards only real beams, and a done
//     prompt costs no rows at all (HF keeps padding it until the whole batch is done). The
//     filler always ranks below every real candidate, so the real hypotheses, their order and
//     their scores are the same: the tests compare against a literal reference that keeps the
//     filler. Visible difference: where fewer than B items can be reached, HF pads the returned
//     list with filler sequences (score about -1e9/len or -inf); decode returns a shorter list.
//     Candidates whose log-probability is -inf or NaN are dropped.
//  2. Arithmetic. Log-probabilities and sums are float64 in decode (HF: float32 log-softmax of
//     logits that a bf16 model produced, float32 beam scores). Near-ties can therefore order
//     differently from a GPU HF run; exact ties are broken as a stable sort over HF's flattened
//     (beam, token) index would (beam slot, then token id), while torch.topk leaves tie order
//     unspecified.
//  3. B = 1 runs this algorithm with one beam (HF would switch to greedy search, which also
//     stops at EOS but never keeps a second candidate).
//  4. MaxNewTokens finalisation follows BeamSearchScorer.finalize for both stop rules (the
//     vectorised version instead finalises the top-B ranks of the last step); this only matters
//     when the limit is below the trie depth.
//
// # exact top-B and the pruning analysis
//
// exactTopB finds each prompt's K best sequences of the whole catalogue by full-sequence score
// (sum log p / len^LengthPenalty: with 1 the beam search's own ranking, with 0 the plain
// sequence log-probability), exactly, by branch and bound over the trie. It runs
// level-synchronously through the same Scorer interface (every open prefix of depth d is a row
// of the d-th call, its parent a row of the previous one), so a KV-cache scorer serves it
// unchanged; shared prefixes are scored once. A prefix with log-probability sum S <= 0 at
// depth d whose completions have between d+lo and d+hi tokens cannot finish above
// max(S/(d+lo)^lp, S/(d+hi)^lp); it is dropped once that bound is below the K-th best finished
// score so far or below a given floor (AnalysePruning passes the K-th best score of the beam
// search's hypotheses under the exact ranking: K real sequences, so never above the exact
// K-th).
//
// How much it prunes depends on the ranking and the model. With LengthPenalty 0 the bound is
// the prefix's own sum, which falls below the K-th best once the prefix is unlikely: on Office
// (49 671 trie nodes, at most 2 243 on one level) a trained tiny model with the constraint
// before the softmax kept at most 258 prefixes of one depth for a prompt. With 1 a prefix that
// can still grow long is bounded near 0 and stays open: the search scores most of the trie
// (about 35 000 nodes per prompt, up to 2 000 on one level). With 0 and the constraint after the
// softmax every token also pays for the probability outside the trie, so the K-th best score is
// low and the trie's first levels stay open whole (2 088 prefixes at depth 7, the same tiny
// model). A model-backed scorer holds a KV cache and vocabulary-wide logits per row, so the rows of
// a call are its memory: exactConfig.MaxRows bounds them. Prompts are independent, so the
// bound is kept by deferring whole prompts (a prompt whose prefixes would take the call over it
// leaves the pass and is searched again, from Start, with fewer prompts beside it): results do
// not depend on it. A prompt that alone needs more stops the search with a *RowBudgetError:
// dropping its prefixes would make the result depend on a memory setting. (The Scorer contract
// rules out splitting one level into several calls: a Step forgets the rows its parents do not
// name.) exactConfig.MaxFrontier is the explicit way to accept an inexact result: it caps the
// open prefixes per prompt and depth, keeping those of the highest bounds, and flags a capped
// result Truncated.
//
// AnalysePruning (PruneConfig: the beam Config, the exact ranking's length penalty — by default
// 0, plain sequence log-probability, the paper's definition; the beam's own LengthPenalty ranks
// by its final score — the frontier cap and the row bound) runs searchTrace
// and exactTopB with the same scorer and reports per prompt the
// target's beam rank, exact rank, and Pruned = in the exact top-B but not returned (the paper's
// incorrect pruning); Summarise gives the rate over all prompts and over the prompts whose
// target is in the exact top-B, and a histogram of the step at which those targets were lost.
// The Trace of a target says how and when beam search lost it: PrunedBeam at step s means the
// target's first s tokens were not among the B continued beams (at s = its full length: its
// EOS pair ranked >= B or was outside the top 2B); Rejected means it finished but scored <= the
// worst of B finished hypotheses; Displaced at step s means it was pushed out of the finished
// hypotheses then; Stopped at step s means the early-stopping heuristic ended the search while
// its prefix was still a live beam; NotReturned means it was finished but below Return.
//
// # Metrics
//
// Rank is the 0-based position of the first hypothesis whose Items contain the target id, -1
// if none (item identity; the official script matches strings: RankOfTitles, which cuts the
// first and last character of every predicted and target string like Python's s[1:-1] and
// takes the first equal one). RankMetrics: NDCG@K = mean over prompts of 1/log2(rank+2) where
// 0 <= rank < K, else 0; HR@K = share of prompts with 0 <= rank < K; K in {1, 5, 10}.
//
// # Cost
//
// BenchmarkSearch* measure the search's own work with a free scorer:
//
//	go test -run '^$' -bench Search -benchtime 20x ./decode/
//
// about 0.3 µs per scorer row after the softmax and 0.7-0.9 µs before it (the log-sum-exp over
// the candidates is computed in Go), i.e. about 60 µs (after) to 160 µs (before) per decoding
// step of 32 prompts x 10 beams (about 170 rows per step on average, 21 steps), on the 2-core
// development machine when idle; up to 2-3x that while other work shares the machine. A
// model's decode step over the same rows costs milliseconds or more, so the search itself
// stays far below 1% of evaluation time.
package decode
