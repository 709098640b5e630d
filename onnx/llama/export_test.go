package llama

import (
	"math"
	"slices"
	"strconv"
	"strings"
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
// graph symbolically (no unknown dimension), which the backward pass and buffer planning rely
// on; the logits have the shape of their mode.
func TestStaticShapes(t *testing.T) {
	lora := &LoRASpec{Targets: []string{"q_proj", "v_proj", "down_proj"}, Rank: 4, Alpha: 8}
	for _, c := range []struct {
		name   string
		opt    Options
		tied   bool
		second string // the logits' second dimension
	}{
		{"full", Options{LoRA: lora, Logits: LogitsFullVocab}, true, "96"},
		{"candidates", Options{LoRA: lora, Logits: LogitsCandidates}, false, "c"},
		{"subset/tied+dropout", Options{LoRA: lora, Logits: LogitsSubset, LoRADropout: 0.05}, true, "u"},
		{"subset/untied", Options{LoRA: lora, Logits: LogitsSubset}, false, "u"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := exportModel(t, testCheckpoint(t, c.tied), c.opt)
			infos := append(append(m.Graph.ValueInfo, m.Graph.Output...), m.Graph.Input...)
			if len(m.Graph.ValueInfo) < len(m.Graph.Node) {
				t.Errorf("%d value_info entries for %d nodes", len(m.Graph.ValueInfo), len(m.Graph.Node))
			}
			for _, vi := range infos {
				for _, d := range vi.GetType().GetTensorType().GetShape().GetDim() {
					if d.GetDimParam() == "" && d.GetValue() == nil {
						t.Errorf("%s has an unknown dimension: %v", vi.GetName(), vi.GetType())
					}
				}
			}
			out := m.Graph.Output[0].GetType().GetTensorType().GetShape().GetDim()
			if len(out) != 2 || out[0].GetDimParam() != "n" || dimString(out[1]) != c.second {
				t.Errorf("logits shape %v, want [n, %s]", out, c.second)
			}
		})
	}
}

func dimString(d *onnxpb.TensorShapeProto_Dimension) string {
	if _, ok := d.GetValue().(*onnxpb.TensorShapeProto_Dimension_DimValue); ok {
		return strconv.FormatInt(d.GetDimValue(), 10)
	}
	return d.GetDimParam()
}

func exportModel(t *testing.T, ck *hf.Checkpoint, opt Options) *onnxpb.ModelProto {
	t.Helper()
	b, err := BindWeights(ck, hf.F32, "")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ExportForward(ck, b, opt)
	if err != nil {
		t.Fatal(err)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(f.Model, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestSubsetHead: with LogitsSubset the head is one Gemm of the gathered rows, never the
// full-vocabulary Gemm: no value of the graph has the vocabulary as its last dimension.
func TestSubsetHead(t *testing.T) {
	for _, tied := range []bool{true, false} {
		m := exportModel(t, testCheckpoint(t, tied), Options{Logits: LogitsSubset})
		for _, vi := range append(m.Graph.ValueInfo, m.Graph.Output...) {
			d := vi.GetType().GetTensorType().GetShape().GetDim()
			if len(d) == 2 && d[1].GetDimValue() == 96 {
				t.Errorf("tied %v: %s has shape %v: a full-vocabulary product", tied, vi.GetName(), d)
			}
		}
		in := m.Graph.Input
		if in[4].GetName() != VocabSubset || dimString(in[4].GetType().GetTensorType().GetShape().GetDim()[0]) != "u" {
			t.Errorf("tied %v: input 4 is %v, want %s [u]", tied, in[4], VocabSubset)
		}
	}
}

// TestDropoutOptions: p outside [0, 1) or without LoRA is refused; p = 0 adds no input and no
// node; p > 0 adds dropout_seed after the LoRA inputs, and the decoder ignores it.
func TestDropoutOptions(t *testing.T) {
	ck := testCheckpoint(t, true)
	lora := &LoRASpec{Targets: []string{"q_proj", "v_proj"}, Rank: 4, Alpha: 8}
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{LoRA: lora, LoRADropout: 1}, "want 0 <= p < 1"},
		{Options{LoRA: lora, LoRADropout: -0.1}, "want 0 <= p < 1"},
		{Options{LoRA: lora, LoRADropout: math.NaN()}, "want 0 <= p < 1"},
		{Options{LoRADropout: 0.1}, "without LoRA"},
	} {
		if _, err := BuildForward(ck, nil, Options{WeightsAsInputs: true, LoRA: c.opt.LoRA, LoRADropout: c.opt.LoRADropout}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opt, err, c.want)
		}
	}
	plain := exportModel(t, ck, Options{LoRA: lora})
	zero := exportModel(t, ck, Options{LoRA: lora, LoRADropout: 0})
	drop := exportModel(t, ck, Options{LoRA: lora, LoRADropout: 0.1})
	if len(zero.Graph.Node) != len(plain.Graph.Node) || len(zero.Graph.Input) != len(plain.Graph.Input) {
		t.Errorf("p = 0: %d nodes, %d inputs; without the option %d, %d", len(zero.Graph.Node), len(zero.Graph.Input), len(plain.Graph.Node), len(plain.Graph.Input))
	}
	last := drop.Graph.Input[len(drop.Graph.Input)-1]
	if len(drop.Graph.Input) != len(plain.Graph.Input)+1 || last.GetName() != DropoutSeed {
		t.Errorf("p = 0.1: last input %s of %d, want %s of %d", last.GetName(), len(drop.Graph.Input), DropoutSeed, len(plain.Graph.Input)+1)
	}
	b, _ := BindWeights(ck, hf.F32, "")
	d, err := ExportDecoder(ck, b, Options{LoRA: lora, LoRADropout: 0.1})
	if err != nil || slices.Contains(d.Inputs, DropoutSeed) {
		t.Errorf("decoder with dropout: %v, inputs %v", err, d.Inputs)
	}
}
