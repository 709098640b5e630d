package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
)

// TestPanicIsOneLine: a panic inside a command reaches the user as one "internal error" line
// with exit status 1, and the stack trace only with BEAR_TRACEBACK=1.
func TestPanicIsOneLine(t *testing.T) {
	const name = "test-panic"
	register(&command{name: name, run: func([]string) error {
		var m map[string]int
		m["x"] = 1 // a nil-map write: the kind of bug the recover is for
		return nil
	}})
	defer delete(commands, name)
	for _, traceback := range []string{"", "1"} {
		t.Setenv(tracebackEnv, traceback)
		var stderr bytes.Buffer
		if code := runMain([]string{name}, &stderr); code != 1 {
			t.Errorf("traceback %q: exit status %d, want 1", traceback, code)
		}
		first, rest, _ := strings.Cut(stderr.String(), "\n")
		if !strings.HasPrefix(first, "bear "+name+": internal error: assignment to entry in nil map") || !strings.Contains(first, tracebackEnv+"=1") {
			t.Errorf("traceback %q: first line %q", traceback, first)
		}
		if hasStack := strings.Contains(rest, "goroutine "); hasStack != (traceback == "1") {
			t.Errorf("traceback %q: stack trace printed: %v\n%s", traceback, hasStack, stderr.String())
		}
	}
}

// badFlagFixture holds the paths the bad-flag cases refer to: a tiny checkpoint (for checks that
// read its config), a folder that does not exist (checks must come before any use of it), a
// case file and a plain file.
type badFlagFixture struct {
	tiny, missing, cases, file, dir string
}

