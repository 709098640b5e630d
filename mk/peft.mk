# onnx/peft, onnx/llama: which rank_pattern / alpha_pattern key PEFT picks for each module, from
# Python's re (tools/reference/peftpattern.py; no PEFT needed).
GOLDENS += goldens-peft

.PHONY: goldens-peft
goldens-peft:
	/usr/bin/python3 tools/reference/peftpattern.py --out testdata/peft/patterns.json
