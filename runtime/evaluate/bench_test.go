package evaluate

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/testdeps"

	"github.com/bearrec/bear/onnx/hf"
	"github.com/bearrec/bear/runtime/ortrun"
)

// BenchmarkEval decodes the first 8 Office test users (one batch, B = 10, constraint after
// the softmax) with a random `small` Llama-3.2 checkpoint on the CPU, with and without the KV
// cache. It reports users/s and go-share: the share of the decoding time spent outside the
// scorer's calls (beam search, prompts, decoding strings; the scorer's own Go work, such as
// the no-cache path's log-sum-exp over the vocabulary, counts as inside).
//
//	go test -run '^$' -bench Eval -benchtime 2x ./runtime/evaluate/
func BenchmarkEval(b *testing.B) {
	p, err := hf.LookupPreset("small")
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	model := filepath.Join(dir, "small")
	if err := hf.WriteRandom(model, p.Config, hf.InitOptions{Seed: 1}); err != nil {
		b.Fatal(err)
	}
	const users = 8
	for _, kv := range []bool{true, false} {
		name := "kv-cache"
		if !kv {
			name = "no-cache"
		}
		b.Run(name, func(b *testing.B) {
			o := Options{Model: model, Tokenizer: testdeps.Tokenizer(b), Data: officeData, Limit: users, KVCache: kv,
				Runtime: ortrun.ModelOptions{CacheDir: filepath.Join(dir, "cache")}}
			d, err := loadData(o)
			if err != nil {
				b.Fatal(err)
			}
			ck, err := hf.Open(model)
			if err != nil {
				b.Fatal(err)
			}
			sc, err := newScorer(o, ck)
			if err != nil {
				b.Fatal(err)
			}
			defer sc.Close()
			ev := &batchDecoder{Data: d, Scorer: sc, Search: o.SearchConfig()}
			var wall time.Duration
			ort0 := ortrun.ORTTime()
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := ev.Decode(d.Rows, d.RowIndex); err != nil {
					b.Fatal(err)
				}
				wall += time.Since(t0)
			}
			b.ReportMetric(float64(users*b.N)/wall.Seconds(), "users/s")
			b.ReportMetric(1-ev.ScorerTime.Seconds()/wall.Seconds(), "go-share")
			b.ReportMetric(1-(ortrun.ORTTime()-ort0).Seconds()/wall.Seconds(), "go-share-outside-ort")
		})
	}
}
