package evaluate

import (
	"errors"
	"fmt"

	"github.com/bearrec/bear/decode"
	"github.com/bearrec/bear/onnx/hf"
)

// exactBudget is the memory bound of the exact search as a row count (nil rows: none).
type exactBudget struct {
	memory   int64 // bytes
	rowBytes int64 // the estimate of one row's bytes
	rows     int   // decode.PruneConfig.MaxRows (0: none)
}

// Row memory of the KV-cache scorer, measured with /usr/bin/time -v on Office prompts (about
// 380 tokens): 4.8 MB a row on the small preset, 1.3 to 1.6 MB on tiny. A row's cache is held
// about five times over (the cache, the next step's, ONNX Runtime's gathered and concatenated
// copies) and its vocabulary-wide logits about twice (the head's output, the log-sum-exp).
const (
	kvCopies     = 5
	logitsCopies = 2
)

// exactRowBytes estimates one row's bytes at cfg's shape for sequences of tokens tokens.
func exactRowBytes(cfg hf.Config, tokens int) int64 {
	kvPerToken := int64(2 * cfg.NumLayers * cfg.NumKVHeads * cfg.HeadDim * 4)
	return kvCopies*kvPerToken*int64(tokens) + logitsCopies*int64(cfg.VocabSize)*4
}

// newExactBudget turns memory (Options.ExactMemory) into a row bound for sequences of up to
// tokens tokens (the longest prompt and the longest title).
func newExactBudget(memory int64, cfg hf.Config, tokens int) *exactBudget {
	if memory == 0 {
		memory = DefaultExactMemory
	}
	b := &exactBudget{memory: memory, rowBytes: exactRowBytes(cfg, tokens)}
	if memory > 0 {
		b.rows = int(max(1, memory/b.rowBytes))
	}
	return b
}

// explain rewrites the exact search's row-bound error of the batch's users (userIDs by prompt)
// in terms of the memory bound and what to do; the result still unwraps to the
// *decode.RowBudgetError.
func (b *exactBudget) explain(err error, userIDs []int) error {
	var rbe *decode.RowBudgetError
	if b == nil || !errors.As(err, &rbe) {
		return err
	}
	return &budgetError{rbe, fmt.Sprintf("evaluate.Options.Pruning: the exact search for user %d needs %d open prefixes of depth %d in one model call, more than the %d rows "+
		"(about %.1f MB each at this model's shape and prompt length) that its memory bound of %.3g GiB allows: "+
		"raise evaluate.Options.ExactMemory where memory allows, prefer the constraint before the softmax (evaluate.Options.Mode), whose bound prunes far better, "+
		"or cap the prefixes with evaluate.Options.MaxFrontier (results no longer exact, counted as exact_search_capped); finished users are in the journal",
		userIDs[rbe.Prompt], rbe.Rows, rbe.Depth, rbe.MaxRows, float64(b.rowBytes)/1e6, float64(b.memory)/(1<<30))}
}

// budgetError is a *decode.RowBudgetError told in the terms of bear eval.
type budgetError struct {
	*decode.RowBudgetError
	msg string
}

func (e *budgetError) Error() string { return e.msg }
func (e *budgetError) Unwrap() error { return e.RowBudgetError }
