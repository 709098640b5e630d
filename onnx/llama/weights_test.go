package llama

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bearrec/bear/onnx/hf"
)

// bf16Checkpoint writes a bf16 checkpoint of the tiny shape (vocabulary cut to 96) with the
// given seed into dir and opens it.
func bf16Checkpoint(t testing.TB, dir string, seed uint64) *hf.Checkpoint {
	t.Helper()
	p, _ := hf.LookupPreset("tiny")
	cfg := p.Config
	cfg.VocabSize = 96
	if err := hf.WriteRandom(dir, cfg, hf.InitOptions{Seed: seed, DType: hf.BF16}); err != nil {
		t.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// checkBinding reads every weight of b from its file and compares it with the checkpoint's own
// values widened to float32.
func checkBinding(ck *hf.Checkpoint, b *WeightBinding) error {
	for name, t := range ck.Weights {
		want, err := t.ReadFloat32()
		if err != nil {
			return err
		}
		ref := b.Refs[name]
		f, err := os.Open(filepath.Join(b.Dir, ref.Location))
		if err != nil {
			return err
		}
		raw := make([]byte, ref.Length)
		_, err = f.ReadAt(raw, ref.Offset)
		f.Close()
		if err != nil || int64(len(want)*4) != ref.Length {
			return fmt.Errorf("%s: %d bytes for %d values (%v)", name, ref.Length, len(want), err)
		}
		for i, w := range want {
			if got := math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])); got != w {
				return fmt.Errorf("%s[%d] = %g, the checkpoint holds %g", name, i, got, w)
			}
		}
	}
	return nil
}

// TestCacheSharedByConcurrentCheckpoints: two different checkpoints of the same shape bound
// into one cache folder at the same time, repeatedly, each get their own weights.
func TestCacheSharedByConcurrentCheckpoints(t *testing.T) {
	cache := t.TempDir()
	cks := []*hf.Checkpoint{bf16Checkpoint(t, t.TempDir(), 1), bf16Checkpoint(t, t.TempDir(), 2)}
	bindings := make([][]*WeightBinding, len(cks))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i, ck := range cks {
		for r := 0; r < 3; r++ {
			bindings[i] = append(bindings[i], nil)
			wg.Add(1)
			go func(i, r int, ck *hf.Checkpoint) {
				defer wg.Done()
				b, err := BindWeights(ck, hf.F32, cache)
				if err != nil {
					errs <- err
				}
				bindings[i][r] = b
			}(i, r, ck)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Checked after every writer has finished: an entry shared by the two would hold one of them.
	for i, bs := range bindings {
		for r, b := range bs {
			if err := checkBinding(cks[i], b); err != nil {
				t.Errorf("checkpoint %d, binding %d: %v", i, r, err)
			}
		}
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "weights-*"))
	if len(entries) != 2 {
		t.Errorf("cache holds %v, want one entry per checkpoint and no temporary files", entries)
	}
	for _, e := range entries {
		if st, err := os.Stat(e); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644", e, st.Mode().Perm(), err)
		}
	}
}

// TestCacheNotFooledBySameSizeAndTime: a checkpoint replaced by another of the same size with
// the old modification time kept (cp -p) is converted again, not served the old weights.
func TestCacheNotFooledBySameSizeAndTime(t *testing.T) {
	cache := t.TempDir()
	dir := t.TempDir()
	ck := bf16Checkpoint(t, dir, 1)
	if _, err := BindWeights(ck, hf.F32, cache); err != nil {
		t.Fatal(err)
	}
	other := bf16Checkpoint(t, t.TempDir(), 2)
	file := filepath.Join(dir, "model.safetensors")
	st, _ := os.Stat(file)
	data, err := os.ReadFile(other.Files[0])
	if err != nil || int64(len(data)) != st.Size() {
		t.Fatalf("replacement is %d bytes, want %d (%v)", len(data), st.Size(), err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(file, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	again, err := hf.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := BindWeights(again, hf.F32, cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkBinding(again, b); err != nil {
		t.Fatalf("after cp -p: %v", err)
	}
}

// TestCacheEntryReusedAndRepaired: a second bind reuses the entry without rewriting it; an entry
// cut short or with a foreign header is written again.
func TestCacheEntryReusedAndRepaired(t *testing.T) {
	cache := t.TempDir()
	ck := bf16Checkpoint(t, t.TempDir(), 3)
	b, err := BindWeights(ck, hf.F32, cache)
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(cache, b.Refs[hf.EmbedName].Location)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(entry, old, old)
	if _, err := BindWeights(ck, hf.F32, cache); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(entry); !st.ModTime().Equal(old) {
		t.Error("an intact entry was rewritten")
	}
	for name, damage := range map[string]func() error{
		"truncated": func() error { st, _ := os.Stat(entry); return os.Truncate(entry, st.Size()-10) },
		"foreign header": func() error {
			f, err := os.OpenFile(entry, os.O_WRONLY, 0)
			if err == nil {
				_, err = f.WriteAt([]byte(`{"format":"other"}`), 0)
				f.Close()
			}
			return err
		},
	} {
		if err := damage(); err != nil {
			t.Fatal(err)
		}
		b, err := BindWeights(ck, hf.F32, cache)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := checkBinding(ck, b); err != nil {
			t.Errorf("%s entry: %v", name, err)
		}
	}
}

// TestUnwritableCacheFolder: a cache folder that cannot be created is named, with the reason the
// cache is needed, as a CacheDirError.
func TestUnwritableCacheFolder(t *testing.T) {
	ck := bf16Checkpoint(t, t.TempDir(), 1)
	blocker := filepath.Join(t.TempDir(), "file")
	os.WriteFile(blocker, nil, 0o644)
	cache := filepath.Join(blocker, "cache")
	_, err := BindWeights(ck, hf.F32, cache)
	var ce *CacheDirError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CacheDirError", err)
	}
	for _, w := range []string{"converted-weight cache folder " + cache, "stores its weights as BF16", "converted to F32"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

// BenchmarkContentKey measures what keying the cache by content adds to a start-up that reuses
// the converted weights: hashing every byte the conversion reads. BEAR_BENCH_PRESET picks the
// shape (default small; llama-3.2-1b writes 2.5 GB).
func BenchmarkContentKey(b *testing.B) {
	name := os.Getenv("BEAR_BENCH_PRESET")
	if name == "" {
		name = "small"
	}
	p, err := hf.LookupPreset(name)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	if err := hf.WriteRandom(dir, p.Config, hf.InitOptions{Seed: 1, DType: hf.BF16}); err != nil {
		b.Fatal(err)
	}
	ck, err := hf.Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, t := range ck.Weights {
		bytes += t.Size
	}
	cache := b.TempDir()
	start := time.Now()
	if _, err := BindWeights(ck, hf.F32, cache); err != nil {
		b.Fatal(err)
	}
	first := time.Since(start).Seconds()
	b.SetBytes(bytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := BindWeights(ck, hf.F32, cache); err != nil { // reuse: the key is all the work
			b.Fatal(err)
		}
	}
	b.ReportMetric(first, "convert-s") // the first bind: key, conversion and write
}
