package hf

import (
	"os"
	"testing"
)

func contentID(t *testing.T, dir string) string {
	t.Helper()
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := ck.ContentSHA256()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// flipBit flips one bit of a tensor's first byte in place.
func flipBit(t *testing.T, dir, tensor string) {
	t.Helper()
	ck, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := ck.Weights[tensor]
	f, err := os.OpenFile(w.File, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, w.Offset); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1
	if _, err := f.WriteAt(b, w.Offset); err != nil {
		t.Fatal(err)
	}
}

// TestContentSHA256: the identity follows the model, not the files: the same weights in one
// file or in shards, in another folder, share it; one flipped bit of any weight, another
// setting, or other random weights of the same shape change it, also when the change is made
// in place after the identity was computed once in this process (the memo must notice).
func TestContentSHA256(t *testing.T) {
	base := contentID(t, writeTiny(t, InitOptions{Seed: 3}))
	if got := contentID(t, writeTiny(t, InitOptions{Seed: 3, ShardBytes: 3000})); got != base {
		t.Errorf("the same weights in shards: identity %s, want %s", got, base)
	}
	if got := contentID(t, writeTiny(t, InitOptions{Seed: 4})); got == base {
		t.Error("other weights of the same shape share the identity")
	}
	cfgDir := writeTiny(t, InitOptions{Seed: 3})
	editConfig(t, cfgDir, func(m map[string]any) { m["rope_theta"] = 10000.0 })
	if got := contentID(t, cfgDir); got == base {
		t.Error("another rope_theta shares the identity")
	}
	for _, tensor := range []string{EmbedName, LayerWeight(1, "mlp.down_proj"), FinalNormName} {
		for _, shard := range []int64{0, 3000} {
			dir := writeTiny(t, InitOptions{Seed: 3, ShardBytes: shard})
			before := contentID(t, dir) // memoised for the files' current state
			flipBit(t, dir, tensor)
			if got := contentID(t, dir); got == before {
				t.Errorf("shards %d: a flipped bit in %s after a first hash leaves the identity unchanged", shard, tensor)
			}
		}
	}
}
