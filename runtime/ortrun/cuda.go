package ortrun

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// The CUDA build `make deps-cuda` fetches (tools/deps-cuda.sh): ONNX Runtime 1.29.0's core from
// onnxruntime-node (built with the CUDA provider interface) beside the official 1.29.0 CUDA 13
// provider libraries. A core and a provider must come from the same version.
const (
	cachedCUDALibrary = ".cache/onnxruntime-cuda/libonnxruntime.so.1"
	cudaProvider      = "libonnxruntime_providers_cuda.so"
	sharedProvider    = "libonnxruntime_providers_shared.so"
	cudaBuild         = "ONNX Runtime 1.29 for CUDA 13 and cuDNN 9"
)

// findCUDALibrary is the library `make deps-cuda` put in .cache/, found as findLibrary finds
// the CPU one.
func findCUDALibrary() (string, error) {
	p, looked, err := FindCached(cachedCUDALibrary)
	if err != nil || p != "" {
		return p, err
	}
	return "", fmt.Errorf("ONNX Runtime with the CUDA execution provider not found (looked for %s): run `make deps-cuda` in the bear checkout "+
		"(%s from the npm registry), or give a CUDA build's libonnxruntime.so.1 (%s or $%s) with %s and %s beside it",
		strings.Join(looked, "; "), cudaBuild, libraryOption, LibraryEnv, cudaProvider, sharedProvider)
}

// appendCUDA adds the CUDA execution provider to opts, after checking that the loaded library
// has its provider files beside it.
func appendCUDA(opts *ort.SessionOptions, o SessionOptions) error {
	dir := filepath.Dir(initLib)
	for _, name := range []string{sharedProvider, cudaProvider} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("CUDA execution provider unavailable: %s is not beside the ONNX Runtime library %s, which is then a CPU-only "+
				"build (the one `make deps` fetches is): run `make deps-cuda` and leave %s and $%s unset, or give a CUDA build of ONNX Runtime",
				name, initLib, libraryOption, LibraryEnv)
		}
	}
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return cudaError(err)
	}
	defer cuda.Destroy()
	settings := map[string]string{"device_id": fmt.Sprint(o.CUDADevice)}
	if o.NoTF32 {
		settings["use_tf32"] = "0"
	}
	if err := cuda.Update(settings); err != nil {
		return cudaError(err)
	}
	if err := opts.AppendExecutionProviderCUDA(cuda); err != nil {
		return cudaError(err)
	}
	return nil
}

// cudaUnavailableError is a CUDA execution provider that cannot start, with what is missing
// when the cause is known.
type cudaUnavailableError struct {
	Missing string // the shared library or the device that is missing ("" when unknown)
	Hint    string // what provides it
	Err     error  // ONNX Runtime's error
}

func (e *cudaUnavailableError) Error() string {
	if e.Missing == "" {
		return fmt.Sprintf("CUDA execution provider unavailable: %v (bear runs on %s: check the driver with nvidia-smi)", e.Err, cudaBuild)
	}
	return fmt.Sprintf("CUDA execution provider unavailable: %s is missing (%s); ONNX Runtime said: %v", e.Missing, e.Hint, e.Err)
}

func (e *cudaUnavailableError) Unwrap() error { return e.Err }

var (
	missingLibrary = regexp.MustCompile(`(lib[A-Za-z0-9_+.-]*?\.so[0-9.]*): cannot open shared object file`)
	cudaFailure    = regexp.MustCompile(`CUDA failure (\d+)`)
)

// cudaLibraries say what provides each library the CUDA provider loads (its ELF NEEDED entries,
// and cuDNN, which it opens at run time).
var cudaLibraries = []struct{ prefix, hint string }{
	{"libcuda.so", "the NVIDIA driver's library: install the driver (nvidia-smi must work), or add its folder to LD_LIBRARY_PATH"},
	{"libcublasLt.so", inToolkit("cuBLAS of CUDA 13", "nvidia-cublas")},
	{"libcublas.so", inToolkit("cuBLAS of CUDA 13", "nvidia-cublas")},
	{"libcudart.so", inToolkit("the CUDA 13 runtime", "nvidia-cuda-runtime")},
	{"libcurand.so", inToolkit("cuRAND of CUDA 13", "nvidia-curand")},
	{"libcudnn", "cuDNN 9 for CUDA 13: pip's nvidia-cudnn-cu13, or NVIDIA's cuDNN 9 packages, on LD_LIBRARY_PATH"},
	{"libcufft.so", inToolkit("cuFFT of CUDA 13", "nvidia-cufft")},
	{"libnvrtc.so", inToolkit("NVRTC of CUDA 13", "nvidia-cuda-nvrtc")},
}

// inToolkit is the hint for a library of the CUDA 13 toolkit that pip's package also provides.
func inToolkit(what, pip string) string {
	return what + ": the CUDA 13 toolkit's lib64, or pip's " + pip + ", on LD_LIBRARY_PATH"
}

// cudaError turns an error of the CUDA provider's start into a *cudaUnavailableError, which
// names what is missing where ONNX Runtime's text says it.
func cudaError(err error) error {
	if ce := diagnoseCUDA(err); ce != nil {
		return ce
	}
	return &cudaUnavailableError{Err: wrapORT(err)}
}

// diagnoseCUDA is the *cudaUnavailableError of err when its text names a missing library or a
// known CUDA failure (nil otherwise).
func diagnoseCUDA(err error) *cudaUnavailableError {
	if err == nil {
		return nil
	}
	err = wrapORT(err)
	msg := err.Error()
	if m := missingLibrary.FindStringSubmatch(msg); m != nil {
		hint := "a library the CUDA provider needs: find which package provides it, and put its folder on LD_LIBRARY_PATH"
		for _, l := range cudaLibraries {
			if strings.HasPrefix(m[1], l.prefix) {
				hint = l.hint
				break
			}
		}
		return &cudaUnavailableError{Missing: m[1], Hint: hint, Err: err}
	}
	if m := cudaFailure.FindStringSubmatch(msg); m != nil {
		switch m[1] {
		case "100":
			return &cudaUnavailableError{Missing: "a CUDA device", Hint: "CUDA error 100: no GPU is visible to this process; check nvidia-smi and $CUDA_VISIBLE_DEVICES", Err: err}
		case "35":
			return &cudaUnavailableError{Missing: "a driver recent enough", Hint: "CUDA error 35: the NVIDIA driver is older than CUDA 13 needs (580 or later)", Err: err}
		}
	}
	return nil
}
