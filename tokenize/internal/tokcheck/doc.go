// Command tokcheck builds the texts of the tokenizer reference comparison, checks our ids
// against the reference ids written by tools/reference/tokref.js, and samples the golden file.
// mk/tokenize.mk drives it (make tokcheck, make goldens-tokenize).
//
//	tokcheck corpus -data DIR -out texts.jsonl [-rows 2000]
//	tokcheck check -tokenizer FILE -ref ref.jsonl[.gz]
//	tokcheck sample -tokenizer FILE -ref ref.jsonl -out golden.jsonl.gz
//	tokcheck incontext -tokenizer FILE -data DIR
//	tokcheck sugarme -tokenizer FILE -ref ref.jsonl[.gz]   (sugarme's own pipeline, for the record)
package main
