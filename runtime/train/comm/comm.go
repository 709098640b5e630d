package comm

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Comm is the communicator of a data-parallel job. Collective operations must be called by every
// rank, in the same order, with buffers of the same length; they block until all ranks arrive.
type Comm interface {
	Rank() int // this process, 0 ≤ Rank < Size
	Size() int // processes in the job
	// AllreduceSum32 replaces x, on every rank, by the element-wise sum of every rank's x.
	AllreduceSum32(x []float32) error
	// AllreduceSum64 is AllreduceSum32 for float64.
	AllreduceSum64(x []float64) error
	// Broadcast32 replaces x on every rank by root's x.
	Broadcast32(x []float32, root int) error
	// Broadcast64 is Broadcast32 for float64.
	Broadcast64(x []float64, root int) error
	// Abort ends every process of the job with the exit code (it does not return).
	Abort(code int)
	// Finalize ends the communicator's use by this process (after the last collective).
	Finalize() error
}

// Single is the communicator of a one-process job: rank 0 of 1, every collective the identity.
type Single struct{}

func (Single) Rank() int                        { return 0 }
func (Single) Size() int                        { return 1 }
func (Single) AllreduceSum32([]float32) error   { return nil }
func (Single) AllreduceSum64([]float64) error   { return nil }
func (Single) Broadcast32([]float32, int) error { return nil }
func (Single) Broadcast64([]float64, int) error { return nil }
func (Single) Abort(code int)                   { os.Exit(code) }
func (Single) Finalize() error                  { return nil }

// launcherSize returns the number of processes an mpi launcher started this job with (0 when
// none did): Open mpi's mpirun sets OMPI_COMM_WORLD_SIZE, PMIx launchers (srun --mpi=pmix,
// prterun) PMIX_SIZE is not always set, so PMIX_RANK marks them and the size comes from
// Slurm's SLURM_NTASKS; MPICH's Hydra sets PMI_SIZE.
func launcherSize() (int, string) {
	for _, v := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"} {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n > 0 {
			return n, v
		}
	}
	if os.Getenv("PMIX_RANK") != "" {
		if n, err := strconv.Atoi(os.Getenv("SLURM_NTASKS")); err == nil && n > 0 {
			return n, "SLURM_NTASKS"
		}
		return 2, "PMIX_RANK" // a PMIx launch of unknown size: treat it as parallel
	}
	return 0, ""
}

// localRank is this process's index among the job's processes on the same machine (0 when no
// launcher says): the GPU it should use.
func localRank() int {
	for _, v := range []string{"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMIX_LOCAL_RANK"} {
		if n, err := strconv.Atoi(os.Getenv(v)); err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

// errNoMPI is Init's answer in a binary built without mpi that an mpi launcher started as one
// of several processes.
func errNoMPI(n int, v string) error {
	how := fmt.Sprintf("as one of %d processes (%s=%d)", n, v, n)
	if v == "PMIX_RANK" {
		how = "by a PMIx launcher (PMIX_RANK is set)"
	}
	return fmt.Errorf("launched %s, but this bear was built without mpi: build it with `make build-mpi` (bin/bear-mpi)", how)
}

// LocalDevice is the GPU index this process should use: 0 when CUDA_VISIBLE_DEVICES leaves it
// exactly one (Slurm's --gpus-per-task, Kubernetes' one-GPU pods), else its localRank.
func LocalDevice() int {
	if v, ok := os.LookupEnv("CUDA_VISIBLE_DEVICES"); ok && v != "" && !strings.Contains(v, ",") {
		return 0
	}
	return localRank()
}
