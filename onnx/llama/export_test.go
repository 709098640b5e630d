package llama

import (
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/onnxpb"
	"google.golang.org/protobuf/proto"
)

func testCheckpoint(t *testing.T, tied bool) *hf.Checkpoint {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	cfg.VocabSize = 96
	cfg.TieWordEmbeddings = tied
	dir := t.TempDir()
	if err := hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: 1, DType: hf.F32}); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// TestStaticShapes: the builder's shape inference knows every intermediate value of the forward
// graph symbolically (no "?" dimension), which the backward pass and buffer planning rely on.
func TestStaticShapes(t *testing.T) {
	for _, mode := range []LogitsMode{LogitsFullVocab, LogitsCandidates} {
		ck := testCheckpoint(t, mode == LogitsFullVocab)
		b, err := BindWeights(ck, hf.F32, "")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ExportForward(ck, b, Options{LoRA: &LoRASpec{Targets: []string{"q_proj", "v_proj", "down_proj"}, Rank: 4, Alpha: 8}, Logits: mode})
		if err != nil {
			t.Fatal(err)
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(f.Model, &m); err != nil {
			t.Fatal(err)
		}
		infos := append(append(m.Graph.ValueInfo, m.Graph.Output...), m.Graph.Input...)
		if len(m.Graph.ValueInfo) < len(m.Graph.Node) {
			t.Errorf("%d value_info entries for %d nodes", len(m.Graph.ValueInfo), len(m.Graph.Node))
		}
		for _, vi := range infos {
			for _, d := range vi.GetType().GetTensorType().GetShape().GetDim() {
				if p := d.GetDimParam(); p == "?" {
					t.Errorf("%s has an unknown dimension: %v", vi.GetName(), vi.GetType())
				}
			}
		}
		out := m.Graph.Output[0].GetType().GetTensorType().GetShape().GetDim()
		want := []string{"n", "96"}
		if mode == LogitsCandidates {
			want[1] = "c"
		}
		if len(out) != 2 || out[0].GetDimParam() != "n" || (mode == LogitsFullVocab && out[1].GetDimValue() != 96) || (mode == LogitsCandidates && out[1].GetDimParam() != "c") {
			t.Errorf("logits shape %v, want %v", out, want)
		}
	}
}
