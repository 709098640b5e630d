package ortrun

import (
	"fmt"
	"github.com/bearrec/bear/onnx/hf"
	"os"
	"testing"
)

// TestMain loads ONNX Runtime once. A missing library is a failure, never a skip: `make test`
// fetches it first (make deps).
func TestMain(m *testing.M) {
	if err := Init(""); err != nil {
		fmt.Fprintln(os.Stderr, "runtime tests need ONNX Runtime:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// mustOpen opens the checkpoint in dir or fails the test.
func mustOpen(t testing.TB, dir string) *hf.Checkpoint {
	t.Helper()
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}
