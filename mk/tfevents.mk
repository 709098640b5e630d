# runtime/train/tfevents: TensorBoard event files of scalars. Its tests check every file they
# write with an independent reader (runtime/train/tfevents/testdata/read_events.py, run with
# /usr/bin/python3) that needs Debian's python3-protobuf and python3-crc32c; deps-tfevents
# installs them where they are missing (as root, or through sudo).

TFEVENTS_PKGS := python3-protobuf python3-crc32c
# mk/mpi.mk defines SUDO too; ?= keeps this file correct whichever is included first.
SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps-tfevents

deps-tfevents:
	@/usr/bin/python3 -c 'import google.protobuf, crc32c' 2>/dev/null || \
		($(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $(TFEVENTS_PKGS))
