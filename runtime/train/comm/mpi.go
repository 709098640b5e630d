//go:build mpi

package comm

/*
#cgo pkg-config: ompi-c
#include <mpi.h>

// Go never holds an mpi handle or sentinel: Open mpi's handles are macros over global objects
// and its MPI_IN_PLACE is the address 1, which the Go runtime, finding it in a pointer-typed
// stack slot while copying a goroutine's stack, takes for a corrupt pointer and aborts on. Every
// call goes through these wrappers, which take only Go buffers, ints and a type code.

enum { bear_float32 = 0, bear_float64 = 1 };

static MPI_Datatype bear_type(int t) { return t == bear_float64 ? MPI_DOUBLE : MPI_FLOAT; }

static int bear_init(int *provided) { return MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided); }
static int bear_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static int bear_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static int bear_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

static int bear_allreduce_sum(void *buf, int count, int type) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, count, bear_type(type), MPI_SUM, MPI_COMM_WORLD);
}

static int bear_bcast(void *buf, int count, int type, int root) {
	return MPI_Bcast(buf, count, bear_type(type), root, MPI_COMM_WORLD);
}

static void bear_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

static int bear_error_string(int rc, char *buf) {
	int n = 0;
	MPI_Error_string(rc, buf, &n);
	return n;
}
*/
import "C"

import (
	"fmt"
	"math"
	"os"
	"unsafe"
)

// Built reports whether this binary carries the mpi binding.
const Built = true

// mpi is MPI_COMM_WORLD of an initialised mpi library.
type mpi struct{ rank, size int }

// Init starts mpi when an mpi launcher started this process, and returns Single otherwise.
func Init() (Comm, error) {
	if n, _ := launcherSize(); n == 0 {
		return Single{}, nil
	}
	// Go turns SIGSEGV and SIGBUS into panics; Open mpi's stack-trace handlers would take them.
	if _, set := os.LookupEnv("OMPI_MCA_opal_signal"); !set {
		os.Setenv("OMPI_MCA_opal_signal", "")
	}
	var provided C.int
	if err := check("MPI_Init_thread", C.bear_init(&provided)); err != nil {
		return nil, err
	}
	if provided < C.bear_thread_serialized() {
		C.MPI_Finalize()
		return nil, fmt.Errorf("mpi: the library offers thread level %d, below MPI_THREAD_SERIALIZED", int(provided))
	}
	var rank, size C.int
	if err := check("MPI_Comm_rank", C.bear_rank(&rank)); err != nil {
		return nil, err
	}
	if err := check("MPI_Comm_size", C.bear_size(&size)); err != nil {
		return nil, err
	}
	return &mpi{rank: int(rank), size: int(size)}, nil
}

func (m *mpi) Rank() int { return m.rank }
func (m *mpi) Size() int { return m.size }

// The buffers passed to mpi are Go memory: the calls are synchronous and keep no pointer, as
// cgo requires, and each chunk's address is taken from the slice itself (&x[off]), never
// computed as an integer.

func (m *mpi) AllreduceSum32(x []float32) error {
	return chunks(len(x), func(off, n int) C.int {
		return C.bear_allreduce_sum(unsafe.Pointer(&x[off]), C.int(n), C.bear_float32)
	}, "MPI_Allreduce")
}

func (m *mpi) AllreduceSum64(x []float64) error {
	return chunks(len(x), func(off, n int) C.int {
		return C.bear_allreduce_sum(unsafe.Pointer(&x[off]), C.int(n), C.bear_float64)
	}, "MPI_Allreduce")
}

func (m *mpi) Broadcast32(x []float32, root int) error {
	if err := m.checkRoot(root); err != nil {
		return err
	}
	return chunks(len(x), func(off, n int) C.int {
		return C.bear_bcast(unsafe.Pointer(&x[off]), C.int(n), C.bear_float32, C.int(root))
	}, "MPI_Bcast")
}

func (m *mpi) Broadcast64(x []float64, root int) error {
	if err := m.checkRoot(root); err != nil {
		return err
	}
	return chunks(len(x), func(off, n int) C.int {
		return C.bear_bcast(unsafe.Pointer(&x[off]), C.int(n), C.bear_float64, C.int(root))
	}, "MPI_Bcast")
}

func (m *mpi) checkRoot(root int) error {
	if root < 0 || root >= m.size {
		return fmt.Errorf("MPI_Bcast: root %d outside the %d ranks", root, m.size)
	}
	return nil
}

// maxCount is the largest mpi count (a C int): longer buffers go in chunks.
const maxCount = math.MaxInt32

// chunks calls op on consecutive chunks [off, off+n) of a buffer of length total, n at most
// maxCount, and stops at the first failing mpi call.
func chunks(total int, op func(off, n int) C.int, call string) error {
	for off := 0; off < total; off += maxCount {
		if err := check(call, op(off, min(total-off, maxCount))); err != nil {
			return err
		}
	}
	return nil
}

func (m *mpi) Abort(code int) {
	C.bear_abort(C.int(code))
	os.Exit(code) // not reached: MPI_Abort ends the process
}

func (m *mpi) Finalize() error { return check("MPI_Finalize", C.MPI_Finalize()) }

// check turns an mpi error code into an error with mpi's own message. (The default error
// handler, MPI_ERRORS_ARE_FATAL, aborts before most errors get here.)
func check(call string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	var buf [C.MPI_MAX_ERROR_STRING]C.char
	n := C.bear_error_string(rc, &buf[0])
	return fmt.Errorf("%s: %s", call, C.GoStringN(&buf[0], n))
}
