//go:build !mpi

package comm

import (
	"strings"
	"testing"
)

// A binary without mpi started by mpirun as one of several processes refuses to run; started
// alone (or as the only process) it is the one-process job.
func TestInitWithoutMPI(t *testing.T) {
	setEnv(t, map[string]string{"OMPI_COMM_WORLD_SIZE": "2"})
	if _, err := Init(); err == nil || !strings.Contains(err.Error(), "make build-mpi") || !strings.Contains(err.Error(), "OMPI_COMM_WORLD_SIZE=2") {
		t.Errorf("under a 2-process launch: %v", err)
	}
	for _, env := range []map[string]string{nil, {"OMPI_COMM_WORLD_SIZE": "1"}} {
		setEnv(t, env)
		if c, err := Init(); err != nil || c.Size() != 1 {
			t.Errorf("%v: %v, %v", env, c, err)
		}
	}
}
