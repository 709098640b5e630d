package ortrun

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/bearrec/bear/internal/forwardcases"
	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	"github.com/bearrec/bear/onnx/peft"
)

type goldenCase = forwardcases.Case

func loadGoldens(t testing.TB) []goldenCase {
	cases, err := forwardcases.Load("../../testdata/forward")
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// writeCase writes the case's checkpoint exactly as `bear init --config` did for the reference.
func writeCase(t testing.TB, c goldenCase, dtype hf.DType) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), c.Name)
	if err := c.WriteCheckpoint(dir, dtype); err != nil {
		t.Fatal(err)
	}
	return dir
}

func fileSHA256(t testing.TB, path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// caseBatch lays the sequences out as the reference does, with the case's position offset.
func caseBatch(c goldenCase) (TokenBatch, []int64) {
	b := NewTokenBatch(c.Sequences)
	for k := range b.Pos {
		if b.Mask[k] == 1 {
			b.Pos[k] += c.PositionOffset
		}
	}
	var index []int64
	for i, s := range c.Sequences {
		for tt := range s {
			index = append(index, b.Index(i, tt))
		}
	}
	return b, index
}

func loadCase(t testing.TB, c goldenCase, dir string, dt hf.DType, mode llama.LogitsMode) *Model {
	t.Helper()
	o := ModelOptions{DType: dt, Logits: mode, CacheDir: filepath.Join(t.TempDir(), "cache"), SessionOptions: SessionOptions{Threads: 2}}
	var ad *peft.Adapter
	if c.LoRA != nil {
		cfg, err := hf.ReadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		ad, err = peft.ReadAdapter(filepath.Join("../../testdata/forward", c.LoRA.Dir), cfg)
		if err != nil {
			t.Fatal(err)
		}
		o.LoRA = &ad.Spec
	}
	m, err := Load(mustOpen(t, dir), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if ad != nil {
		if err := m.SetAdapter(ad); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func maxAbsDiff[T float32 | float64](got []T, want [][]float64) float64 {
	worst := 0.0
	w := len(want[0])
	for i, row := range want {
		for j, v := range row {
			worst = math.Max(worst, math.Abs(float64(got[i*w+j])-v))
		}
	}
	return worst
}

// TestForwardMatchesReference compares ORT's logits with the PyTorch reference's. Tolerance:
// 1e-4 absolute in float32 (the bound; logits are O(1), so this is ~1e-4 relative and
// far above float32 rounding, ~1e-6 here); 1e-6 in float64: the reference runs in float64 too,
// but the rotary tables are float32 in both (as in transformers), and ORT's and PyTorch's float32
// cos/sin may differ by an ulp (6e-8), which moves logits by ~1e-7.
func TestForwardMatchesReference(t *testing.T) {
	cases := loadGoldens(t)
	if len(cases) < 4 {
		t.Fatalf("%d golden cases, want at least 4", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			g := c
			dir := writeCase(t, c, "")
			if sum := fileSHA256(t, filepath.Join(dir, "model.safetensors")); sum != g.SHA256 {
				t.Fatalf("checkpoint sha256 %s, the goldens were made from %s: hf.WriteRandom changed, run make goldens", sum, g.SHA256)
			}
			b, index := caseBatch(c)
			if len(index) != len(g.Logits) {
				t.Fatalf("%d positions, golden has %d rows", len(index), len(g.Logits))
			}
			m32 := loadCase(t, c, dir, hf.F32, llama.LogitsFullVocab)
			got32, err := m32.Logits(b, index, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(got32, g.Logits); d > 1e-4 {
				t.Errorf("float32: max |logit - reference| = %.3g, want ≤ 1e-4", d)
			} else {
				t.Logf("float32: max abs error %.3g", d)
			}
			m64 := loadCase(t, c, dir, hf.F64, llama.LogitsFullVocab)
			got64, err := m64.Logits64(b, index, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxAbsDiff(got64, g.Logits); d > 1e-6 {
				t.Errorf("float64: max |logit - reference| = %.3g, want ≤ 1e-6", d)
			} else {
				t.Logf("float64: max abs error %.3g", d)
			}
		})
	}
}
