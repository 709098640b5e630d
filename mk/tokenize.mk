# tokenize: the reference comparison with Hugging Face tokenizers (Rust, npm package `tokenizers`).
#
#   make tokref-deps               install the npm package (sha512-checked by its lock file)
#   make tokcheck [DATA=dir]       full comparison on the Amazon data (default ../shared/data/amazon)
#   make goldens-tokenize [DATA=]  regenerate testdata/tokenize/golden.jsonl.gz from the reference
#   make tokbench                  Go encoder vs Rust tokenizers on the golden sample's texts
#   make goldens-tokenize-long     regenerate testdata/tokenize/long.json (long inputs, ids digests)
#   make tokbench-long             Go vs Rust on 1 MB of "a", of spaces, of "!", ... (medians)
#   make tokcheck-sugarme          sugarme/tokenizer's own pipeline on the golden sample (slow on
#                                  the full set: TOKSUGAR_REF=.cache/tokcheck/ref.jsonl)

TOKREF_DIR  := .cache/node-tokenizers
TOKREF_PKG  := tools/reference/tokenizers
TOKREF_WORK := .cache/tokcheck
TOK_DATA     = $(or $(DATA),../shared/data/amazon)
TOKCHECK     = $(GO) run ./tokenize/internal/tokcheck

GOLDENS += goldens-tokenize goldens-tokenize-long

.PHONY: tokref-deps tokcheck tokref goldens-tokenize tokbench tokcheck-sugarme goldens-tokenize-long tokbench-long

tokref-deps: $(TOKREF_DIR)/node_modules/tokenizers/package.json

$(TOKREF_DIR)/node_modules/tokenizers/package.json: $(TOKREF_PKG)/package.json $(TOKREF_PKG)/package-lock.json
	mkdir -p $(TOKREF_DIR)
	cp $(TOKREF_PKG)/package.json $(TOKREF_PKG)/package-lock.json $(TOKREF_DIR)/
	cd $(TOKREF_DIR) && npm ci --ignore-scripts --no-audit --no-fund
	touch $@

# Texts of the comparison and their reference ids: every distinct title of each dataset as
# "TITLE" and as ### Response:\n"TITLE", the training and inference prompts of the first 2000
# rows of each split file, and the tricky strings of tokenize/internal/tokcheck/tricky.go.
tokref: deps tokref-deps
	mkdir -p $(TOKREF_WORK)
	$(TOKCHECK) corpus -data $(TOK_DATA) -out $(TOKREF_WORK)/texts.jsonl
	node tools/reference/tokref.js encode $(TOKENIZER) $(TOKREF_WORK)/texts.jsonl $(TOKREF_WORK)/ref.jsonl

tokcheck: tokref
	$(TOKCHECK) check -tokenizer $(TOKENIZER) -ref $(TOKREF_WORK)/ref.jsonl
	$(TOKCHECK) incontext -tokenizer $(TOKENIZER) -data $(TOK_DATA)

goldens-tokenize: tokref
	$(TOKCHECK) sample -tokenizer $(TOKENIZER) -ref $(TOKREF_WORK)/ref.jsonl -out testdata/tokenize/golden.jsonl.gz
	$(TOKCHECK) check -tokenizer $(TOKENIZER) -ref testdata/tokenize/golden.jsonl.gz

tokbench: deps tokref-deps
	$(GO) test -run '^$$' -bench 'Encode' -benchtime 2s ./tokenize
	node tools/reference/tokref.js bench $(TOKENIZER) testdata/tokenize/golden.jsonl.gz

TOKSUGAR_REF ?= testdata/tokenize/golden.jsonl.gz
tokcheck-sugarme: deps
	$(TOKCHECK) sugarme -tokenizer $(TOKENIZER) -ref $(TOKSUGAR_REF)

# Long inputs (issue 11, point 6): the case list is in tools/reference/toklong.js.
goldens-tokenize-long: deps tokref-deps
	node tools/reference/toklong.js goldens $(TOKENIZER) testdata/tokenize/long.json
	$(GO) test -count=1 -run '^TestEncodeLong$$' ./tokenize

# One encode of each 1 MB text, 7 times: the median of the seven (ns per encode) on each side.
tokbench-long: deps tokref-deps
	$(GO) test -run '^$$' -bench '^BenchmarkEncodeLong$$' -benchtime 1x -count 7 ./tokenize | \
		awk '/^BenchmarkEncodeLong/ { n[$$1]++; v[$$1, n[$$1]] = $$3 } \
		END { for (k in n) { m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, i]; \
		for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j] < a[j - 1]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t } \
		printf "go   %s\tmedian %.1f ms\tmin %.1f ms\t(%d runs)\n", k, a[int((m + 1) / 2)] / 1e6, a[1] / 1e6, m } }' | sort
	node tools/reference/toklong.js bench $(TOKENIZER) 7
