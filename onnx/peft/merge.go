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
// W' = W + (alpha/r)·B·A for every targeted module, in float32 arithmetic, stored as dtype
// (the checkpoint's own when empty). Other files of the checkpoint folder (tokenizer,
// generation config) are copied. Tensors are written one at a time. dst must not be, hold or lie
// inside src: the merge reads src while it writes. It writes into dst as it stands; a command
// builds dst with atomicfs.WriteDir so that a failure never leaves a partial folder.
func MergeAdapter(src, dst string, a *Adapter, dtype hf.DType) error {
	if err := atomicfs.CheckDisjoint("merge output", dst, src); err != nil {
		return err
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
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	scale := float32(a.Spec.Scaling())
	delta := map[string][2]string{} // weight name → (A input, B input)
	rows := map[string][2]int{}
	for _, in := range a.Spec.Inputs(ck.Config) {
		w := hf.LayerWeight(in.Layer, hf.ModulePath[in.Module])
		d := delta[w]
		if in.Which == "A" {
			d[0] = in.Name
		} else {
			d[1] = in.Name
		}
		delta[w] = d
		o, i := ck.Config.ModuleShape(in.Module)
		rows[w] = [2]int{o, i}
	}
	var ts []hf.WriteTensor
	for _, spec := range ck.Config.ExpectedWeights() {
		info := ck.Weights[spec.Name]
		name := spec.Name
		d, merged := delta[name]
		ts = append(ts, hf.WriteTensor{Name: name, DType: dtype, Shape: spec.Shape, Fill: func(w io.Writer) error {
			vals, err := info.ReadFloat32()
			if err != nil {
				return err
			}
			if merged {
				A, B := a.Weights[d[0]], a.Weights[d[1]]
				out, in, r := rows[name][0], rows[name][1], a.Spec.Rank
				for o := 0; o < out; o++ {
					row := vals[o*in : (o+1)*in]
					for k := 0; k < r; k++ {
						bk := scale * B[o*r+k]
						ak := A[k*in : (k+1)*in]
						for j := range row {
							row[j] += bk * ak[j]
						}
					}
				}
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
