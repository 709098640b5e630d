package ortrun

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/forwardcases"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
)

func firstCase(t *testing.T, name string) goldenCase {
	c, err := forwardcases.Find(loadGoldens(t), name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func logits(t *testing.T, m *Model, b TokenBatch, index []int64) []float32 {
	t.Helper()
	out, err := m.Logits(b, index, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBF16MatchesFP32Copy: a bf16 checkpoint (mapped and cast to float32 at use) and an fp32
// checkpoint holding the same values give identical logits.
func TestBF16MatchesFP32Copy(t *testing.T) {
	c := firstCase(t, "left_padded_batch")
	bf := writeCase(t, c, hf.BF16)
	ck, err := hf.Open(bf)
	if err != nil {
		t.Fatal(err)
	}
	fp := t.TempDir()
	data, _ := os.ReadFile(filepath.Join(bf, "config.json"))
	os.WriteFile(filepath.Join(fp, "config.json"), []byte(strings.Replace(string(data), `"bfloat16"`, `"float32"`, 1)), 0o644)
	var ts []hf.WriteTensor
	for _, spec := range ck.Config.ExpectedWeights() {
		v, err := ck.Weights[spec.Name].ReadFloat32()
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, hf.Float32Tensor(spec.Name, hf.F32, spec.Shape, v))
	}
	if err := hf.WriteWeights(fp, ts, 0); err != nil {
		t.Fatal(err)
	}
	b, index := caseBatch(c)
	mb := loadCase(t, c, bf, hf.F32, llama.LogitsFullVocab)
	mf := loadCase(t, c, fp, hf.F32, llama.LogitsFullVocab)
	lb, lf := logits(t, mb, b, index), logits(t, mf, b, index)
	for i := range lb {
		if lb[i] != lf[i] {
			t.Fatalf("logit %d: bf16 checkpoint %g, fp32 copy %g", i, lb[i], lf[i])
		}
	}
}

// TestShardedMatchesSingleFile: shards referenced in place give the same logits as one file.
func TestShardedMatchesSingleFile(t *testing.T) {
	c := firstCase(t, "tied_gqa_llama3_rope")
	cfg, _ := hf.ParseConfig(c.Config)
	dir := t.TempDir()
	if err := hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: c.Init.Seed, Std: c.Init.Std, NormJitter: c.Init.NormJitter, DType: hf.F32, ShardBytes: 40000}); err != nil {
		t.Fatal(err)
	}
	single := writeCase(t, c, hf.F32)
	b, index := caseBatch(c)
	ms := loadCase(t, c, dir, hf.F32, llama.LogitsFullVocab)
	m1 := loadCase(t, c, single, hf.F32, llama.LogitsFullVocab)
	ls, l1 := logits(t, ms, b, index), logits(t, m1, b, index)
	for i := range ls {
		if ls[i] != l1[i] {
			t.Fatalf("logit %d: sharded %g, single file %g", i, ls[i], l1[i])
		}
	}
}

// TestCandidateLogits: the candidates graph returns exactly the full-vocabulary logits of the
// requested ids, per position, duplicates included.
func TestCandidateLogits(t *testing.T) {
	c := firstCase(t, "lora_q_v")
	dir := writeCase(t, c, "")
	b, index := caseBatch(c)
	full := logits(t, loadCase(t, c, dir, hf.F32, llama.LogitsFullVocab), b, index)
	mc := loadCase(t, c, dir, hf.F32, llama.LogitsCandidates)
	const k = 5
	cands := make([]int64, len(index)*k)
	for i := range cands {
		cands[i] = int64((i*37 + i/k*11) % 384)
	}
	cands[3] = cands[2] // a duplicate
	got, err := mc.Logits(b, index, cands, k)
	if err != nil {
		t.Fatal(err)
	}
	for i := range index {
		for j := 0; j < k; j++ {
			if want := full[i*384+int(cands[i*k+j])]; got[i*k+j] != want {
				t.Fatalf("position %d candidate %d (id %d): %g, full-vocab logit %g", i, j, cands[i*k+j], got[i*k+j], want)
			}
		}
	}
}

// TestConversionIsReused: a bf16 checkpoint is converted once; a second load reuses the file.
func TestConversionIsReused(t *testing.T) {
	c := firstCase(t, "tied_gqa_llama3_rope")
	dir := writeCase(t, c, hf.BF16)
	cache := t.TempDir()
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := llama.BindWeights(ck, hf.F32, cache)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(cache, b1.Refs[hf.EmbedName].Location)
	st1, err := os.Stat(bin)
	if err != nil || !b1.Converted {
		t.Fatalf("no conversion written: %v", err)
	}
	b2, err := llama.BindWeights(ck, hf.F32, cache)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(bin)
	if !st2.ModTime().Equal(st1.ModTime()) || len(b2.Refs) != len(b1.Refs) {
		t.Fatal("second BindWeights rewrote the conversion")
	}
	// An fp32 checkpoint is referenced in place: nothing is written.
	f32 := writeCase(t, c, hf.F32)
	ck32, _ := hf.Open(f32)
	b3, err := llama.BindWeights(ck32, hf.F32, "")
	if err != nil || b3.Converted {
		t.Fatalf("fp32 checkpoint: converted=%v err=%v, want in-place references", b3 != nil && b3.Converted, err)
	}
}

func TestInputErrors(t *testing.T) {
	c := firstCase(t, "untied_mha_plain_rope")
	m := loadCase(t, c, writeCase(t, c, ""), hf.F32, llama.LogitsFullVocab)
	b := NewTokenBatch([][]int64{{1, 2, 320}})
	if _, err := m.Logits(b, []int64{0}, nil, 0); err == nil || !strings.Contains(err.Error(), "token id 320") {
		t.Errorf("out-of-vocabulary id: %v", err)
	}
	b = NewTokenBatch([][]int64{{1, 2, 3}})
	if _, err := m.Logits(b, []int64{3}, nil, 0); err == nil || !strings.Contains(err.Error(), "logit index 3") {
		t.Errorf("index past the batch: %v", err)
	}
	if _, err := m.Logits64(b, []int64{0}, nil, 0); err == nil {
		t.Error("Logits64 on an F32 model succeeded")
	}
}

func TestCUDAUnavailableIsClear(t *testing.T) {
	c := firstCase(t, "untied_mha_plain_rope")
	_, err := Load(mustOpen(t, writeCase(t, c, "")), ModelOptions{SessionOptions: SessionOptions{Device: CUDA}, CacheDir: t.TempDir()})
	if err == nil {
		t.Skip("this ONNX Runtime library has a working CUDA provider")
	}
	if !strings.Contains(err.Error(), "CUDA execution provider") || !strings.Contains(err.Error(), libraryOption) {
		t.Errorf("error %q does not say what is missing and how to fix it", err)
	}
}

func TestFindLibraryErrors(t *testing.T) {
	if _, err := findLibrary("/nonexistent/libonnxruntime.so", CPU); err == nil || !strings.Contains(err.Error(), libraryOption) {
		t.Errorf("explicit path: %v", err)
	}
	t.Setenv(LibraryEnv, "/nonexistent/lib.so")
	if _, err := findLibrary("", CPU); err == nil || !strings.Contains(err.Error(), LibraryEnv) {
		t.Errorf("env path: %v", err)
	}
}

func TestAdapterRoundTripAndErrors(t *testing.T) {
	c := firstCase(t, "lora_q_v")
	dir := writeCase(t, c, "")
	cfg, _ := hf.ReadConfig(dir)
	src := filepath.Join("../../testdata/forward", c.LoRA.Dir)
	a, err := peft.ReadAdapter(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := peft.WriteAdapter(out, a, cfg, dir); err != nil {
		t.Fatal(err)
	}
	back, err := peft.ReadAdapter(out, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range a.Weights {
		w := back.Weights[name]
		for i := range v {
			if v[i] != w[i] {
				t.Fatalf("%s[%d] changed in the round trip", name, i)
			}
		}
	}
	// A model of another width rejects the adapter, naming the tensor.
	other := cfg
	other.HiddenSize = 32
	if _, err := peft.ReadAdapter(src, other); err == nil || !strings.Contains(err.Error(), "lora_A.weight") {
		t.Errorf("shape mismatch: %v", err)
	}
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "adapter_config.json"), []byte(`{"r":8,"lora_alpha":16,"target_modules":["q_proj","wq"]}`), 0o644)
	if _, err := peft.ReadAdapter(bad, cfg); err == nil || !strings.Contains(err.Error(), `"wq"`) {
		t.Errorf("unknown target: %v", err)
	}
}

// TestMergeAdapter: a checkpoint with the adapter merged in (fp32) gives the logits of the base
// checkpoint with the adapter applied (1e-5: float32 reassociation only).
func TestMergeAdapter(t *testing.T) {
	c := firstCase(t, "lora_q_v")
	dir := writeCase(t, c, "")
	b, index := caseBatch(c)
	withAdapter := logits(t, loadCase(t, c, dir, hf.F32, llama.LogitsFullVocab), b, index)
	cfg, _ := hf.ReadConfig(dir)
	ad, err := peft.ReadAdapter(filepath.Join("../../testdata/forward", c.LoRA.Dir), cfg)
	if err != nil {
		t.Fatal(err)
	}
	merged := filepath.Join(t.TempDir(), "merged")
	if err := peft.MergeAdapter(dir, merged, ad, hf.F32); err != nil {
		t.Fatal(err)
	}
	plain := c
	plain.LoRA = nil
	got := logits(t, loadCase(t, plain, merged, hf.F32, llama.LogitsFullVocab), b, index)
	base := logits(t, loadCase(t, plain, dir, hf.F32, llama.LogitsFullVocab), b, index)
	moved := 0.0
	for i := range got {
		if d := math.Abs(float64(got[i] - withAdapter[i])); d > 1e-5 {
			t.Fatalf("logit %d: merged %g, base+adapter %g", i, got[i], withAdapter[i])
		}
		moved = math.Max(moved, math.Abs(float64(base[i]-withAdapter[i])))
	}
	if moved < 1e-3 {
		t.Fatalf("the adapter changes logits by only %g: the test would not see a missing merge", moved)
	}
}
