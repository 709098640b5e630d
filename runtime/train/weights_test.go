package train

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/lossgrad"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
)

// TestWeightSourcesTrainAlike: five optimizer steps of BEAR on bf16 checkpoints of the `tiny`
// (hidden size 64) and `small` shapes give the same adapter, within 1e-6 relative, whether the
// frozen weights are mapped at bf16 and cast at use (the default), widened to float32 in
// memory, read in place at bf16, or converted to float32 once (the reference): bf16 → float32
// is exact.
func TestWeightSourcesTrainAlike(t *testing.T) {
	tok := tokenizer(t)
	for _, preset := range []string{"tiny", "small"} {
		p, _ := hf.LookupPreset(preset)
		model := filepath.Join(t.TempDir(), preset)
		if err := hf.WriteRandom(model, p.Config, hf.InitOptions{Seed: 7, DType: hf.BF16}); err != nil {
			t.Fatal(err)
		}
		var ref map[string][]float32
		for _, src := range []ortrun.WeightSource{ortrun.WeightsConverted, ortrun.WeightsMapped, ortrun.WeightsWidened, ortrun.WeightsInPlace} {
			out := filepath.Join(t.TempDir(), string(src))
			o := smallRun(model, tok, out, lossgrad.BEAR)
			o.MaxSteps, o.Epochs, o.CheckpointEvery = 5, 1, 0
			o.Runtime.Weights = src
			if _, err := Run(context.Background(), o); err != nil {
				t.Fatalf("%s, %s: %v", preset, src, err)
			}
			got := readAdapter(t, filepath.Join(out, finalDir))
			if ref == nil {
				ref = got
				continue
			}
			worst := 0.0
			for name, v := range got {
				worst = math.Max(worst, relDiff(v, ref[name]))
			}
			if !(worst <= 1e-6) || len(got) != len(ref) {
				t.Errorf("%s, %s: adapter differs from the float32 conversion's by %.3g relative (%d tensors against %d)", preset, src, worst, len(got), len(ref))
			}
			t.Logf("%s, %s: adapter within %.3g relative of the float32 conversion's", preset, src, worst)
		}
	}
}

func readAdapter(t *testing.T, dir string) map[string][]float32 {
	t.Helper()
	path := filepath.Join(dir, "adapter_model.safetensors")
	ts, _, err := hf.ReadSafetensorsHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]float32{}
	for name, tensor := range ts {
		if out[name], err = tensor.ReadFloat32(); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
	}
	return out
}

// relDiff is |x - y| / |y| (L2), 0 for two zero vectors, +Inf for different lengths.
func relDiff(x, y []float32) float64 {
	if len(x) != len(y) {
		return math.Inf(1)
	}
	var d, n float64
	for i := range x {
		d += (float64(x[i]) - float64(y[i])) * (float64(x[i]) - float64(y[i]))
		n += float64(y[i]) * float64(y[i])
	}
	if d == 0 {
		return 0
	}
	return math.Sqrt(d / n)
}
