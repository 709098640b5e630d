package train

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bearrec/bear/internal/atomicfs"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/peft"
	"github.com/bearrec/bear/runtime/evaluate"
	"github.com/bearrec/bear/runtime/ortrun"
)

// Output folders of a run: one per epoch (epoch-1, epoch-2, ...) and the final one.
const finalDir = "final"

// epochDir is the folder of the adapter (or, with --train full, the checkpoint) after epoch e.
func epochDir(out string, e int) string { return filepath.Join(out, fmt.Sprintf("epoch-%d", e)) }

// writeModel writes what the run trains into dir, atomically: a PEFT adapter, or with --train
// full a whole checkpoint in the Hugging Face layout that `bear eval --model` takes, and the
// training record (the loss) beside it.
func writeModel(dir string, o *Options, tr *ortrun.Trainer[float32]) error {
	return atomicfs.WriteDir(dir, atomicfs.Replace, func(tmp string) error {
		if o.Full {
			if err := writeCheckpoint(tmp, o.Model, tr); err != nil {
				return err
			}
		}
		if o.LoRA != nil {
			if err := writeAdapter(tmp, o, tr); err != nil {
				return err
			}
		}
		// what `bear eval` needs to evaluate the model as the official inference would
		return evaluate.WriteTrainingRecord(tmp, evaluate.TrainingRecord{Loss: o.Loss.Kind.String()})
	})
}

// writeAdapter writes the LoRA matrices in PEFT's layout.
func writeAdapter(dir string, o *Options, tr *ortrun.Trainer[float32]) error {
	a := &peft.Adapter{Spec: *o.LoRA, Dropout: o.LoRADropout, Weights: map[string][]float32{}}
	for _, in := range tr.Manifest.LoRAInputs {
		a.Weights[in.Name] = tr.Params[in.Name]
	}
	base, err := filepath.Abs(o.Model)
	if err != nil {
		return err
	}
	return peft.WriteAdapter(dir, a, tr.Config, base)
}

// writeCheckpoint writes every trained weight as float32 with the base checkpoint's config and
// tokenizer files.
func writeCheckpoint(dir, base string, tr *ortrun.Trainer[float32]) error {
	cfg := tr.Config
	cfg.DType = hf.F32
	cj, err := cfg.JSON()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return err
	}
	if err := hf.CopyAuxFiles(base, dir); err != nil {
		return err
	}
	var ts []hf.WriteTensor
	for _, spec := range cfg.ExpectedWeights() {
		vals := tr.Params[spec.Name]
		ts = append(ts, hf.WriteTensor{Name: spec.Name, DType: hf.F32, Shape: spec.Shape, Fill: func(w io.Writer) error {
			return hf.EncodeFloat32(w, hf.F32, vals)
		}})
	}
	return hf.WriteWeights(dir, ts, 0)
}

// claimOut makes the run folder ready before any work: it must not be, hold or lie inside an
// input (a run writing into its model folder would change the model's identity and break every
// other run from it), it is created and locked (a second run into it is refused while this one
// lives, which also shows that it can be written), and leftovers of writes a kill interrupted
// are removed.
func claimOut(o *Options, d *data) (*atomicfs.DirLock, error) {
	return atomicfs.ClaimOutput(opt("Out"), o.Out, []string{o.Model, o.Data, d.Path, o.Tokenizer}, o.Log)
}
