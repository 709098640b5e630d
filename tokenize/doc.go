// Package tokenize turns Amazon recommendation data into Llama-3 token ids: the Llama-3.2
// tokenizer, the official BEAR prompt templates, the catalogue of item titles with its item
// trie, and tokenised training examples.
//
// # Tokenizer: what comes from sugarme and what is ours
//
// Load reads a Hugging Face tokenizer.json with github.com/sugarme/tokenizer (v0.3.0), which
// does the file-reading part right: tokenizer.ConfigFromFile parses the JSON,
// pretrained.CreateModel builds the vocabulary and the merge table (pair -> rank, merged id),
// the added tokens come from its config, pretrained.CreateDecoder and
// pretrained.CreatePostProcessor read the decoder and post-processor settings (the latter gives
// the template's BOS), and its byte-level alphabet (pretokenizer.CharBytes) maps vocabulary
// spellings back to bytes. Its constructors type-assert the JSON without checking, so Load
// turns their panics into errors naming the section, and checks the ids itself (distinct, in
// range, an added token never reusing another token's id); FuzzLoadTokenizer holds it to that.
//
// Its encoding pipeline cannot produce Llama-3 ids, so the encoder is ours. Measured against
// Hugging Face's Rust library (tokcheck sugarme): pretrained.FromFile panics on the Llama-3
// file, and with the lookahead alternative removed so that it loads, sugarme's pipeline gets
// 105735 of our 134520 comparison texts wrong (every prompt and every in-context title, 49%
// of the standalone titles) at about 450 titles/s (one goroutine). The parts that are ours, and why:
//
//   - the split: the pattern's lookahead (?!\S) does not exist in Go's regexp. Ours is
//     splitLlama3, a hand-written matcher of the seven alternatives of the Llama-3 pattern with
//     the regex engine's leftmost-first, backtracking semantics (no regex at all);
//   - the byte-level step: sugarme re-splits every piece with the GPT-2 regex although the file
//     says use_regex: false (so even "### Response:\n" becomes [14711 6075 25 198] instead of
//     [14711 6075 512]). Ours does not split; the byte-level mapping itself is implicit, because
//     our vocabulary is keyed by the tokens' raw bytes (the mapping is a bijection on bytes);
//   - BPE: sugarme breaks ties between equal-rank merges differently from HF and ignores
//     ignore_merges (588 vocabulary tokens unreachable, as measured for issue 5). Ours (appendPiece) emits a pre-token
//     that is a vocabulary token as one id, and otherwise merges the lowest rank, leftmost
//     first, which is exactly the order of HF's priority queue. Pre-tokens of up to 64 bytes
//     rescan their pairs after each merge; longer ones use a (rank, position) min-queue as HF
//     does, so that one huge word costs O(n log n), not O(n²) (100 kB of "a" took 13 s);
//   - special tokens written in the text: sugarme drops them; ours matches the added tokens in
//     the raw text (leftmost, longest) before pre-tokenisation, as HF's AddedVocabulary does;
//   - the post-processor's BOS template: EncodeSpecial prepends the ids read from the template
//     (Encode adds nothing);
//   - speed: sugarme recompiles regexes per call; ours allocates nothing per call through an
//     Encoder.
//
// The result matches Hugging Face tokenizers 0.23.2 (Rust, through its N-API npm package) on
// all 134520 texts of the comparison (make tokcheck): every distinct title of the four
// datasets as "TITLE" and as ### Response:\n"TITLE", the training and inference prompts of the
// first 2000 rows of every split file, 292 tricky strings and 20000 random strings of tricky
// fragments. A sample of 6432 records is the golden test (testdata/tokenize). Decoding the
// ids gives the text back. Long inputs (100 kB and 1 MB runs of one character, huge random
// words, mixed text: testdata/tokenize/long.json, TestEncodeLong) match too, and the whole
// path is O(n log n) in the text's length: the split scans each character a bounded number
// of times, special tokens are matched through a byte trie (at most one token's length per
// position), and BPE is as above. On 1 MB of "a", of spaces or of "!" one encode takes about
// as long as the Rust library's or less (make tokbench-long). Single goroutine, it encodes about 270k-350k titles/s and 29k-36k
// prompts/s, against 58k-70k titles/s and 6.5k-6.8k prompts/s for the Rust library batched
// on both cores of the same machine (make tokbench).
//
// # Prompts, data and items
//
// DatasetPrompt gives the official per-dataset instruction and history strings; Prompt.Train
// and Prompt.Inference the official templates, verbatim (the inference one has two spaces after
// "request."). ReadCatalogue and ReadSplit read id2name4Rec.json and the split CSV files; as
// the official data code does, ids missing from the catalogue are dropped before the last id
// becomes the target, and the ids before it (at most 10 in these files) the history. Bad
// input is an error naming the file and line (a non-integer timestamp, a record with the wrong
// number of fields, a catalogue id given twice or written "01"), never a silent default;
// empty titles are kept (Book's catalogue has one). Each parser has a fuzz target.
//
// NewItemSet tokenises every title as the official inference code does, in context: the ids
// of ### Response:\n"TITLE" minus the separator's [14711 6075 512], then EOS (128001). The
// trie over these sequences serves the beam search (training uses the standalone tokenisation
// of "TITLE" + EOS, as the official training script does): Allowed(prefix) returns the
// sorted allowed next tokens, or [EOS] where none is; Items maps a complete path to its item
// ids (duplicated titles share one path). On our data the in-context and standalone
// tokenisations of every title are identical (InContextDiffs is empty for all four datasets).
//
// TrainExample builds a training example as the official script does: BOS + training prompt
// + EOS, labels ignoreLabel (-100) over the prompt with an empty output, and the response start
// found as the last occurrence of the separator ids.
package tokenize
