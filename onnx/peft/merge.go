package peft

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
)

// MergeAdapter writes a checkpoint whose projection weights include the adapter:
// W' = W + scaling·B·A for every targeted module, scaling its alpha/r (alpha/sqrt(r) with
// use_rslora) with the module's own r and alpha (rank_pattern, alpha_pattern), in float32
// arithmetic, stored as dtype (the checkpoint's own when empty). Other files of the checkpoint
// folder (tokenizer, generation config) are copied. Tensors are written one at a time. dst must
// not be, hold or lie inside src: the merge reads src while it writes. It writes into dst as it
// stands; a command builds dst with atomicfs.WriteDir so that a failure never leaves a partial
// folder.
func MergeAdapter(src, dst string, a *Adapter, dtype hf.DType) error {
	if err := atomicfs.CheckDisjoint("merge output", dst, src); err != nil {
		return err
	}
	if err := a.Spec.Validate(); err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	ck, err := hf.Open(src)
	if err != nil {
		return err
	}
	if dtype == "" {
		dtype = ck.StorageDType()
		if dtype == "" {
			dtype = hf.F32
		}
	}
	if dtype != hf.F32 && dtype != hf.BF16 {
		return fmt.Errorf("merge: dtype %s, want F32 or BF16", dtype)
	}
	terms, err := mergeTerms(a, ck.Config)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var ts []hf.WriteTensor
	for _, spec := range ck.Config.ExpectedWeights() {
		info := ck.Weights[spec.Name]
		term, merged := terms[spec.Name]
		ts = append(ts, hf.WriteTensor{Name: spec.Name, DType: dtype, Shape: spec.Shape, Fill: func(w io.Writer) error {
			vals, err := info.ReadFloat32()
			if err != nil {
				return err
			}
			if merged {
				term.addTo(vals)
			}
			return hf.EncodeFloat32(w, dtype, vals)
		}})
	}
	cfg := ck.Config
	cfg.DType = dtype
	cj, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := atomicfs.WriteBytes(filepath.Join(dst, "config.json"), append(cj, '\n')); err != nil {
		return err
	}
	if err := hf.CopyAuxFiles(src, dst); err != nil {
		return err
	}
	return hf.WriteWeights(dst, ts, 0)
}

// mergeTerm is one module's update scale·B·A: A [r, in], B [out, r].
type mergeTerm struct {
	A, B       []float32
	out, in, r int
	scale      float32
}

// mergeTerms gives each adapted module's weight (HF name) its update, with the module's own rank
// and scaling, checking that the adapter holds every matrix at its size.
func mergeTerms(a *Adapter, cfg hf.Config) (map[string]mergeTerm, error) {
	terms := map[string]mergeTerm{}
	for _, in := range a.Spec.Inputs(cfg) {
		vals := a.Weights[in.Name]
		if len(vals) != in.Rows*in.Cols {
			return nil, fmt.Errorf("merge: adapter matrix %s has %d values, want %d×%d", in.Name, len(vals), in.Rows, in.Cols)
		}
		w := hf.LayerWeight(in.Layer, hf.ModulePath[in.Module])
		t := terms[w]
		t.out, t.in = cfg.ModuleShape(in.Module)
		t.r = a.Spec.ModuleRank(in.Layer, in.Module)
		t.scale = float32(a.Spec.ModuleScaling(in.Layer, in.Module))
		if in.Which == "A" {
			t.A = vals
		} else {
			t.B = vals
		}
		terms[w] = t
	}
	return terms, nil
}

// addTo adds scale·B·A to the row-major [out, in] weight w.
func (t mergeTerm) addTo(w []float32) {
	for o := 0; o < t.out; o++ {
		row := w[o*t.in : (o+1)*t.in]
		for k := 0; k < t.r; k++ {
			bk := t.scale * t.B[o*t.r+k]
			ak := t.A[k*t.in : (k+1)*t.in]
			for j := range row {
				row[j] += bk * ak[j]
			}
		}
	}
}
