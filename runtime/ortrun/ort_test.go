package ortrun

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/builder"
	"google.golang.org/protobuf/proto"
)

func TestStripEscapes(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"plain text untouched", "protobuf parsing failed", "protobuf parsing failed"},
		{"ORT's red error line", "\x1b[1;31m2026 [E:onnxruntime:, x.cc:1] MatMul dimension mismatch\x1b[m", "2026 [E:onnxruntime:, x.cc:1] MatMul dimension mismatch"},
		{"warning colour", "\x1b[0;93mwarn\x1b[0m done", "warn done"},
		{"cursor move", "a\x1b[2Kb", "ab"},
		{"OSC title ended by BEL", "\x1b]0;title\x07text", "text"},
		{"OSC ended by ESC backslash", "\x1b]8;;http://x\x1b\\link", "link"},
		{"two-byte escape", "a\x1b=b", "ab"},
		{"trailing ESC", "abc\x1b", "abc"},
		{"unterminated CSI", "abc\x1b[31", "abc"},
		{"C1 CSI", "a\u009b31mb", "ab"},
		{"other UTF-8 kept", "naïve — ok", "naïve — ok"},
	} {
		if got := stripEscapes(c.in); got != c.want {
			t.Errorf("%s: stripEscapes(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

// ortChildEnv makes TestORTChild do its work: it runs in a child process so that ONNX Runtime's
// own writes to standard error and to HOME can be observed from outside.
const ortChildEnv = "BEAR_TEST_ORT_CHILD"

// TestORTQuietAndPrivate: in a child process whose HOME is a fresh folder, a corrupt model and a
// kernel failing at run time give clean errors (no terminal escape codes, in the error or on
// standard error, where ORT's logger prints coloured lines at its error level), and ONNX Runtime
// leaves no telemetry folder (~/.cache/Microsoft) behind.
func TestORTQuietAndPrivate(t *testing.T) {
	home := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestORTChild$", "-test.v")
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "HOME", "XDG_CACHE_HOME", telemetryEnv, logEnv:
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "HOME="+home, ortChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{"corrupt model: create session: ", "protobuf parsing failed", "run: ONNX Runtime: ", "MatMul dimension mismatch"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("child output lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsRune(string(out), 0x1b) {
		t.Errorf("terminal escape codes in the output:\n%q", out)
	}
	var left []string
	filepath.WalkDir(home, func(path string, d os.DirEntry, err error) error {
		if path != home {
			left = append(left, strings.TrimPrefix(path, home))
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("ONNX Runtime wrote under HOME: %v", left)
	}
}

// TestORTChild is the child process of TestORTQuietAndPrivate (it does nothing otherwise).
func TestORTChild(t *testing.T) {
	if os.Getenv(ortChildEnv) == "" {
		return
	}
	model := matMulModel(t)
	_, err := NewSession(model[:len(model)/2], ".", []string{"x"}, []string{"y"}, SessionOptions{Threads: 1})
	fmt.Printf("corrupt model: %v\n", err)
	if err == nil {
		t.Error("a truncated model made a session")
	}
	s, err := NewSession(model, ".", []string{"x"}, []string{"y"}, SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := map[string]Tensor{"x": NewTensorLike([]float32(nil), []int64{4, 5})} // w is 3×2
	out := map[string]Tensor{"y": NewTensorLike([]float32(nil), []int64{4, 2})}
	err = s.RunNamed(in, out)
	fmt.Printf("run: %v\n", err)
	if err == nil {
		t.Error("a 4×5 by 3×2 MatMul ran")
	}
}

// matMulModel is y = x·w with x of symbolic shape (a, b), so that a wrong shape fails inside
// the kernel at run time rather than at the input check.
func matMulModel(t *testing.T) []byte {
	g := builder.New("t")
	x := g.Input("x", builder.Float32, "a", "b")
	w := g.ConstFloat(builder.Float32, []float64{1, 2, 3, 4, 5, 6}, 3, 2)
	g.Output(g.MatMul(x, w), "y")
	model, err := proto.Marshal(g.Model("bear"))
	if err != nil {
		t.Fatal(err)
	}
	return model
}

func TestORTLogLevel(t *testing.T) {
	for _, name := range []string{"", "verbose", "info", "warning", "error", "fatal"} {
		if _, err := ortLogLevel(name); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	if _, err := ortLogLevel("loud"); err == nil || !strings.Contains(err.Error(), logEnv) {
		t.Errorf("unknown level: %v, want an error naming $%s", err, logEnv)
	}
}
