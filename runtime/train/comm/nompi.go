//go:build !mpi

package comm

// Built reports whether this binary carries the mpi binding.
const Built = false

// Init returns Single, or an error when an mpi launcher started several processes of this
// binary, which has no mpi to coordinate them.
func Init() (Comm, error) {
	if n, v := launcherSize(); n > 1 {
		return nil, errNoMPI(n, v)
	}
	return Single{}, nil
}
