package trainset

import (
	"errors"
	"fmt"
	"slices"

	"github.com/bearrec/bear/internal/opterr"
	"github.com/bearrec/bear/tokenize"
)

// Options sets the batching of a training set. DefaultOptions gives the official values.
type Options struct {
	// Batch is the number of sequences per optimizer step (official 128).
	Batch int
	// NormGroup is the number of consecutive sequences whose loss is normalised together
	// (official 16: the released run's 8 devices each normalise over their 16).
	// Batch must be a multiple of it.
	NormGroup int
	// Micro is the most sequences per micro-batch; more than NormGroup is clamped
	// to NormGroup, since a micro-batch never spans two groups.
	Micro int
	// Seed seeds the epoch order together with the epoch index (official seed 42; 0 is a
	// seed like any other).
	Seed uint64
	// Bucket is the step of the sequence-length buckets: T is rounded up to a multiple of it.
	Bucket int
	// FillLast completes a short last step of an epoch with the epoch's first sequences, as
	// accelerate does on several devices (even_batches); false keeps the short step, as a
	// single-device HF dataloader does.
	FillLast bool
}

// DefaultOptions are the official run's batching: 128 sequences per step in 8 groups of 16,
// seed 42, and micro-batches of a whole group.
func DefaultOptions() Options {
	return Options{Batch: 128, NormGroup: 16, Micro: 16, Seed: 42, Bucket: 32}
}

// Validate checks the options and returns them with Micro clamped to NormGroup; an error is an
// *opterr.Error naming the field (trainset.Options.Field).
func (o Options) Validate() (Options, error) {
	name := func(field string) string { return "trainset.Options." + field }
	switch {
	case o.Batch < 1:
		return o, opterr.New(name("Batch"), o.Batch, "want at least 1")
	case o.NormGroup < 1:
		return o, opterr.New(name("NormGroup"), o.NormGroup, "want at least 1")
	case o.Batch%o.NormGroup != 0:
		return o, opterr.New(name("Batch"), o.Batch, "not a multiple of %s %d", name("NormGroup"), o.NormGroup)
	case o.Micro < 1:
		return o, opterr.New(name("Micro"), o.Micro, "want at least 1")
	case o.Bucket < 1:
		return o, opterr.New(name("Bucket"), o.Bucket, "want at least 1")
	}
	o.Micro = min(o.Micro, o.NormGroup)
	return o, nil
}

// Example is one training row, tokenised and constrained as the official script does.
type Example struct {
	// Row is the index of the row in Build's rows (file line Row+2).
	Row int
	// IDs, LabelStart, PathStart (equal to LabelStart here): see tokenize.Example.
	tokenize.Example
	// Allowed[j] is the sorted set of tokens allowed at position LabelStart+j (the trie's
	// children after the title's first j tokens), shared with the trie: read-only.
	Allowed [][]int
	// TargetIdx[j] is the index of IDs[LabelStart+j] in Allowed[j].
	TargetIdx []int32
}

// Targets returns the supervised token ids: the title's tokens and EOS.
func (e *Example) Targets() []int { return e.IDs[e.LabelStart:] }

// Set is a tokenised training split with its batching options.
type Set struct {
	Examples []Example
	opts     Options
	maxLen   int
	// tableSize is one past the largest allowed token id: the size of a micro-batch's
	// token -> Union index table.
	tableSize int
}

// Build tokenises every row (BOS + training prompt with "TARGET" + EOS, no truncation) and
// constrains every supervised position with the item trie of the official training script, the
// trie of the standalone tokenisations "TITLE" + EOS (items.StandaloneTrie). Errors name the
// row and its file line (index + 2).
func Build(tok *tokenize.Tokenizer, prompt tokenize.Prompt, items *tokenize.ItemSet, rows []tokenize.Row, opts Options) (*Set, error) {
	opts, err := opts.Validate()
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("training set: no rows")
	}
	trie := items.StandaloneTrie()
	enc := tok.NewEncoder()
	s := &Set{Examples: make([]Example, len(rows)), opts: opts}
	for i := range rows {
		ex := &s.Examples[i]
		if err := buildExample(ex, enc, prompt, items, trie, rows, i); err != nil {
			return nil, fmt.Errorf("training row %d (file line %d): %w", i, i+2, err)
		}
		s.maxLen = max(s.maxLen, len(ex.IDs))
		for _, a := range ex.Allowed {
			s.tableSize = max(s.tableSize, a[len(a)-1]+1)
		}
	}
	return s, nil
}

