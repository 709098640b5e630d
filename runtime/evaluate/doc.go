// Package evaluate is the orchestration behind `bear eval`: it reads an Amazon split, builds the
// official inference prompts, decodes batches of users with trie-constrained beam search over a
// ortrun.Scorer, maps the beams back to item ids, and writes predictions.json and metrics.json
// (NDCG@1/5/10 and HR@1/5/10); it also runs the pruning analysis and merges shards.
//
// # The pipeline
//
//	loadData: tokenizer.json, tokenize.LoadSplit (DIR/id2name4Rec.json), the split file (ReadSplit: columns
//	          by header name; ids missing from the catalogue dropped, last id = target), --limit,
//	          the shard's rows, the item trie (tokenize.NewItemSet: in-context ### Response:\n"TITLE")
//	batchDecoder.Decode: prompt ids = Tokenizer.InferenceIDs: BOS + Prompt.Inference(history) (the official script calls
//	          tokenizer(prompts, padding=True) with the default add_special_tokens and left
//	          padding: BOS in front, the padding hidden by the attention mask), then decode.Search
//	          (or decode.AnalysePruning with --pruning) over --batch users at once, the scorer
//	          chunking rows itself; Rank by item identity (Hypothesis.Items, from the trie) and
//	          RankOfTitles over the official strings
//	Run: batches appended to OUT/journal.jsonl (fsynced), then predictions.json and metrics.json
//	          written through a temporary file and a rename; the journal is removed last
//
// The beam search is the official evaluation's: 10 beams, 10 returned sequences, length penalty
// 1, early_stopping False (decode.DefaultConfig), max_new_tokens 128 (the official inference.py's
// generate call; DefaultMaxNewTokens). The cap bites on titles of 128 tokens or more (two
// Office titles have 138 and 176): their beams end unfinished, HF returns them as hypotheses
// that take a slot of the ten, and they never match a target; NoMaxNewTokens (--max-new-tokens
// 0) decodes without it. More beams than the trie has distinct item sequences are refused
// (CheckBeams): the search could not return more, and HF would pad with filler. --constrain after (default) is HF's
// prefix_allowed_tokens_fn, i.e. the official --constrained_before_softmax False: log-softmax
// over the whole vocabulary, disallowed tokens dropped; --constrain before is the official
// custom CBS (--constrained_before_softmax True, which the official scripts pass for MSL and
// BEAR checkpoints): the softmax runs over the allowed tokens only.
//
// # Item identity and the official string match
//
// results.Metrics are computed on item identity: a beam ends on a trie node whose item ids (several for
// duplicate titles) are its prediction, and the rank is the first beam holding the target id.
// The official script compares strings instead: each beam is decoded with batch_decode
// (skip_special_tokens; clean_up_tokenization_spaces, which the Llama-3.2 tokenizer_config.json
// sets to true), the text after the last "Response:\n" is kept, and predictions and the
// "output" field are compared after cutting their first and last character. transformers'
// cleanup (" ." -> ".", " ?" -> "?", " !" -> "!", " ," -> ",", " ' " -> "'", " n't" -> "n't",
// " 'm" -> "'m", " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re", applied in this order as a
// chain of replacements; cleanUpTokenizationSpaces) changes the titles of 136 of the 43 464 items
// of the four datasets (0.31%: Office 24, Book 5, Clothing 98, Toy 9; 133 distinct titles),
// which the string match can then never count as hits. metrics.json always holds both ("item_match" and
// "official_match"); --official-match makes the official one the headline ("primary"), so that
// numbers can be set beside the paper's. The predict strings in predictions.json are always the
// official (cleaned) strings.
//
// # Output files
//
// predictions.json: a JSON array, one object per user in split order, with the official
// inference script's fields — instruction, input, output ("\"TITLE\""), predict (the B decoded
// strings, quotes included), scores (HF's sequences_scores: sum of log-probabilities / generated
// length, EOS included) — and ours, all prefixed bear_: bear_row (0-based row of the split
// file), bear_user_id, bear_target_item, bear_predict_items (the item ids of each prediction),
// bear_rank and bear_official_rank (0-based, -1 when absent), and with --pruning bear_pruning
// {beam_rank, exact_rank, pruned, how, step, truncated}. (Python's json.dump escapes non-ASCII
// characters; ours writes them as UTF-8: the same JSON values.)
//
// metrics.json: {"item_match": {"NDCG@1": ..., "NDCG@5", "NDCG@10", "HR@1", "HR@5", "HR@10"},
// "official_match": {...}, "primary": "item_match"|"official_match", "users": N,
// "dropped_item_ids": the ids of these users' rows missing from the catalogue (dropped as the
// official code drops them; summed by a merge), "pruning":
// {...} (with --pruning), "catalogue": {items, distinct_titles, cleanup_changed_titles,
// cleanup_changed_items}, "config": {...}, "timing": {...}}. The metrics are computed as the
// official evaluate script does (decode.RankMetrics: NDCG@K = mean of 1/log2(rank+2) over ranks
// < K; HR@K = share of ranks < K); with fewer than 10 beams the @10 values equal the largest
// cut-off's (the official script would omit them). "config" identifies the run: dataset, split
// file name and sha256, catalogue and tokenizer sha256, the checkpoint's content identity
// (model_sha256: hf.Checkpoint.ContentSHA256), the adapter's sha256, limit, selected users,
// shard count, beams, constraint, length penalty, stop rule, max_new_tokens and the pruning
// settings; paths, the shard index, KV cache and batch size are recorded but not compared.
// "timing" has the users decoded by this run, decode seconds, seconds inside scorer calls,
// go_share (1 - scorer/decode), seconds inside ONNX Runtime, go_share_outside_ort (1 -
// ort/decode) and users_per_second; a merge sums the counts and seconds and derives the shares
// from the sums.
//
// The pruning section: users, target_in_exact_top_b, target_returned_by_beam,
// incorrectly_pruned (in the exact top-B by full-sequence score over the whole catalogue, but not
// returned by beam search: the paper's incorrect pruning), rate (of users), rate_of_exact (of
// targets in the exact top-B), lost_at_step (decoding step at which those targets fell out, see
// decode.Trace), by_how, exact_search_capped, and lost_hits / lost_hit_rate: targets beam search
// did not return although their own final score beats the last returned hypothesis (keeping
// their prefixes would have made them hits), over target_returned_by_beam + lost_hits. This
// second measure needs only a teacher-forced pass over each target, so it stays cheap with the
// beam's length-normalised score. --exact-length-penalty sets the exact ranking: 0 (default)
// ranks by the plain sequence log-probability (the paper's definition; its bound prunes well),
// 1 by the beam search's own final score sum(log p)/len (whose bound barely prunes: most of the
// trie is scored). --exact-memory bounds the memory of the exact search's model calls (a row
// count at the model's shape and the longest prompt, see budget.go): users that do not fit
// together are searched in turns, and a user that alone needs more stops the run with an error
// (results never depend on the bound). --max-frontier caps the exact search's open prefixes per
// user and depth (0: none, exact; capped users are counted as exact_search_capped).
//
// # Shards, merging, interruption
//
// --shard i/n takes rows i, i+n, i+2n, ... of the split after --limit (strided, so shards get a
// similar mix of users). Each shard folder is a complete result with its per-user ranks;
// Merge (bear eval --merge --out DIR SHARD...) checks that the shards share one configuration
// and are exactly shards 0..n-1 with disjoint rows, concatenates predictions.json in split order
// and recomputes the metrics over the union (not an average of averages); timing and
// dropped_item_ids are summed.
// An interrupted run leaves OUT/journal.jsonl (a config line, then one record per finished
// user); running the same command again resumes after the last complete batch (a line cut by
// the interruption is dropped), --fresh discards it, and a journal of another configuration is
// refused, as is any other damaged line (not JSON, lists of different lengths, ranks out of
// range, a row twice or not of this shard): the error names the line (FuzzJournal).
//
// # Cost
//
// BenchmarkEval (8 Office test users, one batch, B = 10, a random `small` checkpoint, CPU, the
// 2-core development machine):
//
//	go test -run '^$' -bench Eval -benchtime 1x ./runtime/evaluate/
//
// KV cache: 3.2 users/s, 0.15% of the decoding time outside the scorer; no cache: 0.13 users/s
// (25x slower: every step reruns the whole prompt), 0.006% outside. The beam search itself is
// negligible; the time is in ONNX Runtime.
package evaluate
