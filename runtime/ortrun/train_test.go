package ortrun

import (
	"github.com/bearrec/bear/onnx/traingraph"
	"maps"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/onnxpb"
	"github.com/bearrec/bear/onnx/peft"
	"google.golang.org/protobuf/proto"
)

// tinyCheckpoint writes the `tiny` preset (vocab 128 256) stored as float32, with weights large
// enough that every layer matters, and norm weights away from 1.
func tinyCheckpoint(t testing.TB) string { return tinyCheckpointAs(t, hf.F32) }

// tinyCheckpointAs is tinyCheckpoint stored as dtype.
func tinyCheckpointAs(t testing.TB, dtype hf.DType) string {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 7, DType: dtype, Std: 0.08, NormJitter: 0.1}); err != nil {
		t.Fatal(err)
	}
	return dir
}

var qvLoRA = &llama.LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}

func trainBatch() (TokenBatch, []int64) {
	b := NewTokenBatch([][]int64{{128000, 791, 3938, 315, 9822}, {128000, 40, 1093, 279, 5030, 13, 128001}})
	var index []int64
	for i, n := range b.Lengths {
		for t := 1; t < n; t++ {
			index = append(index, b.Index(i, t))
		}
	}
	return b, index
}

func randomize(params map[string][]float64, rng *rand.Rand, std float64) {
	for _, name := range slices.Sorted(maps.Keys(params)) {
		p := params[name]
		for i := range p {
			p[i] = std * rng.NormFloat64()
		}
	}
}

// directionalCheck compares Σ grad·d with the central difference of L = <logits, w> along d.
func directionalCheck(t *testing.T, tr *Trainer[float64], b TokenBatch, index []int64, seed uint64) (float64, map[string][]float64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 3))
	logits, err := tr.Forward(GraphInputs{Batch: b, Index: index})
	if err != nil {
		t.Fatal(err)
	}
	w := make([]float64, len(logits))
	for i := range w {
		w[i] = rng.NormFloat64()
	}
	grads, err := tr.Backward(w)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{}
	dir := map[string][]float64{}
	analytic := 0.0
	for _, name := range slices.Sorted(maps.Keys(grads)) {
		g := grads[name]
		got[name] = append([]float64(nil), g...)
		d := make([]float64, len(g))
		for i := range d {
			d[i] = rng.NormFloat64()
			analytic += g[i] * d[i]
		}
		dir[name] = d
	}
	loss := func(eps float64) float64 {
		for name, d := range dir {
			p := tr.Params[name]
			for i := range p {
				p[i] += eps * d[i]
			}
		}
		l, err := tr.Forward(GraphInputs{Batch: b, Index: index})
		if err != nil {
			t.Fatal(err)
		}
		for name, d := range dir {
			p := tr.Params[name]
			for i := range p {
				p[i] -= eps * d[i]
			}
		}
		s := 0.0
		for i, v := range l {
			s += v * w[i]
		}
		return s
	}
	const eps = 1e-5
	fd := (loss(eps) - loss(-eps)) / (2 * eps)
	return math.Abs(analytic-fd) / math.Abs(fd), got
}

