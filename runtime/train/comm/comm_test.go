package comm

import (
	"os"
	"testing"
)

// launcherVars are every variable the launcher detection reads, cleared for each case.
var launcherVars = []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "PMIX_RANK", "SLURM_NTASKS",
	"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID", "PMIX_LOCAL_RANK", "CUDA_VISIBLE_DEVICES"}

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, v := range launcherVars {
		t.Setenv(v, "") // restored after the test
		os.Unsetenv(v)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestLauncherSize(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want int
	}{
		{nil, 0},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "4"}, 4},
		{map[string]string{"PMI_SIZE": "2"}, 2},
		{map[string]string{"PMIX_RANK": "0", "SLURM_NTASKS": "8"}, 8},
		{map[string]string{"PMIX_RANK": "0"}, 2},
		{map[string]string{"OMPI_COMM_WORLD_SIZE": "x"}, 0},
		{map[string]string{"SLURM_NTASKS": "8"}, 0}, // sbatch without srun: not an mpi launch
	} {
		setEnv(t, c.env)
		if got, _ := launcherSize(); got != c.want {
			t.Errorf("%v: size %d, want %d", c.env, got, c.want)
		}
	}
}

func TestLocalDevice(t *testing.T) {
	for _, c := range []struct {
		env        map[string]string
		rank, want int
	}{
		{nil, 0, 0},
		{map[string]string{"OMPI_COMM_WORLD_LOCAL_RANK": "3"}, 3, 3},
		{map[string]string{"SLURM_LOCALID": "5"}, 5, 5},
		{map[string]string{"SLURM_LOCALID": "5", "CUDA_VISIBLE_DEVICES": "5"}, 5, 0}, // --gpus-per-task: one GPU visible
		{map[string]string{"OMPI_COMM_WORLD_LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "0,1"}, 1, 1},
	} {
		setEnv(t, c.env)
		if r, d := localRank(), LocalDevice(); r != c.rank || d != c.want {
			t.Errorf("%v: local rank %d device %d, want %d and %d", c.env, r, d, c.rank, c.want)
		}
	}
}

func TestSingle(t *testing.T) {
	var c Comm = Single{}
	x := []float32{1, 2}
	if c.Rank() != 0 || c.Size() != 1 || c.AllreduceSum32(x) != nil || x[1] != 2 || c.Broadcast64([]float64{1}, 0) != nil {
		t.Error("Single is not the identity")
	}
}
