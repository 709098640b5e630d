// Package mpirun runs a test binary's child functions as the ranks of an MPI job: a test calls
// Run, which re-executes the test binary itself under `mpirun -np N`, and TestMain calls
// Dispatch first, which in each rank runs the child function the parent named and exits.
// Only tests built with the mpi tag use it (the ranks need package runtime/train/comm's MPI
// binding).
package mpirun
