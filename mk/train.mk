# runtime/train: five optimizer steps of `bear train` against the PyTorch reference
# (tools/reference/trainref.py, Debian's python3-torch via `make refdeps`). The case file and
# the adapters it reads come from `go test ./runtime/train -run Reference -update`
# (testdata/train/README.md).

TRAIN_GOLDENS := testdata/train/golden.json.gz

.PHONY: goldens-train
goldens-train: build refdeps
	rm -rf .cache/goldens/train
	/usr/bin/python3 tools/reference/trainref.py --bear $(BEAR) --case testdata/train/case.json.gz \
		--work .cache/goldens/train --out $(TRAIN_GOLDENS)

GOLDENS += goldens-train
