# tokenize: the reference comparison with Hugging Face tokenizers (Rust, npm package `tokenizers`).
#
#   make tokref-deps               install the npm package (sha512-checked by its lock file)
#   make tokcheck [DATA=dir]       full comparison on the Amazon data (default ../shared/data/amazon)
#   make goldens-tokenize [DATA=]  regenerate testdata/tokenize/golden.jsonl.gz from the reference
#   make tokbench                  Go encoder vs Rust tokenizers on the golden sample's texts
#   make tokcheck-sugarme          sugarme/tokenizer's own pipeline on the golden sample (slow on
#                                  the full set: TOKSUGAR_REF=.cache/tokcheck/ref.jsonl)

TOKREF_DIR  := .cache/node-tokenizers
TOKREF_PKG  := tools/reference/tokenizers
TOKREF_WORK := .cache/tokcheck
TOK_DATA     = $(or $(DATA),../shared/data/amazon)
TOKCHECK     = $(GO) run ./tokenize/internal/tokcheck

GOLDENS += goldens-tokenize

.PHONY: tokref-deps tokcheck tokref goldens-tokenize tokbench tokcheck-sugarme

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
