package ortrun

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/bearrec/bear/tokenize"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
)

// ModelOptions configure Load.
type ModelOptions struct {
	SessionOptions                 // device, threads, shapes
	DType          hf.DType        // compute dtype: F32 (default) or F64 (gradient checks)
	LoRA           *llama.LoRASpec // LoRA inputs of the graph; nil for the base model alone
	Logits         llama.LogitsMode
	// Weights says where the graphs read the frozen base weights from (WeightsAuto: mapped on
	// the CPU, in place on CUDA).
	Weights WeightSource
	// CacheDir receives weights converted to the compute dtype (WeightsConverted, or in place
	// when the checkpoint's files lie in several folders).
	// Empty: the user cache folder, bear/weights/<hash of the checkpoint path>.
	CacheDir string
}

// Model is a forward graph of a checkpoint loaded into an ONNX Runtime session. The base weights
// are the process's mapping of the checkpoint (or ONNX Runtime's initializers, ModelOptions.Weights);
// Go holds the LoRA matrices, which it may change between runs.
type Model struct {
	Config  hf.Config
	Dir     string
	Options ModelOptions
	inputs  []string
	lora    []llama.LoRAInputInfo
	lora32  map[string][]float32
	lora64  map[string][]float64
	sess    *Session
	weights *weightPlan
}

// Load exports the checkpoint's forward graph and creates the session.
func Load(ck *hf.Checkpoint, o ModelOptions) (*Model, error) {
	if o.DType == "" {
		o.DType = hf.F32
	}
	w, err := planWeights(ck, o, o.DType, false)
	if err != nil {
		return nil, err
	}
	f, err := llama.ExportForward(ck, w.binding, w.exportOptions(llama.Options{DType: o.DType, LoRA: o.LoRA, Logits: o.Logits}))
	if err != nil {
		w.release()
		return nil, err
	}
	sess, err := w.newSession(f.Model, w.externalDir(), f.Inputs, f.Outputs, o.SessionOptions, o.DType)
	if err != nil {
		w.release()
		return nil, fmt.Errorf("%s: %w", ck.Dir, err)
	}
	m := &Model{Config: ck.Config, Dir: ck.Dir, Options: o, inputs: f.Inputs, lora: f.LoRAInputs, sess: sess, weights: w}
	// Zero adapters until told otherwise: B = 0 makes the LoRA branch vanish, as PEFT initialises it.
	m.lora32, m.lora64 = map[string][]float32{}, map[string][]float64{}
	for _, in := range m.lora {
		if o.DType == hf.F64 {
			m.lora64[in.Name] = make([]float64, in.Rows*in.Cols)
		} else {
			m.lora32[in.Name] = make([]float32, in.Rows*in.Cols)
		}
	}
	return m, nil
}

// defaultCacheDir is the cache folder of a checkpoint when none is given: one folder per
// checkpoint path under the user cache folder, so that entries of a checkpoint are found together.
// Entries are content-addressed (llama.BindWeights), so the folder name is only a grouping.
func defaultCacheDir(dir string) (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache folder for converted weights (%w): %s", err, cacheRemedy)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(base, "bear", "weights", hex.EncodeToString(sum[:8])), nil
}

// cacheRemedy says how to put the converted-weight cache somewhere writable.
const cacheRemedy = "set ortrun.ModelOptions.CacheDir to a writable folder, or set $XDG_CACHE_HOME (the default is $XDG_CACHE_HOME/bear/weights, else ~/.cache/bear/weights)"

// Close releases the session and the weights.
func (m *Model) Close() error {
	err := m.sess.Close()
	m.weights.release()
	return err
}

// SetAdapter copies an adapter's matrices into the model; its spec must match the graph's.
func (m *Model) SetAdapter(a *peft.Adapter) error {
	if m.Options.DType == hf.F64 {
		return copyAdapter(m.lora64, m.lora, m.Options.LoRA, a)
	}
	return copyAdapter(m.lora32, m.lora, m.Options.LoRA, a)
}

// TokenBatch is a left-padded batch of token sequences in the graph's input layout.
type TokenBatch struct {
	B, T           int
	IDs, Mask, Pos []int64 // [B·T] each
	Lengths        []int
}

// NewTokenBatch left-pads sequences to the longest. Position ids count real tokens from 0 and are 1
// on padding, as transformers' generate computes them from the attention mask.
func NewTokenBatch[I int | int64](seqs [][]I) TokenBatch {
	b := TokenBatch{B: len(seqs)}
	for _, s := range seqs {
		b.T = max(b.T, len(s))
		b.Lengths = append(b.Lengths, len(s))
	}
	n := b.B * b.T
	b.IDs, b.Mask, b.Pos = make([]int64, n), make([]int64, n), make([]int64, n)
	for i, s := range seqs {
		pad := b.T - len(s)
		for t := 0; t < b.T; t++ {
			k := i*b.T + t
			if t < pad {
				b.IDs[k], b.Pos[k] = tokenize.PadID, 1
				continue
			}
			b.IDs[k], b.Mask[k], b.Pos[k] = int64(s[t-pad]), 1, int64(t-pad)
		}
	}
	return b
}

// Index is the flat logit index of token t (counted from the sequence's first real token) of
// sequence i.
func (b TokenBatch) Index(i, t int) int64 { return int64(i*b.T + b.T - b.Lengths[i] + t) }

