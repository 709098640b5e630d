package ortrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bearrec/bear/onnx/hf"
)

// TestUnwritableCacheFolderSaysWhatToDo: when the converted-weight cache folder cannot be
// created (the default one under an unusable HOME, or an explicit one), the error names the
// folder, why it is needed, and ModelOptions.CacheDir / $XDG_CACHE_HOME as the remedy.
func TestUnwritableCacheFolderSaysWhatToDo(t *testing.T) {
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	cfg.VocabSize = 96
	dir := t.TempDir()
	if err := hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: 1, DType: hf.BF16}); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A path under a regular file cannot be created, even by root.
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", blocker)
	for _, cacheDir := range []string{"", filepath.Join(blocker, "cache")} {
		_, err := bindWeights(ck, hf.F32, cacheDir)
		if err == nil {
			t.Fatalf("cache dir %q under a file: no error", cacheDir)
		}
		for _, w := range []string{"converted-weight cache folder " + blocker, "as BF16", "ortrun.ModelOptions.CacheDir", "$XDG_CACHE_HOME"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("cache dir %q: error %q does not say %q", cacheDir, err, w)
			}
		}
	}
}
