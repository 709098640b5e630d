package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/autodiff"
	"github.com/bearrec/bear/runtime/ortrun"
)

// bearChild runs `bear args...` (the test binary as bear) with $ONNXRUNTIME_SHARED_LIBRARY_PATH
// unset, so that the library is found as a user's is, and returns its exit code and stderr.
func bearChild(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, ortrun.LibraryEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, asBearEnv+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestDeviceCUDA: --device cuda finds the build `make deps-cuda` fetched without flags, and
// where it cannot start (no GPU, no CUDA libraries) it says by name what is missing and exits
// 1, never crashing; the CPU library given for CUDA is refused naming the provider files it
// lacks. Where the provider starts, forward runs (make gpu-check compares it with the CPU).
func TestDeviceCUDA(t *testing.T) {
	model := writeTinyModel(t, filepath.Join(t.TempDir(), "tiny"))
	code, stderr := bearChild(t, "forward", "--model", model, "--ids", "128000,791", "--top", "3", "--device", "cuda")
	missing := regexp.MustCompile(`CUDA execution provider unavailable: (lib[^ ]+\.so[0-9.]*|a CUDA device|a driver recent enough) is missing \(`)
	switch {
	case code == 0:
		t.Log("the CUDA provider started on this machine")
	case code != 1 || !missing.MatchString(stderr) || strings.Contains(stderr, "goroutine ") || strings.Contains(stderr, "SIG"):
		t.Errorf("exit %d, want 1 with the missing library or device named:\n%s", code, stderr)
	default:
		t.Logf("as expected without a GPU: %s", strings.TrimSpace(stderr))
	}
	if !strings.Contains(stderr, ".cache/onnxruntime-cuda/libonnxruntime_providers_cuda.so") && code != 0 {
		t.Errorf("the provider was not loaded from make deps-cuda's folder:\n%s", stderr)
	}

	cpuLib, _, err := ortrun.FindCached(".cache/onnxruntime/libonnxruntime.so.1")
	if err != nil || cpuLib == "" {
		t.Fatalf("make deps's library: %q %v", cpuLib, err)
	}
	code, stderr = bearChild(t, "forward", "--model", model, "--ids", "128000,791", "--device", "cuda", "--ort-lib", cpuLib)
	if code != 1 || !strings.Contains(stderr, "libonnxruntime_providers_shared.so is not beside the ONNX Runtime library") || !strings.Contains(stderr, "make deps-cuda") {
		t.Errorf("the CPU build for --device cuda: exit %d\n%s", code, stderr)
	}
}

// TestPolicyFor: without --policy, stash on the CPU and recompute on CUDA; a given policy is
// kept on either device.
func TestPolicyFor(t *testing.T) {
	cases := []struct {
		given, device string
		want          autodiff.Policy
	}{
		{"", "cpu", autodiff.Stash},
		{"", "cuda", autodiff.Recompute},
		{"stash", "cuda", autodiff.Stash},
		{"recompute", "cpu", autodiff.Recompute},
	}
	for _, c := range cases {
		if got, err := policyFor(c.given, c.device); err != nil || got != c.want {
			t.Errorf("policyFor(%q, %q) = %v, %v; want %v", c.given, c.device, got, err, c.want)
		}
	}
	if _, err := policyFor("keep", "cpu"); err == nil {
		t.Error("policy keep accepted")
	}
}
