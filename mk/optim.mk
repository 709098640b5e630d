# optim: golden trajectories of torch's clip_grad_norm_ + AdamW + the transformers linear warm-up
# schedule (tools/reference/optimref.py, Debian's python3-torch via `make refdeps`).

OPTIM_GOLDENS := testdata/optim/golden.json.gz

.PHONY: goldens-optim
goldens-optim: refdeps
	/usr/bin/python3 tools/reference/optimref.py --seed 7 --out $(OPTIM_GOLDENS)

GOLDENS += goldens-optim
