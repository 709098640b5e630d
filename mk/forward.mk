# Golden logits of the Llama forward pass from the PyTorch reference (tools/reference/llamaref.py).
GOLDENS += goldens-forward

.PHONY: goldens-forward
goldens-forward: build refdeps
	rm -rf .cache/goldens/forward
	/usr/bin/python3 tools/reference/llamaref.py --bear $(BEAR) --cases testdata/forward/cases.json \
		--work .cache/goldens/forward --out testdata/forward/golden.json.gz

# Training-step benchmark (issue: backward graphs): bear's LoRA step under both residual
# policies (one process each, so peak RSS is per policy) and the PyTorch reference step, on the
# `small` preset, batch 8 × 256, 20 label positions per sequence, THREADS threads.
THREADS ?= 1
.PHONY: bench-step
bench-step: build refdeps
	rm -rf .cache/bench/small && mkdir -p .cache/bench
	$(BEAR) init --preset small --seed 1 --out .cache/bench/small
	$(BEAR) bench step --model .cache/bench/small --cache-dir .cache/bench/cache --threads $(THREADS) --policy stash
	$(BEAR) bench step --model .cache/bench/small --cache-dir .cache/bench/cache --threads $(THREADS) --policy recompute
	/usr/bin/python3 tools/reference/bench_step.py --model .cache/bench/small --threads $(THREADS)
