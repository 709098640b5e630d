package procstat

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CPUTime is the user+system CPU time of the process so far, all threads.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSSMiB is the peak resident memory of the process so far (Linux reports KiB).
func PeakRSSMiB() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

// pssMiB is the process's proportional set size now (Linux's /proc/self/smaps_rollup): its
// resident memory with each page counted once however many of its mappings share it, unlike RSS.
// ONNX Runtime maps a model's external weight files into each session, so the forward and
// backward sessions' mappings of one file count twice in RSS and once in PSS.
func pssMiB() (float64, error) {
	b, err := os.ReadFile("/proc/self/smaps_rollup")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("smaps_rollup: %q: %w", line, err)
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("smaps_rollup has no Pss line")
}

// PSSSampler records the largest PSS it sees, sampled every interval until Stop: the kernel
// keeps a peak of RSS (PeakRSSMiB) but none of PSS, so a peak between two samples can be missed.
type PSSSampler struct {
	stop chan struct{}
	done chan float64
	once sync.Once
	peak float64
}

// SamplePSS starts a sampler.
func SamplePSS(interval time.Duration) *PSSSampler {
	s := &PSSSampler{stop: make(chan struct{}), done: make(chan float64, 1)}
	go func() {
		peak := 0.0
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if v, err := pssMiB(); err == nil {
				peak = max(peak, v)
			}
			select {
			case <-s.stop:
				s.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling and returns the peak seen (0 where /proc cannot be read); later calls
// return the same.
func (s *PSSSampler) Stop() float64 {
	s.once.Do(func() {
		close(s.stop)
		s.peak = <-s.done
	})
	return s.peak
}
