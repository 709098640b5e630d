package ortrun

import (
	"errors"
	"strings"
	"testing"
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
