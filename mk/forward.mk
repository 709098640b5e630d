# Golden logits of the Llama forward pass from the PyTorch reference (tools/reference/llamaref.py).
GOLDENS += goldens-forward

.PHONY: goldens-forward
goldens-forward: build refdeps
	rm -rf .cache/goldens/forward
	/usr/bin/python3 tools/reference/llamaref.py --bear $(BEAR) --cases testdata/forward/cases.json \
		--work .cache/goldens/forward --out testdata/forward/golden.json.gz
