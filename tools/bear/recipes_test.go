package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/train/trainlog"
	"go.yaml.in/yaml/v3"
)

// TestRecipes runs two optimizer steps of every committed recipe on a random tiny model, from
// the repository's root as a user would, with --data overridden where the recipe names a
// dataset the repository does not ship; the run records the recipe's settings.
func TestRecipes(t *testing.T) {
	recipes, err := filepath.Glob(filepath.Join("..", "..", "recipes", "*.yaml"))
	if err != nil || len(recipes) < 9 {
		t.Fatalf("recipes: %v (%d files)", err, len(recipes))
	}
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	p, _ := hf.LookupPreset("tiny")
	if err := hf.WriteRandom(model, p.Config, hf.InitOptions{Seed: 42}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join("..", ".."))
	for _, recipe := range recipes {
		recipe := filepath.Join("recipes", filepath.Base(recipe))
		t.Run(filepath.Base(recipe), func(t *testing.T) {
			keys := readRecipe(t, recipe)
			out := filepath.Join(dir, strings.TrimSuffix(filepath.Base(recipe), ".yaml"))
			args := []string{"--config", recipe, "--model", model, "--max-steps", "2", "--out", out,
				"--cache-dir", filepath.Join(dir, "cache"), "--no-progress"}
			if data, _ := keys["data"].(string); !exists(data) {
				args = append(args, "--data", filepath.Join("testdata", "office"))
			}
			var stdout, stderr bytes.Buffer
			if err := trainMain(args, &stdout, &stderr); err != nil {
				t.Fatalf("bear train %s: %v\n%s", strings.Join(args, " "), shown("train", err), stderr.String())
			}
			runs, err := trainlog.ReadRuns(filepath.Join(out, "train.jsonl"))
			if err != nil || len(runs) != 1 {
				t.Fatalf("run records: %v, %v", runs, err)
			}
			if runs[0].RunFile != recipe || runs[0].RunFileSHA256 == "" {
				t.Errorf("run record names run file %q (sha256 %q), want %s", runs[0].RunFile, runs[0].RunFileSHA256, recipe)
			}
			for _, k := range []string{"loss", "tau", "xi", "lambda", "epochs", "lr", "samples", "lora_r"} {
				want, ok := keys[strings.ReplaceAll(k, "_", "-")]
				if got := runs[0].Settings[k]; ok && !sameSetting(got, want) {
					t.Errorf("setting %s = %q, want the recipe's %v", k, got, want)
				}
			}
		})
	}
}

func readRecipe(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := yaml.Unmarshal(data, &keys); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return keys
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return path != "" && err == nil
}

// sameSetting compares a recorded setting with a recipe's YAML value.
func sameSetting(recorded string, v any) bool {
	var got any
	if err := yaml.Unmarshal([]byte(recorded), &got); err != nil {
		return false
	}
	return equalYAML(got, v) || equalYAML(toFloat(got), toFloat(v))
}

func toFloat(v any) any {
	if i, ok := v.(int); ok {
		return float64(i)
	}
	return v
}