func newBadFlagFixture(t *testing.T) badFlagFixture {
	dir := t.TempDir()
	f := badFlagFixture{tiny: filepath.Join(dir, "tiny"), missing: filepath.Join(dir, "missing"),
		cases: filepath.Join(dir, "cases.json"), file: filepath.Join(dir, "file"), dir: dir}
	p, _ := hf.LookupPreset("tiny")
	if err := hf.WriteRandom(f.tiny, p.Config, hf.InitOptions{Seed: 1, ConfigOnly: true}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(f.cases, []byte(`{"loss":"msl","positions":[{"logits":[1,2],"target":0}]}`), 0o644)
	os.WriteFile(f.file, nil, 0o644)
	return f
}

// TestBadFlags: every invalid flag value and every stray argument of the commands that validate
// their own flags is an error naming the flag, before any work (paths that do not exist are
// never reached), and never a panic.
func TestBadFlags(t *testing.T) {
	f := newBadFlagFixture(t)
	missingModel := []string{"--model", f.missing}
	cases := []struct {
		cmd  string
		args []string
		want string
	}{
		{"forward", []string{"--model", f.tiny, "--ids", "1", "--top", "-3"}, "--top -3"},
		{"forward", []string{"--model", f.missing, "--ids", "1", "--threads", "-4"}, "--threads -4"},
		{"forward", []string{"--model", f.missing, "--ids", "1", "--device", "tpu"}, "--device"},
		{"forward", []string{"--model", f.tiny, "--ids", "1,128256"}, "--ids: entry 1 is token 128256"},
		{"forward", []string{"--model", f.tiny, "--ids", "-1"}, "--ids: entry 0 is token -1"},
		{"forward", []string{"--model", f.tiny, "--text", "hi", "--tokenizer", f.missing}, "--tokenizer " + f.missing},
		{"forward", []string{"--model", f.tiny, "--ids", "1", "stray"}, "unexpected arguments"},
		{"tokenize", []string{"stray"}, "unexpected arguments"},
		{"tokenize", []string{"--tokenizer", f.missing}, "--tokenizer " + f.missing},
		{"tokenize", []string{"--tokenizer", f.dir}, "is a folder"},
		{"loss", []string{"--cases", f.missing}, "--cases"},
		{"loss", []string{"--cases", f.cases, "--out", f.dir}, "--out " + f.dir + " is a folder"},
		{"loss", []string{"--cases", f.cases, "stray"}, "unexpected arguments"},
		{"export", append([]string{"--out", f.missing, "--lora-r", "-1"}, missingModel...), "--lora-r -1"},
		{"export", append([]string{"--out", f.missing, "--lora-alpha", "NaN"}, missingModel...), "--lora-alpha NaN"},
		{"export", append([]string{"--out", f.missing, "--lora-alpha", "0"}, missingModel...), "--lora-alpha 0"},
		{"export", append([]string{"--out", f.missing, "--lora-targets", "wq"}, missingModel...), "--lora-targets"},
		{"export", append([]string{"--out", f.missing, "--policy", "keep"}, missingModel...), "--policy"},
		{"export", append([]string{"--out", f.missing, "--dtype", "fp16"}, missingModel...), "--dtype"},
		{"export", append([]string{"--out", f.missing, "stray"}, missingModel...), "unexpected arguments"},
		{"grad", append([]string{"--adapter", f.missing, "--ids", "1", "--cotangent", f.missing, "--dtype", "fp8"}, missingModel...), "--dtype"},
		{"grad", append([]string{"--adapter", f.missing, "--ids", "1", "--cotangent", f.missing, "--policy", "x"}, missingModel...), "--policy"},
		{"grad", append([]string{"--adapter", f.missing, "--ids", "1", "--cotangent", f.missing, "--threads", "-1"}, missingModel...), "--threads -1"},
		{"grad", append([]string{"--adapter", f.missing, "--ids", "1", "--cotangent", f.missing, "x"}, missingModel...), "unexpected arguments"},
		{"plot", []string{"--log", f.file, "--out", filepath.Join(f.dir, "a.png"), "stray"}, "unexpected arguments"},
		{"bench", []string{"forward", "--model", f.missing, "--batch", "-1"}, "--batch -1"},
		{"bench", []string{"forward", "--model", f.missing, "--seq", "-8"}, "--seq -8"},
		{"bench", []string{"forward", "--model", f.missing, "--iters", "0"}, "--iters 0"},
		{"bench", []string{"forward", "--model", f.missing, "--iters", "-2"}, "--iters -2"},
		{"bench", []string{"forward", "--model", f.missing, "--threads", "-4"}, "--threads -4"},
		{"bench", []string{"forward", "--model", f.missing, "stray"}, "unexpected arguments"},
		{"bench", []string{"forward"}, "--model is required"},
		{"bench", []string{"step", "--model", f.missing, "--iters", "0"}, "--iters 0"},
		{"bench", []string{"step", "--model", f.missing, "--batch", "0"}, "--batch 0"},
		{"bench", []string{"step", "--model", f.missing, "--seq", "-1"}, "--seq -1"},
		{"bench", []string{"step", "--model", f.missing, "--positions", "0"}, "--positions 0"},
		{"bench", []string{"step", "--model", f.missing, "--positions", "300"}, "--positions 300: want at most --seq 256"},
		{"bench", []string{"step", "--model", f.missing, "--threads", "-4"}, "--threads -4"},
		{"bench", []string{"step", "--model", f.missing, "--lora-r", "0"}, "--lora-r 0"},
		{"bench", []string{"step", "--model", f.missing, "x"}, "unexpected arguments"},
		{"bench", []string{"fwd"}, `unknown benchmark "fwd"`},
		{"train", []string{"--model", f.missing, "--data", f.missing, "--out", f.missing, "--loss", "bear", "--threads", "-4"}, "--threads -4"},
		{"train", []string{"--model", f.missing, "--data", f.missing, "--out", f.missing, "--loss", "bear", "--lora-alpha", "+Inf"}, "--lora-alpha +Inf"},
		{"train", []string{"--model", f.missing, "--data", f.missing, "--out", f.missing, "--loss", "bear", "--tau", "NaN"}, "--tau NaN"},
		{"train", []string{"--model", f.missing, "--data", f.missing, "--out", f.missing, "--loss", "bear", "--tokenizer", f.missing}, "--tokenizer " + f.missing},
		{"train", []string{"--model", f.missing, "--data", f.missing, "--out", f.missing, "--loss", "bear", "stray"}, "unexpected arguments"},
	}
	for _, c := range cases {
		err := runCommand(commands[c.cmd], c.args)
		var ie *internalError
		switch {
		case errors.As(err, &ie):
			t.Errorf("bear %s %q: panic %v\n%s", c.cmd, c.args, ie.value, ie.stack)
		case err == nil || !strings.Contains(err.Error(), c.want):
			t.Errorf("bear %s %q: error %v, want one containing %q", c.cmd, c.args, err, c.want)
		case strings.Contains(err.Error(), "goroutine "):
			t.Errorf("bear %s %q: stack trace in %v", c.cmd, c.args, err)
		}
	}
	if _, err := os.Stat(f.missing); err == nil {
		t.Errorf("%s was created", f.missing)
	}
}

// TestORTFlagHelp: the flag package shows a backquoted word of a usage text as the value's
// name; the help read "-ort-lib make deps" when the text quoted `make deps`.
func TestORTFlagHelp(t *testing.T) {
	fs := newFlagSet("x", "")
	addORTFlags(fs)
	var help bytes.Buffer
	fs.SetOutput(&help)
	fs.PrintDefaults()
	if !strings.Contains(help.String(), "-ort-lib FILE\n") || strings.Contains(help.String(), "-ort-lib make") {
		t.Errorf("help:\n%s", help.String())
	}
}

// shown is err as bear prints it (describe: runMain does this; the tests that call a
// command's Main directly use it).
func shown(cmd string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s", describe(err, commands[cmd].options))
}
