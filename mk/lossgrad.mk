# lossgrad: golden cases from the PyTorch transcription of the official compute_loss
# functions (tools/reference/lossref.py, Debian's python3-torch via `make refdeps`).

LOSSGRAD_GOLDENS := testdata/lossgrad/goldens.json.gz

.PHONY: goldens-lossgrad
goldens-lossgrad: refdeps
	/usr/bin/python3 tools/reference/lossref.py --seed 42 --out $(LOSSGRAD_GOLDENS)

GOLDENS += goldens-lossgrad
