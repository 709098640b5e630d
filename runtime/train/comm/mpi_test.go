//go:build mpi

package comm

import (
	"fmt"
	"math"
	"os"
	goruntime "runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bearrec/bear/internal/mpirun"
)

func TestMain(m *testing.M) {
	mpirun.Dispatch(map[string]func() error{"collectives": collectives, "allreduce-timing": allreduceTiming, "stack-stress": stackStress})
	os.Exit(m.Run())
}

// TestCollectives runs the collectives on 2 and 3 ranks, over Open mpi's default transport
// (shared memory) and over TCP alone.
func TestCollectives(t *testing.T) {
	for _, np := range []int{2, 3} {
		for _, tr := range []string{mpirun.Default, mpirun.TCP} {
			t.Run(fmt.Sprintf("np%d-%s", np, tr), func(t *testing.T) {
				out := mpirun.MustRun(t, np, "collectives", mpirun.Options{Transport: tr})
				t.Log(out)
			})
		}
	}
}

// collectives is one rank of TestCollectives: sums and broadcasts of buffers of several
// lengths, checked against the values every rank can compute on its own.
func collectives() error {
	c, err := Init()
	if err != nil {
		return err
	}
	defer c.Finalize()
	if _, ok := c.(*mpi); !ok {
		return fmt.Errorf("Init under mpirun returned %T", c)
	}
	r, n := c.Rank(), c.Size()
	if n < 2 || r < 0 || r >= n {
		return fmt.Errorf("rank %d of %d", r, n)
	}
	// value of element i on rank k: small integers and halves, exact in float32 sums
	v := func(k, i int) float64 { return float64((k+1)*(i%97)) + 0.5*float64(k) }
	for _, length := range []int{0, 1, 1000, 9 << 18} { // 9<<18 float32: 9 MiB, the LoRA gradient size
		x32 := make([]float32, length)
		x64 := make([]float64, length)
		for i := range x32 {
			x32[i], x64[i] = float32(v(r, i)), v(r, i)
		}
		if err := c.AllreduceSum32(x32); err != nil {
			return err
		}
		if err := c.AllreduceSum64(x64); err != nil {
			return err
		}
		for i := range x32 {
			want := 0.0
			for k := 0; k < n; k++ {
				want += v(k, i)
			}
			if float64(x32[i]) != want || x64[i] != want {
				return fmt.Errorf("length %d: sum[%d] = %v (float32), %v (float64), want %v", length, i, x32[i], x64[i], want)
			}
		}
		for root := 0; root < n; root++ {
			b32 := make([]float32, length)
			b64 := make([]float64, length)
			for i := range b32 {
				b32[i], b64[i] = float32(v(r, i)), math.Pi*v(r, i)
			}
			if err := c.Broadcast32(b32, root); err != nil {
				return err
			}
			if err := c.Broadcast64(b64, root); err != nil {
				return err
			}
			for i := range b32 {
				if b32[i] != float32(v(root, i)) || b64[i] != math.Pi*v(root, i) {
					return fmt.Errorf("broadcast from %d, length %d: [%d] = %v, %v", root, length, i, b32[i], b64[i])
				}
			}
		}
	}
	if err := c.Broadcast32(nil, n); err == nil {
		return fmt.Errorf("broadcast from rank %d of %d accepted", n, n)
	}
	fmt.Printf("rank %d of %d: collectives ok\n", r, n)
	return nil
}

// TestCollectivesStackStress calls every collective 20 000 times on 2 ranks, each call at
// another stack depth, while a second goroutine allocates garbage and forces collections: the
// Go runtime grows, copies and shrinks the calling goroutine's stack around the cgo calls and
// checks every pointer slot of every frame. A binding that holds a non-address in a Go pointer
// (MPI_IN_PLACE, address 1, as an unsafe.Pointer) dies here with "invalid pointer found on
// stack" within the first seconds; the old binding did, every run.
func TestCollectivesStackStress(t *testing.T) {
	t.Log(mpirun.MustRun(t, 2, "stack-stress", mpirun.Options{}))
}

