// Package trainset turns the rows of a training split into the micro-batches of a training
// step, as the official BEAR training scripts build their data (train_bear.py, train_msl.py,
// train_lml.py and Trie.py of github.com/Tiny-Snow/BEAR-SIGIR-2026). It imports only tokenize,
// which reads the files; the trainer consumes its micro-batches.
//
// Examples. Build tokenises every row (BOS + training prompt with "TARGET" + EOS, untruncated)
// and constrains each supervised position (the title's tokens and EOS) with the official
// training trie (tokenize.ItemSet.StandaloneTrie): Example.Allowed holds the sorted tokens the
// trie allows there, Example.TargetIdx the target's index among them. A row whose supervision
// rules disagree, whose target is missing from the catalogue, or whose tokens leave the trie is
// an error naming the row and its file line.
//
// Epoch order. Set.Order is a permutation that depends on (Options.Seed, epoch) alone, so a
// resumed run rebuilds it from its step count (Set.Locate). A step is Options.Batch
// consecutive indices of the order (Set.StepRows); the last step of an epoch may be short, or
// completed from the epoch's start with Options.FillLast.
//
// Norm groups. A step is cut into groups of Options.NormGroup consecutive sequences, each of
// which the trainer normalises on its own (the official run's devices); Group.Positions counts
// a group's supervised positions.
//
// Micro-batches. A group is sorted by length and cut into micro-batches of near-equal size, at
// most Options.Micro sequences (clamped to NormGroup: a micro-batch never spans two groups).
// A MicroBatch holds B rows left-padded to T slots, T a multiple of Options.Bucket (Set.Buckets
// lists them), in the layout of ortrun.NewTokenBatch, with per supervised position the flat
// slot of the logit that predicts it, its target and allowed set, and the sorted Union of the
// allowed sets, the only vocabulary columns the loss needs.
//
// A Batcher reuses its micro-batches' buffers: a Step is valid until the same Batcher's next
// Step call. Where each official fact is honoured is said beside the code (set.go, order.go,
// batch.go, micro.go).
package trainset
