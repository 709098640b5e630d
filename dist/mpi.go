//go:build mpi

package dist

/*
#cgo pkg-config: ompi-c
#include <mpi.h>

// Open MPI's handles are macros over global objects, out of cgo's reach: small accessors.
static MPI_Comm bear_world(void) { return MPI_COMM_WORLD; }
static MPI_Datatype bear_float(void) { return MPI_FLOAT; }
static MPI_Datatype bear_double(void) { return MPI_DOUBLE; }
static MPI_Op bear_sum(void) { return MPI_SUM; }
static void *bear_in_place(void) { return MPI_IN_PLACE; }
static int bear_serialized(void) { return MPI_THREAD_SERIALIZED; }
static int bear_init(int *provided) { return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided); }
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"unsafe"
)

// Built reports whether this binary carries the MPI binding.
const Built = true

// MPI is MPI_COMM_WORLD of an initialised MPI library.
type MPI struct{ rank, size int }

// Init starts MPI when an MPI launcher started this process, and returns Single otherwise.
func Init() (Comm, error) {
	if n, _ := launcherSize(); n == 0 {
		return Single{}, nil
	}
	// Go turns SIGSEGV and SIGBUS into panics; Open MPI's stack-trace handlers would take them.
	if _, set := os.LookupEnv("OMPI_MCA_opal_signal"); !set {
		os.Setenv("OMPI_MCA_opal_signal", "")
	}
	var provided C.int
	if err := check("MPI_Init_thread", C.bear_init(&provided)); err != nil {
		return nil, err
	}
	if provided < C.bear_serialized() {
		C.MPI_Finalize()
		return nil, fmt.Errorf("MPI: the library offers thread level %d, below MPI_THREAD_SERIALIZED", int(provided))
	}
	var rank, size C.int
	if err := check("MPI_Comm_rank", C.MPI_Comm_rank(C.bear_world(), &rank)); err != nil {
		return nil, err
	}
	if err := check("MPI_Comm_size", C.MPI_Comm_size(C.bear_world(), &size)); err != nil {
		return nil, err
	}
	return &MPI{rank: int(rank), size: int(size)}, nil
}

func (m *MPI) Rank() int { return m.rank }
func (m *MPI) Size() int { return m.size }

// Go memory passed to MPI: the calls are synchronous and keep no pointer, as cgo requires.

func (m *MPI) AllreduceSum32(x []float32) error {
	return m.allreduce(unsafe.Pointer(unsafe.SliceData(x)), len(x), C.bear_float())
}

func (m *MPI) AllreduceSum64(x []float64) error {
	return m.allreduce(unsafe.Pointer(unsafe.SliceData(x)), len(x), C.bear_double())
}

func (m *MPI) Broadcast32(x []float32, root int) error {
	return m.bcast(unsafe.Pointer(unsafe.SliceData(x)), len(x), C.bear_float(), root)
}

func (m *MPI) Broadcast64(x []float64, root int) error {
	return m.bcast(unsafe.Pointer(unsafe.SliceData(x)), len(x), C.bear_double(), root)
}

// MPI counts are C ints: longer buffers go in chunks.
const maxCount = math.MaxInt32

func (m *MPI) allreduce(p unsafe.Pointer, n int, t C.MPI_Datatype) error {
	size := elemSize(t)
	for off := 0; off < n; off += maxCount {
		c := min(n-off, maxCount)
		q := unsafe.Add(p, off*size)
		if err := check("MPI_Allreduce", C.MPI_Allreduce(C.bear_in_place(), q, C.int(c), t, C.bear_sum(), C.bear_world())); err != nil {
			return err
		}
	}
	return nil
}

func (m *MPI) bcast(p unsafe.Pointer, n int, t C.MPI_Datatype, root int) error {
	if root < 0 || root >= m.size {
		return fmt.Errorf("MPI_Bcast: root %d outside the %d ranks", root, m.size)
	}
	size := elemSize(t)
	for off := 0; off < n; off += maxCount {
		c := min(n-off, maxCount)
		if err := check("MPI_Bcast", C.MPI_Bcast(unsafe.Add(p, off*size), C.int(c), t, C.int(root), C.bear_world())); err != nil {
			return err
		}
	}
	return nil
}

func elemSize(t C.MPI_Datatype) int {
	if t == C.bear_double() {
		return 8
	}
	return 4
}

func (m *MPI) Abort(code int) {
	C.MPI_Abort(C.bear_world(), C.int(code))
	os.Exit(code) // not reached: MPI_Abort ends the process
}

func (m *MPI) Finalize() error { return check("MPI_Finalize", C.MPI_Finalize()) }

// check turns an MPI error code into an error with MPI's own message. (The default error
// handler, MPI_ERRORS_ARE_FATAL, aborts before most errors get here.)
func check(call string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	var buf [C.MPI_MAX_ERROR_STRING]C.char
	var n C.int
	C.MPI_Error_string(rc, &buf[0], &n)
	return fmt.Errorf("%s: %s", call, C.GoStringN(&buf[0], n))
}