// stackStress is one rank of TestCollectivesStackStress.
func stackStress() error {
	c, err := Init()
	if err != nil {
		return err
	}
	defer c.Finalize()
	var stop atomic.Bool
	done := make(chan struct{})
	go func() { // garbage and collections: stacks get scanned, shrunk and copied
		defer close(done)
		var keep [][]byte
		for i := 0; !stop.Load(); i++ {
			keep = append(keep, make([]byte, 1<<10))
			if len(keep) > 1000 {
				keep = nil
			}
			if i%500 == 0 {
				goruntime.GC()
			}
		}
	}()
	defer func() { stop.Store(true); <-done }()
	x32, x64 := make([]float32, 16), make([]float64, 16)
	n := float64(c.Size())
	for it := range 20000 {
		err := atDepth(it%300, func() error {
			for i := range x32 {
				x32[i], x64[i] = 1, float64(c.Rank())
			}
			if err := c.AllreduceSum32(x32); err != nil {
				return err
			}
			if err := c.AllreduceSum64(x64); err != nil {
				return err
			}
			if x32[it%16] != float32(n) || x64[it%16] != n*(n-1)/2 {
				return fmt.Errorf("call %d: sums %v and %v", it, x32[it%16], x64[it%16])
			}
			if err := c.Broadcast32(x32, it%c.Size()); err != nil {
				return err
			}
			return c.Broadcast64(x64, it%c.Size())
		})
		if err != nil {
			return err
		}
	}
	fmt.Printf("rank %d: 20000 rounds of collectives at varying stack depths\n", c.Rank())
	return nil
}

// atDepth calls f under depth frames of 64 bytes or more, so that successive calls of f start
// at different stack depths and some of them need the stack to grow.
//
//go:noinline
func atDepth(depth int, f func() error) error {
	var pad [64]byte
	if depth == 0 {
		return f()
	}
	pad[depth%64] = byte(depth)
	err := atDepth(depth-1, f)
	if pad[depth%64] != byte(depth) {
		return fmt.Errorf("frame at depth %d overwritten", depth)
	}
	return err
}

// BenchmarkAllreduce times the in-place float32 all-reduce of 2 ranks for the gradient sizes of
// LoRA r 8 on q_proj, v_proj (the small preset, Llama-3.2-1B, Llama-3.2-3B), over shared memory
// and over TCP: `go test -tags mpi -run '^$' -bench Allreduce ./runtime/train/comm/` (make bench-mpi).
// ns/op is the mean time of one all-reduce as rank 0 sees it, after a one-float all-reduce that lines the ranks
// up; starting mpirun is not timed.
func BenchmarkAllreduce(b *testing.B) {
	for _, size := range []struct {
		name   string
		floats int
	}{{"small", 26624}, {"1B", 851968}, {"3B", 2293760}} {
		for _, tr := range []string{mpirun.Default, mpirun.TCP} {
			name := size.name + "-shm"
			if tr == mpirun.TCP {
				name = size.name + "-tcp"
			}
			b.Run(name, func(b *testing.B) {
				out := mpirun.MustRun(b, 2, "allreduce-timing", mpirun.Options{Transport: tr,
					Env: []string{fmt.Sprintf("%s=%d,%d", timingVar, size.floats, b.N)}})
				var ns float64
				_, timing, found := strings.Cut(out, "ns/op ")
				if _, err := fmt.Sscanf(timing, "%g", &ns); !found || err != nil {
					b.Fatalf("no timing in the ranks' output (%v):\n%s", err, out)
				}
				b.ReportMetric(ns, "ns/op")
				b.ReportMetric(float64(4*size.floats)/ns*1e3, "MB/s")
			})
		}
	}
}

// timingVar passes the buffer length and repetitions to allreduceTiming.
const timingVar = "BEAR_ALLREDUCE_TIMING"

// allreduceTiming is one rank of BenchmarkAllreduce; rank 0 prints "ns/op N".
func allreduceTiming() error {
	var floats, reps int
	if _, err := fmt.Sscanf(os.Getenv(timingVar), "%d,%d", &floats, &reps); err != nil {
		return fmt.Errorf("%s: %v", timingVar, err)
	}
	c, err := Init()
	if err != nil {
		return err
	}
	defer c.Finalize()
	x, sync := make([]float32, floats), make([]float32, 1)
	var total time.Duration
	for range reps {
		if err := c.AllreduceSum32(sync); err != nil {
			return err
		}
		t0 := time.Now()
		if err := c.AllreduceSum32(x); err != nil {
			return err
		}
		total += time.Since(t0)
	}
	if c.Rank() == 0 {
		fmt.Printf("ns/op %g\n", float64(total.Nanoseconds())/float64(reps))
	}
	return nil
}
