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
// spellings back to bytes.
//
// Its encoding pipeline cannot produce Llama-3 ids, so the encoder is ours. Measured against
// Hugging Face's Rust library on our data, sugarme v0.3.0:
//
//   - panics in pretrained.FromFile on the Split regex's lookahead (?!\S) (Go's regexp has no
//     lookahead). Ours: splitLlama3, a hand-written matcher of the seven alternatives of the
//     Llama-3 pattern with the regex engine's leftmost-first, backtracking semantics (no regex);
//   - re-splits every piece with the GPT-2 regex in its ByteLevel step although the file says
//     use_regex: false (83% of records differ; even "### Response:\n" becomes
//     [14711 6075 25 198] instead of [14711 6075 512]). Ours: no re-split; the byte-level
//     mapping is implicit because our vocabulary is keyed by raw bytes;
//   - breaks ties between equal-rank merges differently from HF. Ours: appendPiece merges the
//     lowest rank, leftmost first, which is exactly HF's priority-queue order;
//   - drops special tokens written in the text. Ours: added tokens are matched in the raw text
//     (leftmost, longest) before pre-tokenisation, as HF's AddedVocabulary does;
//   - does not support ignore_merges (588 vocabulary tokens unreachable). Ours: a pre-token that
//     is itself a vocabulary token is emitted as one id;
//   - recompiles regexes per call (about 600 titles/s).
//
// The BOS template (post-processor) is applied by EncodeSpecial; Encode adds nothing.
//
// The result matches Hugging Face tokenizers 0.23.2 (Rust, through its N-API npm package) on
// every record of the comparison: all titles of the four datasets as "TITLE" and as
// ### Response:\n"TITLE", the training and inference prompts of the first 2000 rows of every
// split file and about 300 tricky strings (make tokcheck; a sample of 5 400 records is the
// golden test). Decoding the ids gives the text back. Single goroutine, it encodes about
// 270k titles/s (Rust batched on both cores: about 58k/s on this machine; make tokbench).
//
// # Prompts, data and items
//
// DatasetPrompt gives the official per-dataset instruction and history strings; Prompt.Train
// and Prompt.Inference the official templates, verbatim (the inference one has two spaces after
// "request."). ReadCatalogue and ReadSplit read id2name4Rec.json and the split CSV files; as
// the official data code does, ids missing from the catalogue are dropped before the last id
// becomes the target, and the ids before it (at most 10 in these files) the history.
//
// NewItemSet tokenises every title as the official inference code does, in context: the ids
// of ### Response:\n"TITLE" minus the separator's [14711 6075 512], then EOS (128001). The
// trie over these sequences serves the beam search and the losses: Allowed(prefix) returns the
// sorted allowed next tokens, or [EOS] where none is; Items maps a complete path to its item
// ids (duplicated titles share one path). On our data the in-context and standalone
// tokenisations of every title are identical (InContextDiffs is empty for all four datasets).
//
// TrainExample builds a training example as the official script does: BOS + training prompt
// + EOS, labels IgnoreLabel (-100) over the prompt with an empty output, and the response start
// found as the last occurrence of the separator ids.
package tokenize
