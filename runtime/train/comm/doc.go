// Package dist is the communication between the processes of one data-parallel training job:
// each process (rank) holds a full copy of the trainable values, computes the gradients of its
// share of every optimizer step's batch, and the ranks add their gradients up before every rank
// applies the same optimizer step.
//
// Comm is what training needs of the engine: the rank and the number of ranks, an in-place
// all-reduce (sum) of float32 and float64 buffers, a broadcast from one rank, and abort. Two
// implementations:
//
//   - Single, the one-process job (rank 0 of 1): every operation is the identity. A plain
//     `bear train` is the N = 1 case of the same code.
//   - mpi (build tag mpi, file mpi.go): a thin cgo binding over the system's Open mpi libmpi
//     (MPI_Init_thread, MPI_Comm_rank/size, MPI_Allreduce with MPI_IN_PLACE, MPI_Bcast,
//     MPI_Abort, MPI_Finalize on MPI_COMM_WORLD). mpi does the work; the binding only calls it,
//     through small C wrappers that take Go buffers, ints and a type code: no mpi handle or
//     sentinel is ever held in a Go value, since Open mpi's MPI_IN_PLACE is the address 1, which
//     the Go runtime, copying a goroutine's stack, takes for a corrupt pointer and dies on
//     (TestCollectivesStackStress). `make build-mpi` builds bin/bear-mpi with it (Debian:
//     libopenmpi-dev, openmpi-bin).
//
// Init picks one: under an mpi launcher (mpirun, or srun --mpi=pmix, which set the PMIx or
// OMPI_COMM_WORLD_* variables) it starts mpi, otherwise it returns Single. A binary built
// without mpi that finds itself launched as one of several processes refuses to run, rather
// than let N independent copies train and write the same folder.
//
// mpi is initialised with MPI_THREAD_SERIALIZED: Go may move a goroutine between OS threads
// between two calls, but the calls never overlap (one goroutine makes them). Open mpi's own
// handlers for SIGSEGV and friends are switched off (OMPI_MCA_opal_signal=""), because the Go
// runtime needs those signals to turn faults into panics.
//
// A failing rank must not leave the others blocked in a collective: callers Abort the job on
// any error (MPI_Abort ends every rank, and mpirun reports which one failed); a rank killed
// from outside is detected by mpirun, which ends the others and names the rank and the signal.
package comm