func (m *Model) check(b TokenBatch, index []int64, cands []int64, c int) error {
	if b.B == 0 || b.T == 0 {
		return fmt.Errorf("empty batch")
	}
	if len(b.IDs) != b.B*b.T || len(b.Mask) != b.B*b.T || len(b.Pos) != b.B*b.T {
		return fmt.Errorf("batch arrays have %d/%d/%d elements, want %d", len(b.IDs), len(b.Mask), len(b.Pos), b.B*b.T)
	}
	v := int64(m.Config.VocabSize)
	for k, id := range b.IDs {
		if id < 0 || id >= v {
			return fmt.Errorf("token id %d at sequence %d, slot %d is outside the vocabulary [0, %d)", id, k/b.T, k%b.T, v)
		}
	}
	for j, ix := range index {
		if ix < 0 || ix >= int64(b.B*b.T) {
			return fmt.Errorf("logit index %d (entry %d) is outside the batch's %d×%d slots", ix, j, b.B, b.T)
		}
	}
	if m.Options.Logits == llama.LogitsCandidates {
		if c <= 0 || len(cands) != len(index)*c {
			return fmt.Errorf("candidates: %d ids for %d positions × %d", len(cands), len(index), c)
		}
		for j, id := range cands {
			if id < 0 || id >= v {
				return fmt.Errorf("candidate %d (position %d) = %d is outside the vocabulary", j%c, j/c, id)
			}
		}
	}
	return nil
}

// Logits runs the forward pass and returns the logits at the flat positions index: [n, vocab]
// for a full-vocabulary graph, [n, c] for a candidates graph (cands is [n, c], row-major).
func (m *Model) Logits(b TokenBatch, index []int64, cands []int64, c int) ([]float32, error) {
	if m.Options.DType != hf.F32 {
		return nil, fmt.Errorf("Logits needs an F32 model; this one computes in %s", m.Options.DType)
	}
	return run(m, b, index, cands, c, m.lora32)
}

// Logits64 is Logits for an F64 model.
func (m *Model) Logits64(b TokenBatch, index []int64, cands []int64, c int) ([]float64, error) {
	if m.Options.DType != hf.F64 {
		return nil, fmt.Errorf("Logits64 needs an F64 model; this one computes in %s", m.Options.DType)
	}
	return run(m, b, index, cands, c, m.lora64)
}

func run[T float32 | float64](m *Model, b TokenBatch, index []int64, cands []int64, c int, lora map[string][]T) ([]T, error) {
	if err := m.check(b, index, cands, c); err != nil {
		return nil, err
	}
	gi := GraphInputs{Batch: b, Index: index, Candidates: cands, C: c}
	in := gi.tensors(false)
	for _, l := range m.lora {
		in[l.Name] = Tensor{[]int64{int64(l.Rows), int64(l.Cols)}, lora[l.Name]}
	}
	n, width := int64(len(index)), int64(m.Config.VocabSize)
	if m.Options.Logits == llama.LogitsCandidates {
		width = int64(c)
	}
	out := make([]T, n*width)
	if err := m.sess.RunNamed(in, map[string]Tensor{llama.Logits: {[]int64{n, width}, out}}); err != nil {
		return nil, fmt.Errorf("forward %s: %w", m.Dir, err)
	}
	return out, nil
}

// GraphInputs are the per-run inputs of a forward or training graph besides its LoRA matrices
// (and, for full training, its weights).
type GraphInputs struct {
	Batch TokenBatch
	Index []int64 // flat logit slots b·T + t [n]
	// Candidates [n, C] (LogitsCandidates): the token ids whose logits each position returns.
	Candidates []int64
	C          int
	// Subset [u] (LogitsSubset): the token ids whose logits every position returns.
	Subset []int64
	// DropoutSeed keys the LoRA dropout masks of this run (graphs with LoRA dropout).
	DropoutSeed int64
}

// tensors are the inputs as graph tensors: ids, mask and positions [B, T], the logit index [n],
// and whichever of candidates, vocab_subset and dropout_seed are given.
func (g *GraphInputs) tensors(dropout bool) map[string]Tensor {
	b := g.Batch
	bt := []int64{int64(b.B), int64(b.T)}
	in := map[string]Tensor{
		llama.InputIDs: {bt, b.IDs}, llama.AttentionMask: {bt, b.Mask}, llama.PositionIDs: {bt, b.Pos},
		llama.LogitIndex: {[]int64{int64(len(g.Index))}, g.Index},
	}
	if g.Candidates != nil {
		in[llama.Candidates] = Tensor{[]int64{int64(len(g.Index)), int64(g.C)}, g.Candidates}
	}
	if g.Subset != nil {
		in[llama.VocabSubset] = Tensor{[]int64{int64(len(g.Subset))}, g.Subset}
	}
	if dropout {
		in[llama.DropoutSeed] = Tensor{[]int64{1}, []int64{g.DropoutSeed}}
	}
	return in
}

// bindWeights locates the checkpoint's weights in dtype dt, converting them into cacheDir (the
// user cache folder when empty) when they are stored in another dtype.
func bindWeights(ck *hf.Checkpoint, dt hf.DType, cacheDir string) (*llama.WeightBinding, error) {
	if cacheDir == "" {
		var err error
		if cacheDir, err = defaultCacheDir(ck.Dir); err != nil {
			return nil, err
		}
	}
	b, err := llama.BindWeights(ck, dt, cacheDir)
	var ce *llama.CacheDirError
	if errors.As(err, &ce) {
		return nil, fmt.Errorf("%w: %s", err, cacheRemedy)
	}
	return b, err
}
