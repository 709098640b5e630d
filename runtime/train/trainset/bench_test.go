package trainset

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user + system CPU time: on a shared machine a fairer measure of
// one goroutine's work than the wall clock (run with -cpu 1).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBuild tokenises and constrains 10 000 Office rows (see benchRows) on one goroutine:
// go test ./runtime/train/trainset -run '^$' -bench Build -benchtime 3x -cpu 1
func BenchmarkBuild(b *testing.B) {
	f, rows := benchRows(b)
	b.ResetTimer()
	cpu := cpuTime(b)
	for range b.N {
		if _, err := Build(f.tok, f.prompt, f.items, rows, DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime(b)-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "examples/s")
}

// BenchmarkEpochSteps builds every step of an epoch of 10 000 rows (128 per step, groups of 16,
// micro-batches of 4), the buffers of the previous steps reused.
func BenchmarkEpochSteps(b *testing.B) {
	f, rows := benchRows(b)
	opts := DefaultOptions()
	opts.Micro = 4
	s, err := Build(f.tok, f.prompt, f.items, rows, opts)
	if err != nil {
		b.Fatal(err)
	}
	batcher := s.NewBatcher()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := cpuTime(b)
	for i := range b.N {
		for step := range s.StepsPerEpoch() {
			if _, err := batcher.Step(i, step); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric((cpuTime(b)-cpu).Seconds()/float64(b.N*s.StepsPerEpoch())*1e6, "cpu-µs/step")
}
