package ortrun

import (
	"fmt"
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