// buildExample tokenises and constrains row i as the official scripts do (their
// environment.yaml pins transformers 4.49.0 and accelerate 1.8.1):
//
//   - text and tokens (train_bear.py: generate_list_from_csv, tokenize,
//     generate_and_tokenize_prompt; train_msl.py and train_lml.py alike): tokenizer(prompt)
//     adds BOS, EOS is appended unless the ids end with it, and no cutoff is passed, so nothing
//     is truncated. With train_on_inputs 0 (the default) the labels are -100 over
//     user_prompt_len = len(tokenize(prompt with output "")) and the ids after it;
//   - the trie (train_bear.py, train_msl.py; train_lml.py has none): built from
//     tokenizer.encode('"TITLE"', add_special_tokens=False) + [eos] of every catalogue title;
//     response_idx_end is searched backwards for the ids of "### Response:\n", and the allowed
//     sets are trie.valid_tokens(input_ids[response_idx_end:])[:-1], asserted to number
//     len(input_ids) - user_prompt_len (Supervision.Start accepts a row only where both rules
//     agree). A missing separator prints "Response not found" and leaves a None in the dataset
//     (its filter tests the raw row, not the result);
//   - valid_tokens (Trie.py): the root's children, then the children after each token; a token
//     off the trie gives an empty list and the walk stays where it was. An empty set masks
//     every logit to -inf (a NaN loss in compute_loss), so such rows are refused here; on a
//     path in the trie no supervised set is empty (the last holds EOS).
func buildExample(ex *Example, enc *tokenize.Encoder, prompt tokenize.Prompt, items *tokenize.ItemSet, trie *tokenize.Trie, rows []tokenize.Row, i int) error {
	row := &rows[i]
	if !slices.Contains(items.Items(row.Target), row.TargetID) {
		return fmt.Errorf("target item %d %q is not in the catalogue", row.TargetID, row.Target)
	}
	ex.Row = i
	ex.Example = enc.TrainExample(prompt, row.History, row.Target)
	start, err := ex.Start()
	if err != nil {
		return err
	}
	path := ex.IDs[start:]
	ex.Allowed = make([][]int, len(path))
	ex.TargetIdx = make([]int32, len(path))
	node := trie.Root()
	for j, id := range path {
		ex.Allowed[j] = trie.Children(node)
		k, found := slices.BinarySearch(ex.Allowed[j], id)
		next, ok := trie.Next(node, id)
		if !found || !ok {
			return fmt.Errorf("target %q leaves the item trie at its response token %d (id %d)", row.Target, j, id)
		}
		ex.TargetIdx[j] = int32(k)
		node = next
	}
	if !slices.Contains(trie.ItemsAt(node), row.TargetID) {
		return fmt.Errorf("the tokens of target %q end at items %v of the trie, not at item %d", row.Target, trie.ItemsAt(node), row.TargetID)
	}
	return nil
}

// Options returns the validated options (Micro clamped to NormGroup).
func (s *Set) Options() Options { return s.opts }

// Len is the number of examples.
func (s *Set) Len() int { return len(s.Examples) }

// MaxLen is the length of the longest example (tokens).
func (s *Set) MaxLen() int { return s.maxLen }

// StepsPerEpoch is the number of optimizer steps of one epoch: the last may be short (see
// Options.FillLast).
func (s *Set) StepsPerEpoch() int { return (len(s.Examples) + s.opts.Batch - 1) / s.opts.Batch }

// Bucket returns the padded length of a micro-batch whose longest sequence has n tokens: n
// rounded up to a multiple of Options.Bucket.
func (s *Set) Bucket(n int) int { return (n + s.opts.Bucket - 1) / s.opts.Bucket * s.opts.Bucket }

// Buckets lists every padded length a micro-batch of this set can have.
func (s *Set) Buckets() []int {
	var out []int
	for t := s.opts.Bucket; t <= s.Bucket(s.maxLen); t += s.opts.Bucket {
		out = append(out, t)
	}
	return out
}