// TestWholeModelGradients: float64, `tiny` preset, non-zero LoRA on q_proj and v_proj; the
// directional derivative of <logits, w> matches central differences (relative error ≤ 1e-6;
// eps 1e-5 gives truncation ~1e-10 and rounding ~1e-9 here) under both policies, and the two
// policies give the same gradients (≤ 1e-6 relative; they differ only in evaluation order).
func TestWholeModelGradients(t *testing.T) {
	dir := tinyCheckpoint(t)
	b, index := trainBatch()
	grads := map[autodiff.Policy]map[string][]float64{}
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		t.Run("lora/"+policy.String(), func(t *testing.T) {
			tr, err := NewTrainer[float64](mustOpen(t, dir), TrainOptions{Policy: policy, Model: ModelOptions{LoRA: qvLoRA, CacheDir: t.TempDir(), SessionOptions: SessionOptions{Threads: 2}}})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			randomize(tr.Params, rand.New(rand.NewPCG(1, 2)), 0.2)
			e, g := directionalCheck(t, tr, b, index, 5)
			if e > 1e-6 {
				t.Errorf("directional derivative vs central difference: relative error %.3g, want ≤ 1e-6", e)
			}
			t.Logf("relative error %.3g", e)
			grads[policy] = g
		})
	}
	if len(grads) == 2 {
		worst := 0.0
		for name, g := range grads[autodiff.Stash] {
			h := grads[autodiff.Recompute][name]
			scale := 0.0
			for i := range g {
				scale = math.Max(scale, math.Abs(g[i]))
			}
			for i := range g {
				worst = math.Max(worst, math.Abs(g[i]-h[i])/scale)
			}
		}
		if worst > 1e-6 {
			t.Errorf("stash and recompute gradients differ by %.3g relative, want ≤ 1e-6", worst)
		}
		t.Logf("stash vs recompute: max relative difference %.3g", worst)
	}
}

