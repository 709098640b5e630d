# Data-parallel training over MPI (package runtime/train/comm, build tag mpi).
#   make build-mpi   bin/bear-mpi: bear with the Open MPI binding (mpirun -np N bin/bear-mpi train ...)
#   make test-mpi    the tests that run under mpirun (part of make test)
#   make bench-mpi   the all-reduce of the LoRA gradient sizes on 2 ranks (part of make bench)
# Open MPI comes from Debian (libopenmpi-dev for the headers and libmpi, openmpi-bin for mpirun);
# deps-mpi installs it where it is missing (as root, or through sudo).

MPI_PKGS := libopenmpi-dev openmpi-bin pkgconf
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps-mpi build-mpi test-mpi bench-mpi

deps-mpi:
	@command -v mpirun >/dev/null && pkg-config --exists ompi-c || \
		($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(MPI_PKGS))

build-mpi: deps deps-mpi
	$(GO) build -tags mpi -ldflags '$(BEAR_LDFLAGS)' -o bin/bear-mpi ./tools/bear

# The MPI tests re-execute their test binary under mpirun (internal/mpirun): collectives on 2 and
# 3 ranks over shared memory and TCP; 2 and 3 ranks against one process; a rank killed, resumed.
test-mpi: deps deps-mpi
	$(GO) vet -tags mpi ./runtime/train/comm/ ./runtime/train/ ./tools/bear/
	$(GO) test -tags mpi -count=1 -timeout 10m -run 'Collectives|DataParallel|MPI' ./runtime/train/comm/ ./runtime/train/ ./tools/bear/

bench-mpi: deps deps-mpi
	$(GO) test -tags mpi -run '^$$' -bench Allreduce -benchtime 50x ./runtime/train/comm/
