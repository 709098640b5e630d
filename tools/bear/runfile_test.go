package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/internal/testdeps"
	"go.yaml.in/yaml/v3"
)

// resolvedTrain runs bear train --print-config with args and returns what it printed.
func resolvedTrain(t *testing.T, args ...string) (map[string]any, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := trainMain(append([]string{"--print-config"}, args...), &stdout, &stderr)
	if err != nil {
		return nil, "", shown("train", err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(stdout.Bytes(), &m); err != nil {
		t.Fatalf("printed config is not YAML: %v\n%s", err, stdout.String())
	}
	return m, stdout.String(), nil
}

func writeRunFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRunFileResolves: the file's keys set the flags, the command line overrides them, and the
// printed settings are a run file that resolves to themselves.
func TestRunFileResolves(t *testing.T) {
	tok := testdeps.Tokenizer(t)
	path := writeRunFile(t, "# a run\nmodel: m\ndata: d\nout: o\nloss: msl\nepochs: 3\nlr: 2e-4\nlambda: 1\n"+
		"lora-targets: [q_proj, v_proj, o_proj]\nno-progress: true\ndataset: Office\ntokenizer: "+tok+"\n")
	m, printed, err := resolvedTrain(t, "--config", path, "--epochs", "2")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"model": "m", "loss": "msl", "epochs": 2, "lr": 0.0002, "lambda": 1.0,
		"lora-targets": []any{"q_proj", "v_proj", "o_proj"}, "no-progress": true, "seed": 42, "dataset": "Office"}
	for k, v := range want {
		if got := m[k]; !equalYAML(got, v) {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	for _, k := range []string{"config", "print-config"} {
		if _, ok := m[k]; ok {
			t.Errorf("printed settings hold %s", k)
		}
	}
	again, printedAgain, err := resolvedTrain(t, "--config", writeRunFile(t, printed))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(m) || stripHeader(printedAgain) != stripHeader(printed) {
		t.Errorf("the printed settings do not resolve to themselves:\n%s\nthen\n%s", printed, printedAgain)
	}
}

func stripHeader(s string) string { _, rest, _ := strings.Cut(s, "\n"); return rest }

func equalYAML(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}

// TestRunFileRefused: every bad file is refused naming the file, the line and the key; a bad
// value that only the run's checks catch names the line that set it.
func TestRunFileRefused(t *testing.T) {
	base := "model: m\ndata: d\nout: o\nloss: bear\n"
	cases := []struct {
		name, body, want string
	}{
		{"unknown key", base + "colour: 3\n", ":5: colour: unknown key: not a flag of bear train (-h lists them)"},
		{"misspelt key", base + "epoch: 3\n", ":5: epoch: unknown key: not a flag of bear train; did you mean epochs?"},
		{"short unknown key", base + "x: 3\n", ":5: x: unknown key: not a flag of bear train (-h"},
		{"underscore spelling", base + "lora_r: 4\n", ":5: lora_r: unknown key: did you mean lora-r?"},
		{"quoted integer", base + "epochs: \"3\"\n", `:5: epochs: want an integer, not the string "3"`},
		{"float for integer", base + "epochs: 2.5\n", `:5: epochs: want an integer, not the number "2.5"`},
		{"word for number", base + "lr: fast\n", `:5: lr: want a number, not the string "fast"`},
		{"number for bool", base + "no-progress: 1\n", `:5: no-progress: want true or false`},
		{"number for path", "model: 5\n", `:1: model: want a string, not the integer "5"`},
		{"list for a single value", "loss: [bear, msl]\n", ":1: loss: want a string, not a YAML list"},
		{"mapping value", base + "seed:\n  a: 1\n", ":5: seed: want a non-negative integer, not a YAML mapping"},
		{"no value", base + "xi:\n", ":5: xi: no value"},
		{"infinite", base + "tau: .inf\n", ":5: tau: .inf: want a finite number"},
		{"negative seed", base + "seed: -1\n", ":5: seed: \"-1\""},
		{"twice", base + "epochs: 2\nepochs: 3\n", ":6: epochs: set twice (first on line 5)"},
		{"nested run file", base + "config: other.yaml\n", ":5: config: a run file cannot name another"},
		{"not a mapping", "- model\n", ":1: want a mapping"},
		{"bad YAML (parser)", base + "epochs: [1\n", ":5: not valid YAML"},
		{"bad YAML (parser, no context)", base + "epochs: }\n", ":5: not valid YAML"},
		{"bad YAML (scanner)", base + "epochs: 1\n  xi: 2\n", ":6: not valid YAML"},
		{"two documents", base + "---\nepochs: 2\n", ":5: a second YAML document"},
		{"bad loss value", "model: m\ndata: d\nout: o\nxi: 2\nloss: mse\n", "--loss is set by"},
		{"bad epochs value", base + "epochs: 0\n", "--epochs is set by"},
		{"early stop without validation", base + "early-stop: 2\n", "--early-stop is set by"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeRunFile(t, c.body)
			_, _, err := resolvedTrain(t, "--config", path)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("error %v, want one naming %s and containing %q", err, path, c.want)
			}
		})
	}
	t.Run("bad value names its line", func(t *testing.T) {
		path := writeRunFile(t, base+"epochs: 0\n")
		_, _, err := resolvedTrain(t, "--config", path)
		if want := "--epochs is set by " + path + ":5"; err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("error %v, want %q", err, want)
		}
	})
	t.Run("the command line's value is not blamed on the file", func(t *testing.T) {
		path := writeRunFile(t, base+"epochs: 3\n")
		_, _, err := resolvedTrain(t, "--config", path, "--epochs", "0")
		if err == nil || strings.Contains(err.Error(), path) {
			t.Fatalf("error %v, want one that does not name %s", err, path)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, _, err := resolvedTrain(t, "--config", filepath.Join(t.TempDir(), "none.yaml"))
		if err == nil || !strings.Contains(err.Error(), "--config") || !strings.Contains(err.Error(), "none.yaml") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestMentionsFlag(t *testing.T) {
	cases := []struct {
		msg, name string
		want      bool
	}{
		{"--lr 2: want", "lr", true},
		{"--lr: bad", "lr", true},
		{"--lora-r 0", "lora", false},
		{"--lora-r 0", "lora-r", true},
		{"(--epochs)", "epochs", true},
		{"--epochs2", "epochs", false},
		{"no flag", "lr", false},
	}
	for _, c := range cases {
		if got := mentionsFlag(c.msg, c.name); got != c.want {
			t.Errorf("mentionsFlag(%q, %q) = %v", c.msg, c.name, got)
		}
	}
}

// TestRunFileOtherCommands: bear eval and bear recommend take run files too; a list key
// repeats a repeatable flag.
func TestRunFileOtherCommands(t *testing.T) {
	f := newTrainFixture(t)
	for _, c := range []struct {
		cmd  string
		run  func([]string, io.Writer, io.Writer) error
		body string
		want []string
	}{
		{"eval", evalMain, "beams: 5\nconstrain: before\nlimit: 7\nout: o\n", []string{"beams: 5\n", "constrain: before\n", "limit: 7\n"}},
		{"recommend", recommendMain, "top: 3\nhistory: [\"HP 12C Financial Calculator\", \"Texas Instruments TI-83 Graphing Calculator\"]\n",
			[]string{"top: 3\n", "history: [HP 12C Financial Calculator, Texas Instruments TI-83 Graphing Calculator]\n"}},
	} {
		path := writeRunFile(t, "model: "+f.model+"\ndata: "+f.data+"\ntokenizer: "+f.tok+"\n"+c.body)
		var stdout, stderr bytes.Buffer
		if err := c.run([]string{"--config", path, "--print-config"}, &stdout, &stderr); err != nil {
			t.Fatalf("bear %s: %v", c.cmd, shown(c.cmd, err))
		}
		for _, w := range c.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("bear %s --print-config lacks %q:\n%s", c.cmd, w, stdout.String())
			}
		}
		bad := writeRunFile(t, "model: "+f.model+"\nbeams: ten\n")
		err := c.run([]string{"--config", bad}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), bad+":2: beams: want an integer") {
			t.Errorf("bear %s with a bad run file: %v", c.cmd, err)
		}
	}
}
