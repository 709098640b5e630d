# Training-step benchmark (issue: training): complete optimizer steps of `bear train` (data,
# forward, loss, backward, clipping, AdamW) against the same steps in PyTorch, replayed from
# bear's dump (tools/reference/bench_train.py), once with logits only at the label positions and
# once with logits at every position as the official code computes them. `small` preset, the
# committed Office training split, 16 sequences per step in one norm group, micro-batches of
# MICRO, THREADS threads, one warm-up step and STEPS timed ones; JSON lines (medians) are printed
# and appended to .cache/bench/train/results.jsonl. `make bench-train THREADS=2 MICRO=8`.
THREADS ?= 1
MICRO ?= 16
STEPS ?= 5
LOSSES ?= lml msl bear
BENCH_TRAIN_DIR := .cache/bench/train
BENCH_TRAIN_MODEL := $(BENCH_TRAIN_DIR)/small

.PHONY: bench-train
bench-train: build refdeps
	mkdir -p $(BENCH_TRAIN_DIR)
	test -f $(BENCH_TRAIN_MODEL)/model.safetensors || $(BEAR) init --preset small --seed 1 --out $(BENCH_TRAIN_MODEL)
	set -e; for loss in $(LOSSES); do \
		dump=$(BENCH_TRAIN_DIR)/$$loss-t$(THREADS)-m$(MICRO).jsonl; \
		$(BEAR) bench train --model $(BENCH_TRAIN_MODEL) --data testdata/office --loss $$loss --batch 16 --norm-group 16 \
			--micro-batch $(MICRO) --steps $(STEPS) --threads $(THREADS) --cache-dir .cache/bench/cache --dump $$dump \
			| tee -a $(BENCH_TRAIN_DIR)/results.jsonl; \
		for logits in labels all; do \
			/usr/bin/python3 tools/reference/bench_train.py --dump $$dump --model $(BENCH_TRAIN_MODEL) \
				--threads $(THREADS) --logits $$logits | tee -a $(BENCH_TRAIN_DIR)/results.jsonl; \
		done; \
	done
	/usr/bin/python3 tools/reference/bench_train.py --table $(BENCH_TRAIN_DIR)/results.jsonl

# The real shapes on this machine (issue: real shapes): peak PSS and RSS, prepare and step time
# and the bytes bound to ONNX Runtime per step of bear bench train at the small, 1B and 3B
# shapes under both policies (SHAPES_3B=0 leaves 3B out), and bear eval at 1B; a Markdown table
# (tools/bench-shapes.sh).
.PHONY: bench-shapes
bench-shapes: build
	tools/bench-shapes.sh
