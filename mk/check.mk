# check: the layout rules of internal/archtest (import direction per the table in
# internal/archtest/rules_test.go, no function over 100 lines outside generated and test files).
# Pure Go, no ONNX Runtime or tokenizer needed; `make test` runs it too, as part of ./...

# This file is included before the Makefile's own targets: keep `make` without a target
# choosing the goal it chose before.
check_default_goal := $(.DEFAULT_GOAL)

.PHONY: check
check:
	$(GO) test -count=1 ./internal/archtest/

.DEFAULT_GOAL := $(check_default_goal)
