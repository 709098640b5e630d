package ortrun

import (
	"errors"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/onnx/llama"
	ort "github.com/yalue/onnxruntime_go"
)

// TestDiagnoseCUDA: ONNX Runtime's texts for a provider that cannot start name what is missing;
// other errors are left alone. The texts are those of the 1.29 CUDA provider (the first as it
// fails on this machine, the others from its source's CUDA_CALL messages).
func TestDiagnoseCUDA(t *testing.T) {
	cases := []struct{ text, missing, hint string }{
		{"[ONNXRuntimeError] : 1 : FAIL : Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: No such file or directory",
			"libcublasLt.so.13", "cuBLAS of CUDA 13"},
		{"Failed to load library /x/libonnxruntime_providers_cuda.so with error: libcuda.so.1: cannot open shared object file: No such file or directory",
			"libcuda.so.1", "NVIDIA driver"},
		{"Could not load library libcudnn_graph.so.9: libcudnn_graph.so.9: cannot open shared object file", "libcudnn_graph.so.9", "cuDNN 9"},
		{"libfoo.so.3: cannot open shared object file", "libfoo.so.3", "find which package"},
		{"CUDA failure 100: no CUDA-capable device is detected ; GPU=0 ; expr=cudaGetDeviceCount(&num_devices);", "a CUDA device", "CUDA_VISIBLE_DEVICES"},
		{"CUDA failure 35: CUDA driver version is insufficient for CUDA runtime version", "a driver recent enough", "580"},
	}
	for _, c := range cases {
		e := diagnoseCUDA(errors.New("\x1b[1;31m" + c.text + "\x1b[m"))
		if e == nil || e.Missing != c.missing || !strings.Contains(e.Hint, c.hint) || strings.Contains(e.Error(), "\x1b") {
			t.Errorf("%q: %+v", c.text, e)
		}
	}
	for _, text := range []string{"Invalid rank for input: ids", "CUDA failure 2: out of memory"} {
		if e := diagnoseCUDA(errors.New(text)); e != nil {
			t.Errorf("%q diagnosed as %+v", text, e)
		}
	}
	if diagnoseCUDA(nil) != nil {
		t.Error("nil diagnosed")
	}
}

// TestIOBytes: a run counts the bytes of the tensors bound to it, inputs and outputs, which on
// CUDA cross between host and device.
func TestIOBytes(t *testing.T) {
	f, err := ort.NewTensor(ort.NewShape(2, 3), make([]float32, 6))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Destroy()
	i, err := ort.NewTensor(ort.NewShape(5), make([]int64, 5))
	if err != nil {
		t.Fatal(err)
	}
	defer i.Destroy()
	if got := []int64{valueBytes(f), valueBytes(i), valueBytes(nil)}; got[0] != 24 || got[1] != 40 || got[2] != 0 {
		t.Errorf("tensor sizes %v, want [24 40 0]", got)
	}
	c := firstCase(t, "untied_mha_plain_rope")
	m := loadCase(t, c, writeCase(t, c, ""), hf.F32, llama.LogitsFullVocab)
	b := NewTokenBatch([][]int64{{1, 2, 3}, {4, 5, 6}})
	before := IOBytes()
	if _, err := m.Logits(b, []int64{b.Index(0, 2), b.Index(1, 2)}, nil, 0); err != nil {
		t.Fatal(err)
	}
	logits := int64(2 * m.Config.VocabSize * 4)
	if d := IOBytes() - before; d < logits+6*8 || d > logits+4096 {
		t.Errorf("one run counted %d bytes, want the logits (%d) and the small inputs", d, logits)
	}
}