// TestWholeModelGradientsFull: --train full comes from the same machinery: every weight,
// the tied embedding included, gets a gradient that matches central differences.
func TestWholeModelGradientsFull(t *testing.T) {
	if testing.Short() {
		t.Skip("float64 full-model check takes a few seconds")
	}
	dir := tinyCheckpoint(t)
	b, index := trainBatch()
	tr, err := NewTrainer[float64](mustOpen(t, dir), TrainOptions{Full: true, Policy: autodiff.Stash, Model: ModelOptions{SessionOptions: SessionOptions{Threads: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	e, g := directionalCheck(t, tr, b, index, 9)
	if e > 1e-6 {
		t.Errorf("directional derivative vs central difference: relative error %.3g, want ≤ 1e-6", e)
	}
	if len(g) != len(tr.Config.ExpectedWeights()) {
		t.Errorf("%d gradients, want one per weight (%d)", len(g), len(tr.Config.ExpectedWeights()))
	}
	t.Logf("relative error %.3g over %d tensors", e, len(g))
}

// TestBackwardIsPruned: with LoRA only, the backward graph computes no gradient of a frozen
// weight (no value of the embedding's or a projection's shape); with full training it does.
func TestBackwardIsPruned(t *testing.T) {
	dir := tinyCheckpoint(t)
	weightSized := func(tg *traingraph.Graphs) int {
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(tg.Backward, &m); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, vi := range append(m.Graph.ValueInfo, m.Graph.Output...) {
			d := vi.GetType().GetTensorType().GetShape().GetDim()
			if len(d) == 2 && d[1].GetDimValue() == 64 && (d[0].GetDimValue() == 128256 || d[0].GetDimValue() == 128) {
				n++ // [vocab, hidden] embedding or [intermediate, hidden] gate/up gradients
			}
		}
		return n
	}
	lora, err := BuildTrainGraphs(mustOpen(t, dir), TrainOptions{Model: ModelOptions{LoRA: qvLoRA, CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	full, err := BuildTrainGraphs(mustOpen(t, dir), TrainOptions{Full: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := weightSized(lora); n != 0 {
		t.Errorf("LoRA backward has %d weight-sized values (frozen-weight gradients), want 0", n)
	}
	if n := weightSized(full); n == 0 {
		t.Error("full backward has no weight gradients")
	}
	if len(lora.Manifest.Trainable) != 4*2 {
		t.Errorf("%d LoRA gradients, want 8 (2 layers × q,v × A,B)", len(lora.Manifest.Trainable))
	}
}

// TestLoRAGradientsMatchPyTorch: LoRA gradients of <logits, cotangent> from ORT in float32 match
// PyTorch autograd through the reference model (float64) within 1e-4 relative to each tensor's
// largest entry (the bound; float32 rounding gives ~1e-6 here).
func TestLoRAGradientsMatchPyTorch(t *testing.T) {
	c := firstCase(t, "lora_q_v")
	cot, want := c.Cotangent, c.LoRAGrads
	if want == nil {
		t.Fatal("no LoRA gradients in the goldens: run make goldens")
	}
	dir := writeCase(t, c, "")
	cfg, _ := hf.ReadConfig(dir)
	ad, err := peft.ReadAdapter(filepath.Join("../../testdata/forward", c.LoRA.Dir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, policy := range []autodiff.Policy{autodiff.Stash, autodiff.Recompute} {
		tr, err := NewTrainer[float32](mustOpen(t, dir), TrainOptions{Policy: policy, Model: ModelOptions{LoRA: &ad.Spec, CacheDir: t.TempDir(), SessionOptions: SessionOptions{Threads: 2}}})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		if err := tr.SetAdapter(ad); err != nil {
			t.Fatal(err)
		}
		b, index := caseBatch(c)
		if _, err := tr.Forward(GraphInputs{Batch: b, Index: index}); err != nil {
			t.Fatal(err)
		}
		var flat []float32
		for _, row := range cot {
			for _, v := range row {
				flat = append(flat, float32(v))
			}
		}
		grads, err := tr.Backward(flat)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for _, in := range tr.Manifest.LoRAInputs {
			ref := want[peft.Key(in.Layer, in.Module, in.Which)]
			if ref == nil {
				t.Fatalf("golden has no gradient for %s", peft.Key(in.Layer, in.Module, in.Which))
			}
			got := grads[in.Name]
			scale, diff := 0.0, 0.0
			for r, row := range ref {
				for k, v := range row {
					scale = math.Max(scale, math.Abs(v))
					diff = math.Max(diff, math.Abs(float64(got[r*in.Cols+k])-v))
				}
			}
			worst = math.Max(worst, diff/scale)
		}
		if worst > 1e-4 {
			t.Errorf("%s: LoRA gradients differ from PyTorch by %.3g relative, want ≤ 1e-4", policy, worst)
		}
		t.Logf("%s: max relative difference from PyTorch autograd %.3g", policy, worst)
	}
}

// TestArtifactsRoundTrip: graphs written by WriteArtifacts and loaded back give the same
// gradients as the graphs built in memory.
func TestArtifactsRoundTrip(t *testing.T) {
	dir := tinyCheckpoint(t)
	b, index := trainBatch()
	o := TrainOptions{Policy: autodiff.Recompute, Model: ModelOptions{DType: hf.F64, LoRA: qvLoRA, CacheDir: t.TempDir(), SessionOptions: SessionOptions{Threads: 2}}}
	tg, err := BuildTrainGraphs(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	art := t.TempDir()
	if err := traingraph.WriteArtifacts(art, tg); err != nil {
		t.Fatal(err)
	}
	loaded, err := loadArtifacts[float64](art, o.Model.SessionOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer loaded.Close()
	built, err := NewTrainer[float64](mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	defer built.Close()
	if loaded.Manifest.CheckpointSHA256["model.safetensors"] == "" {
		t.Error("manifest has no checkpoint sha256")
	}
	var gs [2]map[string][]float64
	for i, tr := range []*Trainer[float64]{loaded, built} {
		randomize(tr.Params, rand.New(rand.NewPCG(4, 4)), 0.1)
		logits, err := tr.Forward(GraphInputs{Batch: b, Index: index})
		if err != nil {
			t.Fatal(err)
		}
		w := make([]float64, len(logits))
		for j := range w {
			w[j] = math.Sin(float64(j))
		}
		g, err := tr.Backward(w)
		if err != nil {
			t.Fatal(err)
		}
		gs[i] = g
	}
	for name, g := range gs[0] {
		for j := range g {
			if g[j] != gs[1][name][j] {
				t.Fatalf("%s[%d]: loaded artifacts %g, in-memory graphs %g", name, j, g[j], gs[1][name][j])
			}
		}
	}
	if _, err := loadArtifacts[float32](art, o.Model.SessionOptions); err == nil || !strings.Contains(err.Error(), "F64") {
		t.Errorf("float32 trainer on float64 artifacts: %v", err)
	}
}
