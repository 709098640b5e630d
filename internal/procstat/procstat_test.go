package procstat

import (
	"syscall"
	"testing"
	"time"
)

// TestPSSCountsSharedMappingsOnce: a file mapped twice and read through both mappings adds its
// size once to PSS (RSS would count it twice), and the sampler sees the peak.
func TestPSSCountsSharedMappingsOnce(t *testing.T) {
	const size = 64 << 20
	f := t.TempDir() + "/weights"
	if err := writeZeros(f, size); err != nil {
		t.Fatal(err)
	}
	s := SamplePSS(5 * time.Millisecond)
	before, err := pssMiB()
	if err != nil {
		t.Fatal(err)
	}
	var maps [][]byte
	sum := 0
	for range 2 {
		m, err := mapFile(f, size)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Munmap(m)
		for i := 0; i < size; i += 4096 {
			sum += int(m[i])
		}
		maps = append(maps, m)
	}
	after, _ := pssMiB()
	time.Sleep(20 * time.Millisecond)
	peak := s.Stop()
	if again := s.Stop(); again != peak {
		t.Errorf("a second Stop gave %.1f, the first %.1f", again, peak)
	}
	if d := after - before; d < 56 || d > 72 {
		t.Errorf("two mappings of a 64 MiB file added %.1f MiB of PSS, want about 64", d)
	}
	if peak < after-1 {
		t.Errorf("sampled peak %.1f MiB below the PSS %.1f MiB it was taken around", peak, after)
	}
	if sum != 2*size/4096 {
		t.Fatalf("read %d, want %d", sum, 2*size/4096)
	}
	_ = maps
}

func writeZeros(path string, size int) error {
	fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_WRONLY|syscall.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 1
	}
	for n := 0; n < size; n += len(buf) {
		if _, err := syscall.Write(fd, buf); err != nil {
			return err
		}
	}
	return nil
}

func mapFile(path string, size int) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	return syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_PRIVATE)
}
