// Package trainset turns the rows of a training split into the micro-batches of a training
// step, exactly as the official BEAR training scripts build their data (train_bear.py,
// train_msl.py, train_lml.py, Trie.py of github.com/Tiny-Snow/BEAR-SIGIR-2026; their
// environment.yaml pins transformers 4.49.0 and accelerate 1.8.1). It imports only tokenize,
// which reads the files; the trainer consumes its micro-batches.
//
// # From a CSV row to a micro-batch
//
//  1. Example (Build). tokenize.Row holds the row's history titles and target (ids missing
//     from the catalogue already dropped). tokenize.Encoder.TrainExample tokenises BOS + the
//     training prompt with the output "TARGET" + EOS, untruncated, and answers where the
//     supervision starts by both official rules (tokenize.Supervision): the labels by the
//     token count of the prompt with an empty output, the trie path by the last
//     "### Response:\n" separator. Supervision.Start accepts the example only where they
//     agree, which is where the official script's assert holds. The supervised positions are
//     LabelStart .. len(IDs)-1: the title's tokens and EOS; Example.Targets are their ids.
//  2. Allowed sets (Build). The path IDs[LabelStart:] is walked through the item trie of the
//     official training script, ItemSet.StandaloneTrie (the tokens of "TITLE" + EOS of every
//     catalogue title); position j gets the trie's sorted children after the path's first j
//     tokens (Example.Allowed, shared with the trie) and the index of its target among them
//     (Example.TargetIdx). A target missing from the catalogue, or whose tokens leave the trie
//     or end at another item, is an error naming the row and its file line (index + 2).
//  3. Epoch order (Set.Order). A permutation that depends on (Options.Seed, epoch) alone, so a
//     resumed run rebuilds it from its step count (Set.Locate).
//  4. Step (Batcher.Step). Options.Batch consecutive indices of the order (the last step of
//     an epoch may be short, or filled up with Options.FillLast), cut into groups of
//     Options.NormGroup consecutive sequences; each group's loss is normalised on its own
//     (Group.Positions counts its supervised positions). A group is sorted by length and cut
//     into ceil(n/Micro) micro-batches of near-equal size (at most Options.Micro sequences;
//     a Micro above NormGroup is clamped to NormGroup, since a micro-batch never spans two
//     groups).
//  5. Micro-batch (MicroBatch). B rows left-padded to T slots, T the longest row rounded up
//     to a multiple of Options.Bucket (Set.Buckets lists them) so that the trainer's buffers
//     of one shape serve many steps; IDs, Mask, Pos in the layout of ortrun.NewTokenBatch
//     (padding: id 0, mask 0, position 1; real tokens count positions from 0). Index[p] is
//     the flat slot of the logit that predicts supervised token p (the slot of the token
//     before it), row by row; Targets[p] its id; Allowed[p] its allowed set. Union is the
//     sorted union of the allowed sets, AllowedIdx[p] the indices of Allowed[p] in Union and
//     TargetIdx[p] the index of the target in Allowed[p]: the trainer computes logits only
//     for the Union columns and hands each position's slices to lossgrad.
//
// A Batcher reuses its micro-batches from one step to the next (by shape, with one token
// table for all Unions): a Step is valid until the Batcher's next Step call.
//
// # Official facts, and where they come from
//
//   - Text and tokens (train_bear.py: generate_list_from_csv, tokenize,
//     generate_and_tokenize_prompt): tokenizer(prompt) adds BOS; EOS is appended unless the
//     ids end with it; no cutoff is passed, so nothing is truncated. With train_on_inputs 0
//     (the default) labels are -100 over user_prompt_len = len(tokenize(prompt with output
//     "")) and the ids after it. All three scripts share this; train_lml.py has no trie.
//   - Trie (train_bear.py, train_msl.py): built from tokenizer.encode('"TITLE"',
//     add_special_tokens=False) + [eos] of every value of id2name4Rec.json;
//     response_idx_end is searched backwards for the ids of "### Response:\n"; the allowed
//     sets are trie.valid_tokens(input_ids[response_idx_end:])[:-1], asserted to number
//     len(input_ids) - user_prompt_len; a missing separator prints "Response not found" and
//     leaves a None in the dataset (its filter tests the raw row, not the result).
//   - valid_tokens (Trie.py): the root's children, then the children after each token; a
//     token off the trie gives an empty list and the walk stays where it was. An empty set
//     masks every logit to -inf (a NaN loss in compute_loss), so Build refuses such rows
//     instead; on a path in the trie no supervised set is empty (the last holds EOS).
//   - Shift (compute_loss): logits[:, -C-1:][..., :-1] against labels[:, -C-1:][..., 1:],
//     with C the padded response length: the logit of slot t-1 predicts label t.
//   - Padding (train_bear.py): tokenizer.padding_side = "left", "<pad>" added as id 128256,
//     DataCollatorForSeq2Seq with pad_to_multiple_of=8 (labels padded with -100),
//     constrain_mask left-padded with True on positions whose label is -100. Padding is
//     masked, so neither the pad id nor the padded length changes a loss; we pad to
//     Options.Bucket instead of 8, and write id 0 (tokenize.PadID).
//   - Positions: the collator passes no position_ids, so transformers' LlamaModel numbers
//     the slots 0..T-1, padding included. RoPE makes attention depend on differences of
//     positions only, so counting real tokens from 0 (as ortrun.NewTokenBatch and the
//     inference path do) gives the same results in exact arithmetic.
//   - Batch (train_bear.py): micro_batch_size = batch_size // WORLD_SIZE, gradient
//     accumulation 1, batch_size 128; the released run launches 8 processes (cmd/run.sh:
//     CUDA="0,...,7", accelerate launch in cmd/run.py), so each device normalises its loss
//     over 16 sequences and DDP averages the 8 gradients: NormGroup 16, and the trainer
//     averages the group gradients of a step.
//   - Sharding (accelerate data_loader.py, BatchSamplerShard without split_batches): the
//     sampler's batches of 16 are dealt round-robin to the processes, so a step is 128
//     consecutive indices of the epoch's order and device i holds the i-th 16: groups are
//     consecutive runs. With even_batches (the default) a short last round is completed
//     with indices from the start of the epoch's order (Options.FillLast); one device (HF's
//     DataLoader, drop_last false) keeps the short last batch (the default here).
//   - order (transformers TrainingArguments seed=data_seed=42; its AcceleratorConfig turns
//     on use_seedable_sampler, and accelerate's SeedableRandomSampler reseeds with seed +
//     epoch at every epoch): the order of an epoch is a function of (seed, epoch). Ours is a
//     Fisher-Yates shuffle driven by math/rand/v2's PCG seeded with (seed, epoch), not
//     torch.randperm: the same property, another permutation. train_lml.py also shuffles
//     its dataset once with the seed before the sampler does, which changes nothing of
//     the kind.
//
// # Measured
//
// Build of the 10 000 rows of Office's train_10000.csv (testdata/office), one goroutine, on
// the 2-core development machine while other jobs ran (load 4 to 8): 1.3 to 2.1 s of CPU,
// about 92% of it in the tokenizer's encoding (one encoding of the prompt serves both the
// ids and the label count where tokenize can prove it exact, which halved the time); a step
// of 128 sequences in micro-batches of 4: 1.5 to 1.7 ms of CPU.
// Command: go test ./runtime/train/trainset -run '^$' -bench . -benchtime 3x -cpu 1
// On Office, Book and Clothing (10 000 rows each) every example's ids and label start equal
// those of encoding the full text and the prompt separately, and both rules agree on every
// row. Office: 269 244 supervised positions, the largest allowed set 265 tokens, the Union of
// 16 sequences at most 779 columns (Book 1 182 and 2 478, Clothing 1 210 and 2 182).
package trainset
